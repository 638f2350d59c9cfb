"""``deploy.export``: one entry point that exports a deploy-form model to several formats, proves
each artifact in its own runtime, and writes ``manifest.json``.

Per format the result is one of: ``passed`` (exported, parity within tolerance), ``parity_failed``
(exported, but the runtime disagrees with PyTorch), ``unverified`` (exported, no runtime here —
Core ML off macOS), or ``failed`` (export failed or the toolchain is missing; nothing is left at
the artifact path). A failing format never stops the others (the Ultralytics benchmark UX).
"""

from __future__ import annotations

import difflib
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable

import torch
import torch.nn as nn

from deploy.errors import ExportError

# format name → artifact file name inside the export directory
FORMATS = {
    "onnx": "model.onnx",
    "executorch": "model.pte",
    "coreml": "model.mlpackage",
    "tensorrt": "model.engine",
}
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
        }


def parse_formats(formats: str | Iterable[str]) -> list[str]:
    """``"onnx,executorch"`` or a list → validated, de-duplicated names; unknown names get a suggestion."""
    names = [f.strip().lower() for f in (formats.split(",") if isinstance(formats, str) else formats)]
    names = [n for n in names if n]
    if not names:
        raise ExportError(f"no export format given; allowed: {', '.join(FORMATS)}")
    out = []
    for name in names:
        name = _ALIASES.get(name, name)
        if name not in FORMATS:
            guess = difflib.get_close_matches(name, list(FORMATS) + list(_ALIASES), n=1, cutoff=0.5)
            hint = f"; did you mean {_ALIASES.get(guess[0], guess[0])!r}?" if guess else ""
            raise ExportError(f"unknown export format {name!r}{hint} (allowed: {', '.join(FORMATS)})")
        if name not in out:
            out.append(name)
    return out


_ALIASES = {"pte": "executorch", "xnnpack": "executorch", "mlpackage": "coreml", "trt": "tensorrt", "engine": "tensorrt"}


def export(model: nn.Module, example_inputs: tuple, formats, out_dir, meta: dict | None = None, *,
           tolerance: float | None = None, tensorrt_precision: str = "fp32", coreml_precision: str = "fp32",
           progress=None) -> list[FormatResult]:
    """Export ``model`` (already in deploy form; put in eval mode here) to each format under
    ``out_dir``, check parity, and write ``out_dir/manifest.json``. Returns one result per format.

    ``meta`` goes into the manifest (``arch``, ``space``, ``space_hash``, ``weights``,
    ``normalisation``, ``output``). ``progress(format_name)`` is called before each format.
    """
    from deploy.manifest import build_manifest, file_digest, write_manifest
    from deploy.parity import FP16_TOLERANCE, FP32_TOLERANCE, parity_inputs, reference_outputs

    names = parse_formats(formats)
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
        target = out_dir / FORMATS[name]
        _remove(target)  # a stale artifact from an earlier run must not pass for this one
        precision = {"tensorrt": tensorrt_precision, "coreml": coreml_precision}.get(name, "fp32")
        tol = tolerance if tolerance is not None else (FP16_TOLERANCE if precision == "fp16" else FP32_TOLERANCE)
        start = time.perf_counter()
        result = FormatResult(name, FAILED, details={"precision": precision})
        try:
            _EXPORTERS[name](model, example_inputs, target, result, out_dir, precision)
            result.export_s = time.perf_counter() - start
            result.path = target
            result.size_bytes, result.sha256 = file_digest(target)
        except ExportError as e:
            _remove(target)
            result.export_s = time.perf_counter() - start
            result.message = str(e)
            results.append(result)
            continue
        except Exception as e:  # a bug in a toolchain must not abort the other formats
            _remove(target)
            result.export_s = time.perf_counter() - start
            result.message = f"{name}: unexpected {type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}"
            results.append(result)
            continue
        try:
            parity = _CHECKS[name](target, reference, inputs, tol)
        except Exception as e:  # the artifact exists but its runtime could not run it
            from deploy.parity import FAILED as P_FAILED, Parity

            parity = Parity(name, P_FAILED, tol, reason=f"runtime error: {type(e).__name__}: {str(e).strip()[:200]}")
        result.parity = parity.to_dict()
        if parity.status == "passed":
            result.status = PASSED
        elif parity.status == "skipped":
            result.status, result.message = UNVERIFIED, parity.reason
        else:
            result.status, result.message = PARITY_FAILED, f"{name}: parity failed: {parity.reason}"
        results.append(result)

    manifest = build_manifest(meta or {}, [list(x.shape) for x in example_inputs],
                              [r.to_manifest(out_dir) for r in results])
    write_manifest(out_dir, manifest)
    return results


# ------------------------------------------------------------------------------ per format
def _export_onnx(model, example_inputs, target, result, out_dir, precision):
    from deploy.onnx_export import export_onnx, onnx_opset

    export_onnx(model, example_inputs, target)
    result.details["opset"] = onnx_opset(target)


def _export_executorch(model, example_inputs, target, result, out_dir, precision):
    from deploy.executorch_export import export_pte_with_summary

    _, summary = export_pte_with_summary(model, example_inputs, target)
    result.details["delegation"] = summary.to_dict()
    if not summary.fully_delegated:
        # still a valid program, but portable kernels are ~50x slower: say so in the row
        result.details["warning"] = f"ops outside XNNPACK (portable kernels): {summary.non_delegated_ops}"


def _export_coreml(model, example_inputs, target, result, out_dir, precision):
    from deploy.coreml_export import coreml_spec_summary, export_coreml

    export_coreml(model, example_inputs, target, precision=precision)
    spec = coreml_spec_summary(target)
    result.details["spec"] = spec
    expected_in = [list(x.shape) for x in example_inputs]
    if [i["shape"] for i in spec["inputs"]] != expected_in:
        raise ExportError(f"coreml: converted inputs {spec['inputs']} do not match the export shapes {expected_in}")


def _export_tensorrt(model, example_inputs, target, result, out_dir, precision):
    from deploy.onnx_export import export_onnx
    from deploy.tensorrt_export import EngineConfig, build_engine, tensorrt_status

    ok, reason = tensorrt_status()
    if not ok:
        raise ExportError(f"tensorrt: unavailable here: {reason}; build on the target with "
                          f"`trtexec --onnx=model.onnx --saveEngine=model.engine`")
    onnx_path = out_dir / FORMATS["onnx"]
    tmp_dir = None
    if not onnx_path.exists():  # the engine is built from ONNX; export one privately if not asked for
        tmp_dir = Path(tempfile.mkdtemp(prefix=".trt-onnx-", dir=out_dir))
        onnx_path = export_onnx(model, example_inputs, tmp_dir / "model.onnx")
    try:
        build_engine(onnx_path, target, EngineConfig(precision=precision))
    finally:
        if tmp_dir:
            shutil.rmtree(tmp_dir, ignore_errors=True)


def _check(name):
    def run(target, reference, inputs, tol):
        from deploy import parity

        return getattr(parity, f"check_{name}")(target, reference, inputs, tol)

    return run


_EXPORTERS = {"onnx": _export_onnx, "executorch": _export_executorch, "coreml": _export_coreml, "tensorrt": _export_tensorrt}
_CHECKS = {"onnx": _check("onnx"), "executorch": _check("pte"), "coreml": _check("coreml"), "tensorrt": _check("tensorrt")}


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path, ignore_errors=True)
    elif path.exists() or path.is_symlink():
        path.unlink()
