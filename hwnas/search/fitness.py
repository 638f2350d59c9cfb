"""Fitness and latency of a candidate for the iNAS search (thesis §3.3.1.2).

Fitness = one SOD metric of the subnet that inherits the supernet's weights, after its batch-norm
statistics are re-estimated on training images (the supernet's shared statistics fit no single
subnet), measured on a validation folder. Latency = the device LUT's sum over the subnet's blocks.

Cheap by construction, because evaluation is the cost of a search: validation and calibration
images are decoded and batched once, held in memory, and reused for every candidate (the same
calibration images for all, so candidates are compared fairly); the thesis' 200 calibration
forward passes become a small, stated number (see the CLI defaults).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from deploy.fileio import file_digest  # noqa: F401  (what a resumed search checks its supernet / LUT against)
from hwnas.arch import Arch
from hwnas.errors import DataError
from hwnas.search.errors import SearchError

# metric name -> sign that turns it into a fitness (higher is better)
METRICS = {"max_f": 1.0, "s_measure": 1.0, "max_e": 1.0, "mae": -1.0}
METRIC_LABELS = {"max_f": "maxF", "s_measure": "S", "max_e": "maxE", "mae": "MAE"}


def check_metric(metric: str) -> float:
    if metric not in METRICS:
        raise SearchError(f"metric {metric!r} unknown; allowed: {', '.join(METRICS)}")
    return METRICS[metric]


def _batches(dataset, indices: list[int], batch_size: int, with_masks: bool) -> list:
    import torch

    out = []
    for start in range(0, len(indices), batch_size):
        items = [dataset[i] for i in indices[start : start + batch_size]]
        images = torch.stack([im for im, _ in items])
        out.append((images, torch.stack([m for _, m in items])) if with_masks else images)
    return out


class SupernetFitness:
    """``fitness(arch)``: ``sign * metric`` of ``supernet.subnet(arch)`` after BN recalibration.

    ``val`` is a list of ``(images, masks)`` batches, ``calib`` a list of image batches, both in
    memory. ``last_metrics`` holds every metric of the latest evaluation.
    """

    def __init__(self, supernet, val: list, calib: list, metric: str = "max_f"):
        self.sign = check_metric(metric)
        if not val:
            raise DataError("no validation images to evaluate candidates on")
        if not calib:
            raise DataError("no calibration images to re-estimate batch-norm statistics with")
        self.supernet = supernet.eval()
        self.val = val
        self.calib = calib
        self.metric = metric
        self.last_metrics: dict[str, float] = {}

    def __call__(self, arch: Arch) -> float:
        import torch

        from hwnas.bn import recalibrate_bn
        from hwnas.evaluate import evaluate

        with torch.no_grad():
            net = self.supernet.subnet(arch)
            recalibrate_bn(net, self.calib, len(self.calib))
            self.last_metrics = evaluate(net, self.val)
        return self.sign * float(self.last_metrics[self.metric])

    def metric_value(self, fitness: float) -> float:
        """The metric behind a fitness value (undoes the sign of ``mae``)."""
        return self.sign * fitness

    @classmethod
    def from_folders(
        cls, supernet, val_dir: str | Path, calib_dir: str | Path, resolution: int, metric: str = "max_f",
        val_images: int | None = 32, calib_batches: int = 2, batch_size: int = 16, seed: int = 0, val_skip: int = 0,
    ) -> SupernetFitness:
        """Load ``val_images`` validation pairs (the first by file stem after skipping ``val_skip``;
        all the rest if None) and ``calib_batches`` x ``batch_size`` training images (a seeded random
        subset) at ``resolution``. A ``val_skip`` of N gives a re-measurement on other images than
        ``val_images=N`` does: the same candidates scored twice, the metric's own test-retest."""
        from hwnas.data import SODFolder

        check_metric(metric)
        if calib_batches < 1 or batch_size < 1:
            raise SearchError(f"calibration needs >= 1 batch of >= 1 image, got {calib_batches} x {batch_size}")
        if val_images is not None and val_images < 1:
            raise SearchError(f"val_images must be >= 1 (or None for all), got {val_images}")
        val_set = SODFolder(val_dir, size=resolution)
        calib_set = SODFolder(calib_dir, size=resolution)
        if not 0 <= val_skip < len(val_set):
            raise SearchError(f"skipping {val_skip} of the {len(val_set)} validation pairs in {val_dir} leaves none")
        n_val = len(val_set) - val_skip if val_images is None else min(val_images, len(val_set) - val_skip)
        val = _batches(val_set, list(range(val_skip, val_skip + n_val)), batch_size, with_masks=True)
        n_cal = min(len(calib_set), calib_batches * batch_size)
        idx = sorted(random.Random(seed).sample(range(len(calib_set)), n_cal))
        calib = _batches(calib_set, idx, batch_size, with_masks=False)
        return cls(supernet, val, calib, metric)


