"""The cache state a block sees inside a whole model, recreated before each timed run of it alone.

A block timed over and over runs in the caches its own previous run left: its weights and buffers
stay in L2/L3. Inside a whole model, everything the other blocks touched came in between, and once
a model's data per inference outgrows the caches its kernels run slower: inas-sod at 320 px, the
same ONNX Runtime kernels took 32.0 ms inside the whole model and 26.1 ms summed over its blocks
(`bench/context_kernels.py`), the convolutions +19 %, max-pooling +60 %; after a flush of the
caches before each run of its blocks in context, the sum was within -3.4 % / +7.5 % of the whole
model's (two archs).

Whether a model's data stays in the cache between inferences is **measured** here
(:func:`probe_cache`), not read from the cache's size: on an Intel host (family 6 model 167, a
2-core VM) sysfs reports a 480 MiB L3, but a buffer passed over and over ran at or near memory
speed from 64 MiB up (its share of a cache shared with other tenants); an inas-sod model at 320 px
touches 85 MB, and a table whose context runs were left warm because 85 MB < 480 MiB predicted
fresh models 15.4 % low, the blocks of one arch summing 16.8 % under the whole model, 5.8 % under it
after a forced flush (``bench/context_outside.py --variants build,flush-180``); built with this
probe's decision (45-64 MiB stays, so the flush), the table predicted 50 fresh models within
2.05 % (MAPE; bias +1.0 %, ``bench/results/lut_accuracy_sod-ort1-s40.md``).

:func:`flush_bytes` is the rule: a model that stays cached keeps its blocks' data there between
inferences, and there a flush would only add misses the model does not pay (inas-tiny at 64 px,
1.2 MB distinct, 3.2 MB summed over its blocks: a table whose context runs followed a 3.2 MB flush
predicted fresh models 14 % high, ``bench/results/lut_accuracy_tiny-ort1-v3-flushall.md``, one
timed warm 1.3 %, ``...-v3.md``); a model that does not is flushed by its distinct bytes
(``lut.footprint``), capped at twice the last-level cache (beyond, a flush only costs time).
:class:`CacheFlush` touches what it is given.
"""

from __future__ import annotations

import functools
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

_FALLBACK_LLC_BYTES = 64 << 20  # when sysfs does not say (not Linux): larger than most CPUs' L3
_FALLBACK_PRIVATE_BYTES = 1 << 20  # a core's own cache when sysfs does not say
CACHE_BYTES_ENV = "HWNAS_CACHE_BYTES"  # overrides the probe: bytes a model's data keeps cached here


def _sysfs_caches() -> list[tuple[int, int]]:
    """(level, bytes) of cpu0's data/unified caches per Linux sysfs; empty where it does not say."""
    out = []
    for d in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            if (d / "type").read_text().strip() == "Instruction":
                continue
            level = int((d / "level").read_text().strip())
            text = (d / "size").read_text().strip().upper()
            scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
            out.append((level, int(text.rstrip("KMG")) * scale))
        except (OSError, ValueError):
            continue
    return out


def last_level_cache_bytes() -> int:
    """The largest data/unified cache of cpu0 per Linux sysfs (``index*/size``), else 64 MiB: the
    most that can stay cached (a VM's share of it may be far less: :func:`retained_cache_bytes`)."""
    return max((b for _, b in _sysfs_caches()), default=0) or _FALLBACK_LLC_BYTES


def private_cache_bytes() -> int:
    """The largest cache below the last level per sysfs (a core's L2), else 1 MiB."""
    caches = _sysfs_caches()
    top = max((lvl for lvl, _ in caches), default=0)
    return max((b for lvl, b in caches if lvl < top), default=0) or _FALLBACK_PRIVATE_BYTES


@dataclass(frozen=True)
class CacheProbe:
    """What :func:`probe_cache` measured: ``retained_bytes``, the largest working set that a pass
    over it, repeated, finds in the cache; the per-byte time of a pass just beyond the core's own
    cache (``cache_ns_per_byte``) and over twice the last-level cache (``memory_ns_per_byte``);
    the ladder of sizes tried and their per-byte times (of the median climb); ``climbs_bytes``, every
    climb's retained bytes, smallest first (a model whose bytes lie between them is a borderline
    decision: :func:`borderline`)."""

    retained_bytes: int
    cache_ns_per_byte: float
    memory_ns_per_byte: float
    sizes: tuple[int, ...]
    ns_per_byte: tuple[float, ...]
    sysfs_llc_bytes: int
    climbs_bytes: tuple[int, ...] = ()
    private_bytes: int = 0  # a core's own cache per sysfs (hwnas.cli.lut._cold_context_plan), 0: unknown

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in asdict(self).items()}


def _pass_ns_per_byte(buf: np.ndarray, passes: int) -> float:
    """Fastest of ``passes`` read+write passes over ``buf`` (after one untimed), in ns per byte."""
    np.add(buf, 1.0, out=buf)
    best = math.inf
    for _ in range(passes):
        t = time.perf_counter()
        np.add(buf, 1.0, out=buf)  # read + write: dirty lines, as a model's activations leave
        best = min(best, time.perf_counter() - t)
    return best * 1e9 / buf.nbytes


