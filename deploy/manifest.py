"""``manifest.json``: what an export directory holds and what was (and was not) verified.

One manifest per export directory: the architecture and where its weights came from, the input
(shape, layout, normalisation) and output meaning, library versions, and per artifact its file,
size, sha256, export time, parity figures, delegation/spec details, and what could not be
verified here and why. Written atomically (``deploy.fileio.atomic_write_json``).
"""

from __future__ import annotations

import datetime as _dt
import json
import platform
from importlib import metadata
from pathlib import Path

from deploy.fileio import atomic_write_json

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1

# distribution names, read from package metadata so nothing heavy is imported
_DISTRIBUTIONS = ("torch", "onnx", "onnxruntime", "onnxscript", "executorch", "coremltools", "tensorrt",
                  "openvino", "litert-torch", "ai-edge-litert", "numpy")


def library_versions() -> dict[str, str | None]:
    out = {"python": platform.python_version()}
    for name in _DISTRIBUTIONS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def build_manifest(meta: dict, input_shapes: list[list[int]], artifacts: list[dict]) -> dict:
    """The manifest dict. ``meta`` (from the caller) may hold ``arch``, ``space``, ``space_hash``,
    ``weights``, ``normalisation`` and ``output``; anything else is kept under ``extra``."""
    known = {"arch", "space", "space_hash", "weights", "normalisation", "output"}
    names = ["input"] if len(input_shapes) == 1 else [f"input{i}" for i in range(len(input_shapes))]
    return {
        "manifest_version": MANIFEST_VERSION,
        "created_utc": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "arch": meta.get("arch"),
        "space": meta.get("space"),
        "space_hash": meta.get("space_hash"),
        "weights": meta.get("weights", "unspecified"),
        "inputs": [
            {"name": n, "shape": list(s), "dtype": "float32", "layout": "NCHW",
             "normalisation": meta.get("normalisation")}
            for n, s in zip(names, input_shapes)
        ],
        "output": meta.get("output"),
        "versions": library_versions(),
        "host": {"system": platform.system(), "machine": platform.machine()},
        "artifacts": artifacts,
        # what this machine could not prove, and why (e.g. Core ML prediction off macOS, no TensorRT)
        "not_verified_here": [
            {"format": a["format"], "status": a["status"], "reason": a.get("message", "")}
            for a in artifacts if a.get("status") != "passed"
        ],
        "extra": {k: v for k, v in meta.items() if k not in known},
    }


def write_manifest(out_dir, manifest: dict) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / MANIFEST_NAME
    atomic_write_json(path, manifest, indent=2)
    return path


def read_manifest(out_dir) -> dict:
    return json.loads((Path(out_dir) / MANIFEST_NAME).read_text())
