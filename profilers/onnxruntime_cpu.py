"""ONNX Runtime, CPU execution provider.

Settings that change the numbers are fixed and recorded: intra-op threads (``threads``), one
inter-op thread, sequential execution, the graph optimisation level (default ``all``, what a
deployment uses), and thread spinning (off by default: a spinning pool burns a core between
runs and distorts timings on a shared machine). Inputs and outputs are bound once with
IOBinding so the timed region holds the inference only, not numpy conversions.

Two exporters produce the ``.onnx``: ``dynamo`` (``deploy.onnx_export``, the artifact a user
deploys; ~1–5 s per model) and ``torchscript`` (``torch.onnx.export(dynamo=False)``, ~0.02 s).
A latency table has hundreds of blocks, so ``hwnas lut build`` exports blocks with
``torchscript`` and ``hwnas lut validate`` checks the sum against whole models exported with
``dynamo``, which is what keeps that shortcut honest: both graphs run the same ORT kernels after
ORT's own graph optimisation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from profilers.base import Profiler, Shape
from profilers.errors import ProfilerError
from profilers.stats import Measurement, time_callable

OPT_LEVELS = ("disable", "basic", "extended", "all")
EXPORTERS = ("dynamo", "torchscript")


def export_torchscript_onnx(model, example_inputs: tuple, path: Path) -> Path:
    """Fast legacy ONNX export (static shapes, weights embedded) for latency-table blocks."""
    import warnings

    import torch

    from profilers.errors import ProfilerError

    names = ["input"] if len(example_inputs) == 1 else [f"input{i}" for i in range(len(example_inputs))]
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(model.eval(), tuple(example_inputs), str(path), dynamo=False, input_names=names,
                              do_constant_folding=True)
    except Exception as e:  # the exporter raises many types; name the cause
        raise ProfilerError(f"onnx (torchscript exporter) failed: {type(e).__name__}: {str(e).splitlines()[0]}") from e
    return Path(path)


class OnnxRuntimeCPU(Profiler):
    name = "onnxruntime-cpu"
    artifact_suffix = ".onnx"
    runtime = "onnxruntime"

    def __init__(self, threads: int = 1, precision: str = "fp32", protocol=None, optimization: str = "all",
                 allow_spinning: bool = False, exporter: str = "dynamo"):
        super().__init__(threads, precision, protocol)
        if exporter not in EXPORTERS:
            raise ProfilerError(f"{self.name}: exporter {exporter!r} unknown; allowed: {list(EXPORTERS)}")
        self.exporter = exporter
        if optimization not in OPT_LEVELS:
            raise ProfilerError(f"{self.name}: optimization {optimization!r} unknown; allowed: {list(OPT_LEVELS)}")
        self.optimization = optimization
        self.allow_spinning = bool(allow_spinning)

    @classmethod
    def check_available(cls) -> tuple[bool, str]:
        try:
            import onnxruntime as ort
        except ImportError as e:
            return False, f"onnxruntime not installed ({e}); pip install onnxruntime"
        if "CPUExecutionProvider" not in ort.get_available_providers():
            return False, "onnxruntime has no CPUExecutionProvider"
        return True, f"onnxruntime {ort.__version__}"

    def runtime_version(self) -> str:
        import onnxruntime as ort

        return ort.__version__

    def settings(self) -> dict:
        return {"intra_op_threads": self.threads, "inter_op_threads": 1, "execution_mode": "sequential",
                "graph_optimization": self.optimization, "allow_spinning": self.allow_spinning}

    def options(self) -> dict:
        return {"optimization": self.optimization, "allow_spinning": self.allow_spinning}

    def export(self, model, example_inputs: tuple, path: Path) -> Path:
        if self.exporter == "torchscript":
            return export_torchscript_onnx(model, tuple(example_inputs), Path(path))
        from deploy.onnx_export import export_onnx

        return Path(export_onnx(model, example_inputs, path))

    def session(self, path: Path):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.intra_op_num_threads = self.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = {
            "disable": ort.GraphOptimizationLevel.ORT_DISABLE_ALL,
            "basic": ort.GraphOptimizationLevel.ORT_ENABLE_BASIC,
            "extended": ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED,
            "all": ort.GraphOptimizationLevel.ORT_ENABLE_ALL,
        }[self.optimization]
        so.add_session_config_entry("session.intra_op.allow_spinning", "1" if self.allow_spinning else "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "1" if self.allow_spinning else "0")
        try:
            return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own exception types for unreadable models
            raise ProfilerError(f"{self.name}: cannot load {path}: {str(e).splitlines()[0]}") from None

    def measure_artifact(self, path: Path, input_shapes: Sequence[Shape]) -> Measurement:
        import numpy as np

        sess = self.session(path)
        inputs = sess.get_inputs()
        if len(inputs) != len(input_shapes):
            raise ProfilerError(f"{self.name}: {path} has {len(inputs)} inputs, {len(input_shapes)} shapes given")
        rng = np.random.default_rng(0)
        binding = sess.io_binding()
        arrays = [rng.standard_normal(s).astype(np.float32) for s in input_shapes]  # kept alive while bound
        for meta, arr in zip(inputs, arrays):
            binding.bind_cpu_input(meta.name, arr)
        for out in sess.get_outputs():
            binding.bind_output(out.name, "cpu")
        # first run allocates the outputs; later runs reuse them
        sess.run_with_iobinding(binding)
        return time_callable(lambda: sess.run_with_iobinding(binding), self.protocol, info=self.settings())
