"""Export artifacts in worker processes, ahead of any timing.

ExecuTorch and LiteRT take seconds to export a block and tens of seconds a whole 320 px model:
exported one by one between timings they dominated a table build (2.4 s per block) and a
validation (50 inas-sod models at 320 px, 36 min). In a pool they run on every core while nothing
is timed, so they cost wall time once and never disturb a measurement. Used by
``lut.measure.BlockMeter.export_ahead`` (blocks) and ``lut.validate.measure_cases`` (whole models).
"""

from __future__ import annotations

import os
import pickle
from typing import Callable, Sequence

# jobs one export worker handles before it is replaced: ExecuTorch's export keeps ~14 MB per block
# alive in its process (a worker's RSS reached 6.3 GB after ~450 inas-sod blocks at 320 px)
EXPORTS_PER_WORKER = 50


def _one_torch_thread() -> None:
    """Each worker traces and converts with one torch thread: the pool already puts a worker on
    every core, and torch's default of one OpenMP thread per core in every worker oversubscribes
    them (OpenVINO exports of inas-sod blocks at 320 px, one worker: 2.8 s per block with the
    default, 1.3 s with one thread; two workers: 3.0 and 2.6 s; measured before the converter's
    telemetry was turned off, ``deploy.openvino_export``)."""
    import torch

    torch.set_num_threads(1)


def default_workers() -> int:
    return min(os.cpu_count() or 1, 4)


def can_pool(fn: Callable, jobs: Sequence[tuple], workers: int, min_jobs: int) -> bool:
    """Whether ``jobs`` are worth a pool (``workers`` > 1, at least ``min_jobs``) and can be sent to
    one (an ssh connection or a lambda cannot be pickled: then the caller exports in-process)."""
    if workers <= 1 or len(jobs) < min_jobs:
        return False
    try:
        pickle.dumps((fn, list(jobs[:3])))
    except (pickle.PicklingError, TypeError, AttributeError):
        return False
    return True


def run_pooled(fn: Callable, jobs: Sequence[tuple], workers: int, done: Callable[[int, object], None]) -> None:
    """``fn(*job)`` for every job in ``workers`` spawned processes; ``done(index, result)`` in this
    process as each finishes (a job that raised re-raises here). Fresh workers every
    ``EXPORTS_PER_WORKER`` jobs each: a new pool per batch, not ``max_tasks_per_child``, which hung
    here once both workers retired."""
    import concurrent.futures as cf
    import multiprocessing

    batch = EXPORTS_PER_WORKER * workers
    for start in range(0, len(jobs), batch):
        with cf.ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                    initializer=_one_torch_thread) as pool:
            futures = {pool.submit(fn, *job): start + i for i, job in enumerate(jobs[start:start + batch])}
            for fut in cf.as_completed(futures):
                done(futures[fut], fut.result())
