"""``deploy.export``: one entry point that exports a deploy-form model to several formats, proves
each artifact in its own runtime, and writes ``manifest.json``.

Per format the result is one of: ``passed`` (exported, parity within tolerance), ``parity_failed``
(exported, but the runtime disagrees with PyTorch), ``unverified`` (exported, no runtime here —
Core ML off macOS), or ``failed`` (export failed or the toolchain is missing; nothing is left at
the artifact path). A failing format never stops the others (the Ultralytics benchmark UX).
"""

from __future__ import annotations

import errno
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn as nn

from deploy.errors import ExportError
from deploy.formats import get as get_format, parse_formats, parse_precisions
from deploy.fileio import first_line

PASSED, PARITY_FAILED, UNVERIFIED, FAILED = "passed", "parity_failed", "unverified", "failed"
STATUS_LABELS = {
    PASSED: "passed",
    PARITY_FAILED: "exported, parity FAILED",
    UNVERIFIED: "exported, not verified here",
    FAILED: "export failed",
}


@dataclass
class FormatResult:
    format: str
    status: str
    path: Path | None = None
    size_bytes: int | None = None
    sha256: str | None = None
    export_s: float | None = None
    parity: dict | None = None
    message: str = ""  # the cause of a failure, or why it could not be verified
    details: dict = field(default_factory=dict)  # delegation summary, Core ML spec, opset, precision…
    companions: list[dict] = field(default_factory=list)  # files beside ``path`` it needs: file, size, sha256

    @property
    def label(self) -> str:
        return STATUS_LABELS[self.status]

    def to_manifest(self, out_dir: Path) -> dict:
        return {
            "format": self.format,
            "file": self.path.relative_to(out_dir).as_posix() if self.path else None,
            "status": self.status,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "export_s": None if self.export_s is None else round(self.export_s, 3),
            "parity": self.parity,
            "message": self.message,
            "details": self.details,
            "companions": self.companions,
        }


def export(model: nn.Module, example_inputs: tuple, formats, out_dir, meta: dict | None = None, *,
           tolerance: float | None = None, precision: str | dict | None = None, progress=None) -> list[FormatResult]:
    """Export ``model`` (already in deploy form; put in eval mode here) to each format under
    ``out_dir``, check parity in each format's runtime, and write ``out_dir/manifest.json``.

    ``formats``: names or aliases of registered formats (``deploy.formats``), a list or a comma
    string. ``precision``: per format, ``"tensorrt=fp16"`` or ``{"tensorrt": "fp16"}`` (default:
    each format's first precision). ``meta`` goes into the manifest (``arch``, ``space``,
    ``space_hash``, ``weights``, ``normalisation``, ``output``). ``progress(format_name)`` is
    called before each format. Returns one result per format.
    """
    from deploy.manifest import build_manifest, write_manifest
    from deploy.parity import FP16_TOLERANCE, FP32_TOLERANCE, parity_inputs, reference_outputs

    names = parse_formats(formats)
    precisions = parse_precisions(precision, names)
    if not isinstance(example_inputs, tuple) or not all(isinstance(x, torch.Tensor) for x in example_inputs):
        raise ExportError("example_inputs must be a tuple of tensors")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = model.eval()
    inputs = parity_inputs(example_inputs)
    reference = reference_outputs(model, inputs)

    results = []
    for name in names:
        if progress:
            progress(name)
        fmt = get_format(name)
        results.append(_export_one(fmt, model, example_inputs, out_dir, precisions[name], reference, inputs,
                                   tolerance, FP16_TOLERANCE if precisions[name] == "fp16" else FP32_TOLERANCE))

    manifest = build_manifest(meta or {}, [list(x.shape) for x in example_inputs],
                              [r.to_manifest(out_dir) for r in results])
    write_manifest(out_dir, manifest)
    return results


def _export_one(fmt, model, example_inputs, out_dir: Path, precision: str, reference, inputs,
                tolerance: float | None, default_tolerance: float) -> FormatResult:
    from deploy.fileio import file_digest, path_size, writing_to
    from deploy.parity import FAILED as P_FAILED, SKIPPED, Parity

    target = out_dir / fmt.file
    _remove_files(out_dir, fmt)  # a stale artifact from an earlier run must not pass for this one
    tol = tolerance if tolerance is not None else default_tolerance
    result = FormatResult(fmt.name, FAILED, details={"precision": precision})
    start = time.perf_counter()
    try:
        with writing_to(target):  # a full disk names the artifact, whatever the toolchain said
            details = fmt.export(model, example_inputs, target, precision=precision, out_dir=out_dir)
        result.details.update(details or {})
        missing = [f for f in fmt.files if not (out_dir / f).exists()]
        if missing:
            raise ExportError(f"{fmt.name}: the exporter did not write {missing}")
    except Exception as e:  # a bug in a toolchain must not abort the other formats
        _remove_files(out_dir, fmt)
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            raise  # a full disk stops every format: the CLI reports it as such
        result.export_s = time.perf_counter() - start
        if isinstance(e, ExportError):
            result.message = str(e)
        elif isinstance(e, ImportError):
            result.message = f"{fmt.name}: toolchain not installed ({first_line(e)}); {fmt.install_hint()}"
        else:
            result.message = f"{fmt.name}: unexpected {first_line(e, with_type=True)}"
        return result
    result.export_s = time.perf_counter() - start
    result.path = target
    result.size_bytes, result.sha256 = path_size(target), file_digest(target)
    result.companions = [{"file": f, "size_bytes": path_size(out_dir / f), "sha256": file_digest(out_dir / f)}
                         for f in fmt.companions]
    try:
        parity = fmt.check(target, reference, inputs, tol)
    except Exception as e:  # the artifact exists but its runtime could not run it
        parity = Parity(fmt.runtime or fmt.name, P_FAILED, tol, reason=f"runtime error: {first_line(e, with_type=True)[:200]}")
    result.parity = parity.to_dict()
    if parity.status == "passed":
        result.status = PASSED
    elif parity.status == SKIPPED:
        result.status, result.message = UNVERIFIED, parity.reason
    else:
        result.status, result.message = PARITY_FAILED, f"{fmt.name}: parity failed: {parity.reason}"
    return result


def _remove_files(out_dir: Path, fmt) -> None:
    for name in fmt.files:
        path = out_dir / name
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        elif path.exists() or path.is_symlink():
            path.unlink()
