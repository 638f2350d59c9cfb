"""``--threads auto``: pick the torch thread count that trains fastest on this machine *now*.

Why a probe and not ``os.cpu_count()``: on a 2-core machine with another process busy on one core,
2 intra-op threads trained the inas-tiny supernet ~4x slower than idle (2.5 vs 0.6 s per sandwich
step): every parallel region waits for the thread the scheduler has preempted. A budgeted run
then trains a quarter of the steps. One thread on the free core is not hit by that. So before
training, a copy of the supernet runs forward + backward of its largest subnet on one batch at the
largest resolution with each candidate count, and the fastest is kept (ties go to fewer threads).
The copy and a local generator leave the training itself untouched: the same weights, RNG and
batch order as a run given that count explicitly.
"""

from __future__ import annotations

import copy
import os
import time

import torch

PROBE_REPEATS = 2  # timed passes per candidate after one untimed pass; the fastest counts


def candidate_threads(world_size: int = 1) -> list[int]:
    """1 .. the cores this process may use, shared among the processes of a run."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return list(range(1, max(1, cores // max(1, world_size)) + 1))


def probe_threads(net, space, resolution: int, batch_size: int, candidates: list[int]) -> tuple[int, dict[int, float]]:
    """(fastest thread count, {count: seconds per forward+backward}) of the largest subnet."""
    if len(candidates) == 1:
        return candidates[0], {}
    before = torch.get_num_threads()
    rng_state = torch.get_rng_state()
    probe = copy.deepcopy(net).train()
    probe.set_active(space.largest(resolution))
    g = torch.Generator().manual_seed(0)
    images = torch.randn(batch_size, 3, resolution, resolution, generator=g)
    seconds: dict[int, float] = {}
    try:
        for n in candidates:
            torch.set_num_threads(n)
            times = []
            for k in range(PROBE_REPEATS + 1):
                t0 = time.perf_counter()
                out = probe(images)
                sum(o.float().mean() for o in (out if isinstance(out, (tuple, list)) else (out,))).backward()
                probe.zero_grad(set_to_none=True)
                if k:
                    times.append(time.perf_counter() - t0)
            seconds[n] = min(times)
    finally:
        torch.set_num_threads(before)
        torch.set_rng_state(rng_state)
    return choose_threads(seconds), seconds


def choose_threads(seconds: dict[int, float]) -> int:
    """The fewest threads within 5 % of the fastest (a core left free for nothing is a core lost to
    a neighbour's burst)."""
    fastest_s = min(seconds.values())
    return min(n for n, s in seconds.items() if s <= 1.05 * fastest_s)
