"""The fixed workloads a latency table is measured against: a reference model and an empty call.

**Reference** (drift compensation). This machine's speed drifts: slow spells of seconds, 25 % of
0.5 s windows more than 10 % slow (``bench/machine_drift.py``), and a table built in a slow hour
predicts every model too slow. Every block is therefore timed interleaved with one fixed
reference model, run for run in random order (``profilers.stats.time_interleaved``), and stored
with the reference's median of the same window. The *ratio* block/reference cancels what slowed
both; the table converts ratios back to milliseconds with the reference's speed over the whole
build (``lut.table.reference_speed_ms``: its fast state, where the machine switches between states). Whole models are validated the same way.
Which reference: a small convolution stack (``REFERENCE_NAME``), the same on a 256 px input for
models that outgrow the last-level cache (``LARGE_REFERENCE_NAME``), or a whole model of the
table's own search space (``space-model:…``, built by ``hwnas.reference``), which shares the
models' many small nodes, resizes and layout conversions: over 8 minutes in which sub-ms inas-tiny
models' raw medians moved 2.35x, their ratio to it moved 1.10x, to the small stack 1.37x
(``bench/reference_candidates.py``).

**Call** (per-inference overhead). An isolated block pays one runtime call (dispatch, input and
output binding) that a whole model pays once for all its blocks. A model that does next to
nothing (one ReLU on 8 numbers) measures it, interleaved with the reference like everything else.

**I/O** (the part of a call that grows with its tensors). ExecuTorch copies a call's inputs into
its planned memory and its outputs back out, OpenVINO copies both unless told to share them: time
a whole model never spends on its inner tensors. A 1x1 depthwise convolution with inputs and
outputs of a given size measures it (its wall time less the call and less its own operators, as
the runtime's profiler reports them): ``lut.measure.IOCost``. ExecuTorch XNNPACK, 1 thread, here:
12 us outside the operators at 4 KB in and out, 62 us at 0.4 MiB, 0.55-0.72 ms at 3.1 MiB.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

REFERENCE_NAME = "ref-conv16-32px-v1"  # change the name when the workload changes: tables record it
# The same layers on a 256 x 256 input (4 MB per tensor: beyond L2, inside a 32 MB L3), ~4 ms at 1
# thread, for tables of models that outgrow the last-level cache. Why: at 320 px a 40-50 ms model
# streams its layers' MB-sized activations through the shared L3, and on a host whose speed moved
# ±15 % over tens of seconds the 50 KB reference, which lives in L2, followed it only partly.
# Interleaved with 8 inas-sod models at 320 px in 6 rounds (bench/reference_ab.py, two runs of
# different models), the far-apart retest of the models' ratios: ONNX Runtime 1 thread 3.56 / 3.96 %
# to the 32 px reference, 1.55 / 2.42 % to this one (raw 7.06 / 7.32 %); 2 threads 12.8 / 8.62 % vs
# 4.01 / 5.57 % (raw 13.0 / 22.8 %).
LARGE_REFERENCE_NAME = "ref-conv16-256px-v1"
REFERENCE_SIDES = {REFERENCE_NAME: 32, LARGE_REFERENCE_NAME: 256}


class _Reference(nn.Module):
    """Convolutions of the kinds the blocks run (dense 3x3, depthwise, pointwise), ~0.1 ms at 1 thread
    on its 32 x 32 input."""

    def __init__(self):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1, groups=16), nn.ReLU(),
            nn.Conv2d(16, 16, 1))

    def forward(self, x):
        return self.body(x)


# Named references defined outside this package, by the prefix of their names: a search space's own
# model as the reference (``hwnas.reference``, ``space-model:``) is built by the package that knows
# spaces, which registers its builder here (``lut`` does not import ``hwnas``).
_RESOLVERS: dict[str, Callable[[str], tuple[nn.Module, tuple]]] = {}


def register_resolver(prefix: str, build: Callable[[str], tuple[nn.Module, tuple]]) -> None:
    """References named ``prefix + rest`` are built by ``build(rest)`` -> (module, example inputs)."""
    _RESOLVERS[prefix] = build


def reference_model(name: str = REFERENCE_NAME) -> tuple[nn.Module, tuple]:
    """(module, example inputs) of the reference called ``name``, the same on every machine (seeded weights)."""
    side = REFERENCE_SIDES.get(name)
    if side is not None:
        return sized_reference(side)
    for prefix, build in _RESOLVERS.items():
        if name.startswith(prefix):
            return build(name[len(prefix):])
    from lut.errors import LUTError

    raise LUTError(f"reference {name!r} unknown; allowed: {', '.join(REFERENCE_SIDES)}"
                   + "".join(f", or {p}…" for p in _RESOLVERS))


def sized_reference(side: int) -> tuple[nn.Module, tuple]:
    """The reference's layers and seeded weights on a ``side`` x ``side`` input (the named ones are
    32 and 256; ``bench/reference_ab.py`` compares other sides)."""
    torch.manual_seed(0)
    return _Reference().eval(), (torch.randn(1, 16, side, side, generator=torch.Generator().manual_seed(0)),)


def call_model() -> tuple[nn.Module, tuple]:
    """The cheapest model a runtime still has to call: what remains is the per-call overhead."""
    return nn.ReLU().eval(), (torch.zeros(1, 8, 1, 1),)


def io_model(nbytes: int) -> tuple[nn.Module, tuple]:
    """A model whose input and output each hold about ``nbytes`` (fp32, 16 channels, square) and
    whose only operator is a 1x1 depthwise convolution: what a call of that size costs beyond the
    operators is its I/O (``lut.measure.IOCost``)."""
    side = max(1, round((max(nbytes, 64) / (4 * 16)) ** 0.5))
    torch.manual_seed(0)
    return nn.Conv2d(16, 16, 1, groups=16).eval(), (torch.randn(1, 16, side, side, generator=torch.Generator().manual_seed(0)),)
