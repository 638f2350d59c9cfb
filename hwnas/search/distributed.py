"""Candidate evaluation spread over the ranks of a ``torchrun`` job (gloo on CPU, NCCL on GPUs).

    torchrun --nproc_per_node 8 -m hwnas search ...                                   # one machine
    torchrun --nnodes 4 --nproc_per_node 8 --rdzv-backend c10d --rdzv-endpoint head:29400 -m hwnas search ...

Rank 0 runs the search itself (sampling, selection, breeding, the predictor, every file); the other
ranks only evaluate. Whenever rank 0 needs fitness values it sends the list of architectures to
every rank in rounds of ``world_size * per_rank`` candidates: candidate ``j`` of a round goes to rank
``j % world_size`` (a fixed, deterministic split), each rank evaluates its share with its own copy
of the fitness (supernet + images loaded once per rank), and the values are gathered back in input
order. Rank 0 journals each value as its round comes back, so a job killed mid-iteration (any rank,
even by ``kill -9``: torchrun then stops the others) resumes from the journal when the same command
is run again. The search is the same whatever the number of ranks: the ranks differ only in which
process computes a value, and a candidate's fitness does not depend on the process (same weights,
same calibration and validation images, deterministic forward passes; on GPUs fix the kernels with
``torch.backends.cudnn.deterministic`` if bit-identical values matter).

The collectives are ``all_gather_object`` calls of ``hwnas.process_group.ProcessGroup`` (the
one supernet training uses), so there is one way to start and use ``torch.distributed`` here.
"""

from __future__ import annotations

import os
from typing import Callable, Iterator

from hwnas.arch import Arch

_STOP = ("stop",)


def launched_by_torchrun() -> bool:
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


class DistributedFitness:
    """``map(archs)`` on rank 0 spreads the work over every rank; :meth:`serve` is the other ranks' loop.

    ``fitness`` is this rank's evaluator (a callable, or anything with ``map``, e.g. a process pool).
    ``dist`` is a :class:`hwnas.process_group.ProcessGroup` (or any object with ``rank``, ``world_size``, ``gather_objects``).
    """

    def __init__(self, fitness: Callable[[Arch], float], dist, per_rank: int = 1):
        self.fitness = fitness
        self.dist = dist
        self.per_rank = max(1, per_rank)
        self.sign = getattr(fitness, "sign", 1.0)
        self.rounds = 0
        self.evaluated = 0  # candidates this rank computed
        self._stopped = False

    @property
    def main(self) -> bool:
        return self.dist.rank == 0

    def _evaluate_share(self, keys: list[str]) -> list[float]:
        archs = [Arch.from_string(k) for k in keys[self.dist.rank :: self.dist.world_size]]
        self.evaluated += len(archs)
        if hasattr(self.fitness, "map"):
            return [float(v) for v in self.fitness.map(archs)]
        return [float(self.fitness(a)) for a in archs]

    def _round(self, keys: list[str]) -> list[float]:
        command = self.dist.gather_objects(("eval", keys) if self.main else None)[0]
        assert command == ("eval", keys)
        shares = self.dist.gather_objects(self._evaluate_share(keys))
        self.rounds += 1
        world = self.dist.world_size
        return [shares[j % world][j // world] for j in range(len(keys))]

    def map(self, archs: list[Arch]) -> Iterator[float]:
        """Fitness of ``archs`` in input order, yielded round by round (rank 0 only)."""
        if not self.main:
            raise RuntimeError("DistributedFitness.map is rank 0's; the other ranks call serve()")
        keys = [a.to_string() for a in archs]
        step = self.dist.world_size * self.per_rank
        for start in range(0, len(keys), step):
            yield from self._round(keys[start : start + step])

    def __call__(self, arch: Arch) -> float:
        return next(self.map([arch]))

    def metric_value(self, fitness: float) -> float:
        return self.sign * fitness

    def serve(self) -> int:
        """Ranks > 0: evaluate shares until rank 0 says stop; returns the number of rounds served."""
        while True:
            command = self.dist.gather_objects(None)[0]
            if command == _STOP or command is None:
                return self.rounds
            _, keys = command
            self.dist.gather_objects(self._evaluate_share(keys))
            self.rounds += 1

    def stop(self) -> None:
        """Rank 0: release the serving ranks (call once, also after an error)."""
        if self.main and not self._stopped:
            self._stopped = True
            self.dist.gather_objects(_STOP)


__all__ = ["DistributedFitness", "launched_by_torchrun"]
