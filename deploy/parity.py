"""Parity: run an exported artifact in its own runtime and compare with PyTorch eager.

The comparison input is a fresh seeded tensor of the export shape, not the tracing example, so a
graph that constant-folded its example input (or ignores its input) fails. The figure reported is
max |runtime − PyTorch| over every output element (and the mean), against a tolerance: 1e-4 for
fp32 artifacts by default (field practice: ~1e-7 for ORT fp32), looser for fp16 ones.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np
import torch
import torch.nn as nn

from deploy.errors import ExportError

FP32_TOLERANCE = 1e-4
FP16_TOLERANCE = 2e-2

PASSED, FAILED, SKIPPED = "passed", "failed", "skipped"


@dataclass
class Parity:
    runtime: str
    status: str  # passed | failed | skipped
    tolerance: float
    max_abs_diff: float | None = None
    mean_abs_diff: float | None = None
    reason: str = ""  # why skipped / what failed

    @property
    def passed(self) -> bool:
        return self.status == PASSED

    def to_dict(self) -> dict:
        return asdict(self)


def parity_inputs(example_inputs: Sequence[torch.Tensor], seed: int = 1234) -> tuple[torch.Tensor, ...]:
    """Fresh inputs with the shapes and dtypes of ``example_inputs`` (normal noise, like a normalised image)."""
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(x.shape, generator=g, dtype=torch.float32).to(x.dtype) for x in example_inputs)


def reference_outputs(model: nn.Module, inputs: Sequence[torch.Tensor]) -> list[np.ndarray]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            return flatten_outputs(model(*inputs))
    finally:
        model.train(was_training)


def flatten_outputs(out) -> list[np.ndarray]:
    if isinstance(out, torch.Tensor):
        return [out.detach().cpu().numpy()]
    if isinstance(out, np.ndarray):
        return [out]
    if isinstance(out, (list, tuple)):
        return [a for o in out for a in flatten_outputs(o)]
    raise ExportError(f"parity: unsupported output type {type(out).__name__}")


def compare(runtime: str, reference: Sequence[np.ndarray], outputs: Sequence[np.ndarray], tolerance: float) -> Parity:
    if len(reference) != len(outputs):
        return Parity(runtime, FAILED, tolerance, reason=f"{len(outputs)} outputs, PyTorch gives {len(reference)}")
    max_diff, total, count = 0.0, 0.0, 0
    for i, (ref, out) in enumerate(zip(reference, outputs)):
        out = np.asarray(out)
        if tuple(out.shape) != tuple(ref.shape):
            return Parity(runtime, FAILED, tolerance, reason=f"output {i} shape {tuple(out.shape)} != PyTorch {tuple(ref.shape)}")
        diff = np.abs(out.astype(np.float64) - ref.astype(np.float64))
        if not np.all(np.isfinite(diff)):
            return Parity(runtime, FAILED, tolerance, reason=f"output {i} has non-finite values")
        max_diff = max(max_diff, float(diff.max()) if diff.size else 0.0)
        total += float(diff.sum())
        count += diff.size
    mean = total / max(count, 1)
    status = PASSED if max_diff <= tolerance else FAILED
    reason = "" if status == PASSED else f"max |diff| {max_diff:.3g} > tolerance {tolerance:g}"
    return Parity(runtime, status, tolerance, max_diff, mean, reason)


def ordered_outputs(named: dict) -> list:
    """Values of ``{"output": ...}`` or ``{"output0": ..., "output1": ..., "output10": ...}`` in
    numeric order (runtimes that return outputs by name: Core ML, TensorRT)."""
    return [named[k] for k in _ordered(named)]


def _ordered(named: dict) -> list[str]:
    """``output`` or ``output0``, ``output1``, … ``output10`` in numeric order."""
    def key(name: str):
        digits = name[len(name.rstrip("0123456789")):]
        return (name.rstrip("0123456789"), int(digits) if digits else -1)

    return sorted(named, key=key)
