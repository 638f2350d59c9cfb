"""``manifest.json``: what an export directory holds and what was (and was not) verified.

One manifest per export directory: the architecture and where its weights came from, the input
(shape, layout, normalisation) and output meaning, library versions, and per artifact its file,
size, sha256, export time, parity figures, delegation/spec details, and what could not be
verified here and why. Written atomically (tmp + ``os.replace``).
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import platform
import tempfile
from importlib import metadata
from pathlib import Path

MANIFEST_NAME = "manifest.json"
MANIFEST_VERSION = 1

# distribution names, read from package metadata so nothing heavy is imported
_DISTRIBUTIONS = ("torch", "onnx", "onnxruntime", "onnxscript", "executorch", "coremltools", "tensorrt",
                  "litert-torch", "ai-edge-litert", "numpy")


def library_versions() -> dict[str, str | None]:
    out = {"python": platform.python_version()}
    for name in _DISTRIBUTIONS:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def file_digest(path) -> tuple[int, str]:
    """(size in bytes, sha256 hex). A directory (``.mlpackage``) hashes its files' relative paths and
    contents in sorted order, so the digest is stable across machines."""
    path = Path(path)
    h = hashlib.sha256()
    if path.is_dir():
        size = 0
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            rel = f.relative_to(path).as_posix().encode()
            h.update(len(rel).to_bytes(8, "little") + rel)
            size += _hash_file(f, h)
        return size, h.hexdigest()
    return _hash_file(path, h), h.hexdigest()


def _hash_file(path: Path, h) -> int:
    size = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
            size += len(chunk)
    return size


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
    fd, tmp = tempfile.mkstemp(prefix=".manifest-", suffix=".tmp", dir=out_dir)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; artifacts are meant to be shared
        with os.fdopen(fd, "w") as f:
            json.dump(manifest, f, indent=2, sort_keys=False, default=str)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def read_manifest(out_dir) -> dict:
    return json.loads((Path(out_dir) / MANIFEST_NAME).read_text())
