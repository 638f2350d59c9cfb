"""The process group of a ``torchrun`` launch, and a no-op stand-in for a single process.

Supernet training (:mod:`hwnas.supernet_training`) and distributed search evaluation use the same
few collectives. Every tensor a collective needs is created on the group's device: NCCL (CUDA)
only reduces CUDA tensors and gloo only CPU ones, so a helper that made a CPU tensor would work in
the CPU tests and fail on GPUs.
"""

from __future__ import annotations

import os

import torch


class ProcessGroup:
    """World info (``rank``, ``world_size``, ``local_rank``, ``main``) and collectives on ``device``.

    Outside ``torchrun`` (``WORLD_SIZE`` unset or 1) every collective is a no-op on one process.
    """

    def __init__(self, device: torch.device | str):
        import torch.distributed as dist

        self.device = torch.device(device)
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = self.world_size > 1
        self._dist = dist
        if self.enabled and not dist.is_initialized():
            dist.init_process_group(backend="nccl" if self.device.type == "cuda" else "gloo")

    @classmethod
    def from_env(cls, device_spec: str) -> ProcessGroup:
        """Resolve ``device_spec`` (``auto|cpu|cuda[:N]``, checked; ``cuda`` = this process's local
        rank), make it the current CUDA device when it is one, and join the process group."""
        from hwnas.devices import resolve_device

        device = resolve_device(device_spec, int(os.environ.get("LOCAL_RANK", "0")))
        if device.type == "cuda":
            torch.cuda.set_device(device)  # NCCL and all_gather_object use the current device
        return cls(device)

    @property
    def main(self) -> bool:
        return self.rank == 0

    def average_(self, tensors: list[torch.Tensor]) -> None:
        """In-place mean over ranks of ``tensors`` (one flat all_reduce on the group's device)."""
        if not self.enabled or not tensors:
            return
        flat = torch.cat([t.reshape(-1).to(self.device, torch.float32) for t in tensors])
        self._dist.all_reduce(flat)
        flat /= self.world_size
        offset = 0
        for t in tensors:
            n = t.numel()
            t.copy_(flat[offset:offset + n].view_as(t).to(t.dtype))
            offset += n

    def broadcast_floats(self, values: list[float]) -> list[float]:
        """Rank 0's ``values`` on every rank (so a decision taken from rank 0's clock is shared)."""
        if not self.enabled:
            return list(values)
        t = torch.tensor(values, dtype=torch.float64, device=self.device)
        self._dist.broadcast(t, src=0)
        return [float(v) for v in t.tolist()]

    def gather_objects(self, obj) -> list:
        """Every rank's ``obj`` (picklable), in rank order."""
        if not self.enabled:
            return [obj]
        out = [None] * self.world_size
        self._dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.enabled:
            self._dist.barrier()

    def close(self) -> None:
        if self.enabled and self._dist.is_initialized():
            self._dist.destroy_process_group()