def load_fitness(supernet: str | Path, space, val_dir: str | Path, calib_dir: str | Path, resolution: int,
                 metric: str = "max_f", val_images: int | None = 32, calib_batches: int = 2, batch_size: int = 16,
                 seed: int = 0, device: str = "cpu", val_skip: int = 0) -> SupernetFitness:
    """:class:`SupernetFitness` from files: the supernet checkpoint and the two folders. ``device``:
    where subnets run (``cpu``, ``cuda:N``); batches follow the model's device."""
    from hwnas.checkpoint import load_supernet

    net = load_supernet(supernet, space).to(device)
    return SupernetFitness.from_folders(net, val_dir, calib_dir, resolution, metric, val_images, calib_batches, batch_size, seed,
                                        val_skip)


_WORKER_FITNESS: SupernetFitness | None = None


def _worker_init(kwargs: dict, threads: int) -> None:
    import torch

    global _WORKER_FITNESS
    torch.set_num_threads(threads)
    _WORKER_FITNESS = load_fitness(**kwargs)


def _worker_eval(arch: str) -> float:
    assert _WORKER_FITNESS is not None
    return _WORKER_FITNESS(Arch.from_string(arch))


class PoolFitness:
    """:class:`SupernetFitness` evaluated by ``workers`` processes (one torch thread each).

    Candidates are independent and deterministic, so splitting them over processes changes nothing
    but the wall time; :meth:`map` returns values in input order, as the search's cache expects.
    Each worker loads the supernet and images once. ``kwargs`` are :func:`load_fitness`'s (the space
    as a name or YAML path, so it pickles).
    """

    def __init__(self, workers: int, threads_per_worker: int = 1, **kwargs):
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        self.sign = check_metric(kwargs.get("metric", "max_f"))
        # spawn, not fork: forking a process that already runs torch threads can deadlock
        self.pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                                        initializer=_worker_init, initargs=(kwargs, threads_per_worker))

    def map(self, archs: list[Arch]):
        return self.pool.map(_worker_eval, [a.to_string() for a in archs])

    def __call__(self, arch: Arch) -> float:
        return self.pool.submit(_worker_eval, arch.to_string()).result()

    def metric_value(self, fitness: float) -> float:
        return self.sign * fitness

    def close(self) -> None:
        self.pool.shutdown(cancel_futures=True)


class LutLatency:
    """``latency_ms(arch)`` = the LUT's prediction for ``space.blocks(arch)``, memoised by arch."""

    def __init__(self, table, space, calibrated: bool = True):
        self.table = table
        self.space = space
        self.calibrated = calibrated
        self._memo: dict[str, float] = {}

    def __call__(self, arch: Arch) -> float:
        key = arch.to_string()
        hit = self._memo.get(key)
        if hit is None:
            keys = [b.key for b in self.space.blocks(arch)]
            hit = float(self.table.predict_ms(keys, calibrated=self.calibrated))
            if len(self._memo) < 1_000_000:
                self._memo[key] = hit
        return hit

    @property
    def resolutions(self) -> list[int]:
        """Resolutions the table was built for (all of the space's when it does not say)."""
        listed = self.table.metadata.get("resolutions")
        return sorted(int(r) for r in listed) if listed else sorted(self.space.resolutions)

    @classmethod
    def from_file(cls, path: str | Path, space, calibrated: bool = True) -> LutLatency:
        from lut.table import LatencyTable

        table = LatencyTable.read(path)
        table.check_compatible(space_hash=space.hash)
        return cls(table, space, calibrated)


def describe(**items: Any) -> dict[str, Any]:
    """A JSON-able fingerprint (paths as strings)."""
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in items.items()}
