"""Measure a model on one backend; returns statistics with raw samples. Knows nothing about NAS.

``profilers.get(name, **options)`` builds a profiler; ``profilers.available()`` says which
backends work on this machine and why not the others. Backends are imported lazily, so
``import profilers`` never imports ONNX Runtime, ExecuTorch or TensorRT.
"""

from __future__ import annotations

import difflib
import importlib

from profilers.errors import ProfilerError
from profilers.stats import Measurement, Protocol

# name -> "module:Class"; one place to register a backend
BACKENDS: dict[str, str] = {
    "onnxruntime-cpu": "profilers.onnxruntime_cpu:OnnxRuntimeCPU",
    "executorch-xnnpack": "profilers.executorch_xnnpack:ExecuTorchXNNPACK",
    "openvino-cpu": "profilers.openvino_cpu:OpenVINOCPU",
    "litert": "profilers.litert:LiteRT",
    "torch-cpu": "profilers.torch_cpu:TorchCPU",
    "torch-cuda": "profilers.torch_cuda:TorchCUDA",
    "tensorrt": "profilers.tensorrt:TensorRT",
    "ssh": "profilers.ssh:SSHProfiler",
    "adb": "profilers.adb:ADBExecuTorch",
}

__all__ = ["BACKENDS", "Measurement", "Protocol", "ProfilerError", "available", "from_identity", "get", "get_class", "names"]


def names() -> list[str]:
    return list(BACKENDS)


def get_class(name: str):
    if name not in BACKENDS:
        close = difflib.get_close_matches(name, names(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise ProfilerError(f"unknown backend {name!r}{hint}; available: {', '.join(names())}")
    module, cls = BACKENDS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def get(name: str, **options):
    """A profiler for backend ``name``; ``options`` are its constructor's (threads, precision, protocol, ...)."""
    cls = get_class(name)
    try:
        return cls(**options)
    except TypeError as e:
        raise ProfilerError(f"backend {name!r}: bad options {sorted(options)}: {e}") from None


def from_identity(identity: dict, *, threads: int, precision: str, protocol: Protocol, host: str | None = None,
                  artifacts: dict | None = None, **remote) -> object:
    """Rebuild the profiler a table was measured with from what it recorded (``Profiler.identity``):
    the same backend and options; ``artifacts`` may change how artifacts are made (only the options
    the backend declares in ``artifact_options``); ``host`` measures through ssh (``remote``: its
    options, e.g. ``remote_python``, ``ssh_config``)."""
    import inspect

    cls = get_class(identity["name"])
    options = dict(identity.get("options") or {})
    # a setting that a later version made an option (torch-cuda's timer) keeps the value the table
    # recorded, not today's default: the table is checked the way it was measured
    params = set(inspect.signature(cls.__init__).parameters) - {"self", "threads", "precision", "protocol"}
    for k, v in (identity.get("settings") or {}).items():
        if k in params and k not in options:
            options[k] = v
    options.update({k: v for k, v in (artifacts or {}).items() if k in cls.artifact_options})
    common = dict(threads=threads, precision=precision, protocol=protocol, **options)
    if host:
        return get("ssh", host=host, backend=identity["name"], **remote, **common)
    return get(identity["name"], **common)


def available() -> dict[str, tuple[bool, str]]:
    """``{name: (usable here, reason)}`` for every registered backend."""
    out = {}
    for name in names():
        try:
            cls = get_class(name)
        except ImportError as e:  # only import errors mean "not installed"; anything else is a bug
            out[name] = (False, f"import failed: {e}")
            continue
        out[name] = cls.check_available()
    return out
