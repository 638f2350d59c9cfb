"""The cache state a block sees inside a whole model, recreated before each timed run of it alone.

A block timed over and over runs in the caches its own previous run left: its weights and buffers
stay in L2/L3. Inside a whole model, everything the other blocks touched came in between, and once
a model's data per inference outgrows the caches its kernels run slower: inas-sod at 320 px, the
same ONNX Runtime kernels took 32.0 ms inside the whole model and 26.1 ms summed over its blocks
(`bench/context_kernels.py`), the convolutions +19 %, max-pooling +60 %; after a flush of the
caches before each run of its blocks in context, the sum was within -3.4 % / +7.5 % of the whole
model's (two archs).

:class:`CacheFlush` touches (reads and writes) a model's distinct bytes (``lut.footprint``) before
each run, where they exceed the last-level cache of the machine it runs on; capped at twice that
cache (beyond, a flush only costs time). A model that fits in the last-level cache keeps its
blocks' data there between inferences, and there a flush would only add misses the model does not
pay: inas-tiny at 64 px (1.2 MB distinct, 3.2 MB summed over its blocks), a table whose context runs
followed a 3.2 MB flush predicted fresh models 14 % high
(``bench/results/lut_accuracy_tiny-ort1-v3-flushall.md``), one timed warm 1.3 % (``...-v3.md``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

_FALLBACK_LLC_BYTES = 64 << 20  # when sysfs does not say (not Linux): larger than most CPUs' L3


def last_level_cache_bytes() -> int:
    """The largest data/unified cache of cpu0 per Linux sysfs (``index*/size``), else 64 MiB."""
    best = 0
    for d in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            if (d / "type").read_text().strip() == "Instruction":
                continue
            text = (d / "size").read_text().strip().upper()
        except OSError:
            continue
        scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
        try:
            best = max(best, int(text.rstrip("KMG")) * scale)
        except ValueError:
            continue
    return best or _FALLBACK_LLC_BYTES


class CacheFlush:
    """A callable that touches ``nbytes`` of its own memory, capped at 2x the last-level cache, or
    nothing when ``nbytes`` fits in that cache (a model that small runs from it)."""

    def __init__(self, nbytes: int):
        llc = last_level_cache_bytes()
        self.nbytes = int(min(nbytes, 2 * llc)) if nbytes > llc else 0
        self._buf = np.zeros(self.nbytes // 4, dtype=np.float32) if self.nbytes >= 4 else None

    def __call__(self) -> None:
        if self._buf is not None:
            np.add(self._buf, 1.0, out=self._buf)  # read + write: dirty lines, as a model's activations leave