def _ladder(start: int, stop: int, memory_ns: float, passes: int) -> tuple[int, list[int], list[float]]:
    """One climb of the buffer ladder: (retained bytes, sizes tried, their ns per byte)."""
    sizes, times = [], []
    size = float(start)
    while not sizes or size <= stop:
        n = int(size) // 4096 * 4096
        sizes.append(n)
        times.append(_pass_ns_per_byte(np.zeros(n // 4, dtype=np.float32), passes))
        if times[-1] > (times[0] + memory_ns) / 2:
            break
        size *= math.sqrt(2)
    cutoff = (times[0] + memory_ns) / 2
    passed = [s for s, t in zip(sizes, times) if t <= cutoff]  # all but a last one that stopped the ladder
    retained = passed[-1] if passed and times[0] < 0.9 * memory_ns else private_cache_bytes()
    # (where nothing beyond the core's own cache is measurably faster than memory, only that cache counts)
    return retained, sizes, times


def probe_cache(passes: int = 5, climbs: int = 3) -> CacheProbe:
    """Measure how large a working set stays in this machine's caches between passes over it.

    A buffer is passed over repeatedly at sizes from twice the core's own cache upward (steps of
    sqrt(2), up to twice the last-level cache); a size counts as cached while its pass costs at most
    the midpoint between the first size's per-byte time and that of a buffer of twice the last-level
    cache (memory); the ladder stops at the first size that does not (``private_bytes`` records that
    own cache, as sysfs gives it). Rule fixed before it was
    scored on any table. The ladder is climbed ``climbs`` times and the median result kept: on a
    shared host the step at the boundary sits near the cutoff, and single climbs there gave 45, 64
    and (once, in a benchmark's process) at least 90 MiB. About 1-3 s; allocates up to twice the
    last-level cache (capped at 2 GiB)."""
    llc = last_level_cache_bytes()
    memory_bytes = min(max(2 * llc, 64 << 20), 2 << 30)
    memory = np.zeros(memory_bytes // 4, dtype=np.float32)
    memory_ns = _pass_ns_per_byte(memory, max(2, passes // 2))
    del memory
    start = min(2 * private_cache_bytes(), max(llc // 2, 1 << 16))
    results = sorted((_ladder(start, min(2 * llc, memory_bytes), memory_ns, passes) for _ in range(max(1, climbs))),
                     key=lambda r: r[0])
    retained, sizes, times = results[len(results) // 2]
    return CacheProbe(int(retained), float(times[0]), float(memory_ns), tuple(sizes), tuple(float(t) for t in times),
                      int(llc), tuple(int(r[0]) for r in results), int(private_cache_bytes()))


def borderline(model_bytes: int, climbs_bytes) -> bool:
    """Whether the climbs of one probe disagree on ``model_bytes``: some found it cached, some not,
    so a build on another minute could decide the other way (on one Intel host session 43's probe
    gave 91 MiB, the median of its climbs, against 45-64 MiB in earlier sessions, for an 85 MB
    model that a forced flush showed does not stay cached inside a whole model there)."""
    climbs = [int(c) for c in climbs_bytes or ()]
    return bool(climbs) and model_bytes > 0 and min(climbs) < model_bytes <= max(climbs)


@functools.lru_cache(maxsize=1)
def _probe_once() -> CacheProbe:
    return probe_cache()


def retained_cache_bytes() -> int:
    """Bytes of a model's data that stay cached between its inferences on this machine: the
    ``HWNAS_CACHE_BYTES`` environment variable where set (where the probe is known to be wrong, or
    to reproduce a table's decision), else :func:`probe_cache`'s, measured once per process."""
    raw = os.environ.get(CACHE_BYTES_ENV)
    if raw is not None:
        try:
            value = int(raw)
        except ValueError:
            value = -1
        if value < 0:
            raise ValueError(f"{CACHE_BYTES_ENV}={raw!r}: expected a non-negative integer number of bytes")
        return value
    return _probe_once().retained_bytes


def flush_bytes(model_bytes: int, retained: int | None = None) -> int:
    """Bytes to touch before a block's context runs so that its data is where a model touching
    ``model_bytes`` per inference leaves it: none where that model stays cached (``retained``, default
    :func:`retained_cache_bytes`), else ``model_bytes`` capped at twice the last-level cache."""
    if model_bytes <= 0:
        return 0
    retained = retained_cache_bytes() if retained is None else retained
    return 0 if model_bytes <= retained else int(min(model_bytes, 2 * last_level_cache_bytes()))


class CacheFlush:
    """A callable that touches ``nbytes`` of its own memory (capped at twice the last-level cache;
    none for ``nbytes`` <= 0), split over ``threads`` threads (``Protocol.flush_threads``). Whether to
    flush at all is :func:`flush_bytes`' decision."""

    def __init__(self, nbytes: int, threads: int = 1):
        if threads < 1:
            raise ValueError(f"flush threads must be >= 1, got {threads}")
        self.nbytes = int(min(max(nbytes, 0), 2 * last_level_cache_bytes()))
        self._buf = np.zeros(self.nbytes // 4, dtype=np.float32) if self.nbytes >= 4 else None
        self._parts = np.array_split(self._buf, threads) if self._buf is not None and threads > 1 else []
        self._pool = None
        if self._parts:
            from concurrent.futures import ThreadPoolExecutor

            self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="hwnas-flush")

    def __call__(self) -> None:
        if self._pool is not None:
            # numpy releases the GIL in the loop: every core writes its share, as a multi-threaded
            # model's activations are written by all of its threads
            list(self._pool.map(_touch, self._parts))
        elif self._buf is not None:
            _touch(self._buf)

    def __del__(self):
        if getattr(self, "_pool", None) is not None:
            self._pool.shutdown(wait=False)


def _touch(buf: np.ndarray) -> None:
    np.add(buf, 1.0, out=buf)  # read + write: dirty lines, as a model's activations leave
