"""LiteRT (formerly TensorFlow Lite) interpreter with the XNNPACK delegate: the phone runtime most
mobile-NAS latency tables are measured with, here on this CPU.

Fixed and recorded: ``num_threads`` (the interpreter's and XNNPACK's thread count, ``threads``),
the XNNPACK delegate (the built-in op resolver's default delegate; the ops it took and the ops left
on LiteRT's reference kernels are kept in each measurement's ``info``). Input tensors are set once;
the timed region is ``invoke()`` only.

Export goes through ``deploy.tflite_export`` (``litert-torch``), which takes seconds per model
(~2-20 s here, against ~0.02 s for a TorchScript ONNX block). Two things keep a table of hundreds
of blocks affordable: ``lut``'s builder exports every block ahead of timing in worker processes
(``lut.measure.BlockMeter.export_ahead``; this profiler pickles), and a conversion cache:
:meth:`LiteRT.export` keys each module by its structure (module classes, their configuration
attributes, parameter and input shapes; never the weight values, which do not change latency) and
reuses the ``.tflite`` of a structure converted before — by another build, another process, or the
same build's reference and context graphs. The cache lives in ``~/.cache/hwnas/litert`` (or
``$HWNAS_LITERT_CACHE``; empty turns it off), one folder per litert-torch and torch version.

The measuring side needs only ``ai-edge-litert`` and numpy (no torch), so ``profilers.runner``
measures ``.tflite`` files on a host that cannot convert.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path
from typing import Callable, Sequence

from deploy.fileio import first_line
from profilers.base import Profiler, Shape
from profilers.errors import ProfilerError
from profilers.stats import Measurement, time_callable

CACHE_ENV = "HWNAS_LITERT_CACHE"  # a folder; "" turns the conversion cache off


def default_cache_dir() -> Path | None:
    value = os.environ.get(CACHE_ENV)
    if value == "":
        return None
    return Path(value) if value else Path.home() / ".cache" / "hwnas" / "litert"


def _versions_tag() -> str:
    """Artifacts converted by another converter or torch release are never reused."""
    from importlib.metadata import PackageNotFoundError, version

    parts = []
    for dist in ("litert-torch", "torch"):
        try:
            parts.append(f"{dist}-{version(dist)}")
        except PackageNotFoundError:
            parts.append(f"{dist}-none")
    return "_".join(parts).replace("+", "-")


def structure_key(module, example_inputs: Sequence) -> str:
    """sha256 of what determines a converted graph's latency: per submodule its class, its public
    configuration attributes (kernel, stride, groups, sizes, flags …) and its parameter and buffer
    shapes; and the input shapes. Weight values are left out on purpose."""
    import torch

    def describe(value):
        if isinstance(value, torch.Tensor):
            return f"tensor{tuple(value.shape)}{value.dtype}"
        if isinstance(value, (list, tuple)):
            return type(value).__name__ + "(" + ",".join(describe(v) for v in value) + ")"
        if isinstance(value, dict):
            return "{" + ",".join(f"{k}:{describe(v)}" for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))) + "}"
        if callable(value):
            return getattr(value, "__qualname__", type(value).__qualname__)
        return repr(value)

    h = hashlib.sha256()
    h.update(repr([tuple(t.shape) for t in example_inputs]).encode())
    for name, m in module.named_modules():
        attrs = {k: v for k, v in vars(m).items() if not k.startswith("_") and k != "training"}
        tensors = [(n, tuple(t.shape)) for n, t in list(m._parameters.items()) + list(m._buffers.items()) if t is not None]
        h.update(f"{name}|{type(m).__module__}.{type(m).__qualname__}|{describe(attrs)}|{tensors}\n".encode())
    return h.hexdigest()


class _Cache:
    def __init__(self, root: Path | None):
        self.root = Path(root) / _versions_tag() if root is not None else None

    def path(self, key: str) -> Path | None:
        return self.root / f"{key}.tflite" if self.root is not None else None

    def get(self, key: str) -> Path | None:
        path = self.path(key)
        return path if path is not None and path.is_file() else None


class LiteRT(Profiler):
    name = "litert"
    artifact_suffix = ".tflite"
    runtime = "litert"

    def __init__(self, threads: int = 1, precision: str = "fp32", protocol=None, cache_dir: str | None = None):
        super().__init__(threads, precision, protocol)
        # where converted blocks are kept between builds (not an option of the measurement: never
        # recorded in a table, never sent to a remote runner)
        self.cache = _Cache(Path(cache_dir) if cache_dir else default_cache_dir())
        self.delegation: dict = {}

    @classmethod
    def check_available(cls) -> tuple[bool, str]:
        from importlib.util import find_spec

        if find_spec("ai_edge_litert") is None:
            return False, "ai-edge-litert not installed; pip install 'hwnas[litert]'"
        converter = ("litert-torch " + cls._version("litert-torch") if find_spec("litert_torch") is not None
                     else "no litert-torch here: measures .tflite files, cannot convert")
        return True, f"ai-edge-litert {cls._version('ai-edge-litert')}, XNNPACK; {converter}"

    @staticmethod
    def _version(dist: str) -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version(dist)
        except PackageNotFoundError:
            return "unknown"

    def runtime_version(self) -> str:
        return self._version("ai-edge-litert")

    def settings(self) -> dict:
        return {"num_threads": self.threads, "delegate": "xnnpack"}

    # ------------------------------------------------------------------ export (cached)
    def export(self, model, example_inputs: tuple, path: Path) -> Path:
        from deploy.tflite_export import export_tflite

        key = structure_key(model, example_inputs)
        cached = self.cache.get(key)
        if cached is None:
            if self.cache.root is None:
                return Path(export_tflite(model, tuple(example_inputs), path))
            cached = Path(export_tflite(model, tuple(example_inputs), self.cache.path(key)))
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cached, path)  # a copy: the caller may delete its artifact
        return Path(path)


    # ------------------------------------------------------------------ measuring
    def prepare(self, path: Path, input_shapes: Sequence[Shape]) -> Callable[[], object]:
        import numpy as np

        from deploy.tflite_export import interpreter, xnnpack_delegation

        try:
            it = interpreter(path, self.threads)
        except Exception as e:  # the interpreter raises ValueError/RuntimeError for bad files
            raise ProfilerError(f"{self.name}: cannot load {path}: {first_line(e)}") from None
        details = it.get_input_details()
        if len(details) != len(input_shapes):
            raise ProfilerError(f"{self.name}: {path} has {len(details)} inputs, {len(input_shapes)} shapes given")
        rng = np.random.default_rng(0)
        for d, shape in zip(details, input_shapes):
            if tuple(int(x) for x in d["shape"]) != tuple(shape):
                raise ProfilerError(f"{self.name}: {path} input {d['name']} has shape {tuple(d['shape'])}, not {tuple(shape)}")
            it.set_tensor(d["index"], rng.standard_normal(shape).astype(np.float32))
        self.delegation = xnnpack_delegation(it)
        it.invoke()  # first run: XNNPACK packs weights and plans memory
        return it.invoke

    def measure_artifact(self, path: Path, input_shapes: Sequence[Shape]) -> Measurement:
        run = self.prepare(path, input_shapes)
        return time_callable(run, self.protocol, info=dict(self.settings(), delegation=self.delegation))
