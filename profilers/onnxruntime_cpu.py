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

from deploy.fileio import first_line
from profilers.base import Profiler, Shape
from profilers.errors import ProfilerError

OPT_LEVELS = ("disable", "basic", "extended", "all")
EXPORTERS = ("dynamo", "torchscript")


class OnnxRuntimeCPU(Profiler):
    name = "onnxruntime-cpu"
    context_split = "marginal"  # its profiler inflates every node's time on some hosts (``Profiler.context_split``)
    artifact_suffix = ".onnx"
    runtime = "onnxruntime"
    artifact_options = ("exporter",)

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
            from deploy.onnx_export import export_torchscript_onnx

            return export_torchscript_onnx(model, tuple(example_inputs), Path(path))
        from deploy.onnx_export import export_onnx

        return Path(export_onnx(model, example_inputs, path))

    def session(self, path: Path, profile_dir: str | None = None):
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
        if profile_dir is not None:  # ORT's own profiler, and the optimized graph its node names refer to
            so.enable_profiling = True
            so.profile_file_prefix = str(Path(profile_dir) / "ort")
            so.optimized_model_filepath = str(Path(profile_dir) / "optimized.onnx")
            so.log_severity_level = 3  # ORT warns that an NCHWc-optimized graph is hardware specific: we know
        try:
            return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # ORT raises its own exception types for unreadable models
            raise ProfilerError(f"{self.name}: cannot load {path}: {first_line(e)}") from None

    def _bound_run(self, sess, path: Path, input_shapes: Sequence[Shape]):
        import numpy as np

        inputs = sess.get_inputs()
        if len(inputs) != len(input_shapes):
            raise ProfilerError(f"{self.name}: {path} has {len(inputs)} inputs, {len(input_shapes)} shapes given")
        rng = np.random.default_rng(0)
        binding = sess.io_binding()
        arrays = [rng.standard_normal(s).astype(np.float32) for s in input_shapes]
        for meta, arr in zip(inputs, arrays):
            binding.bind_cpu_input(meta.name, arr)
        for out in sess.get_outputs():
            binding.bind_output(out.name, "cpu")

        def run(_keep=arrays):  # the bound arrays must outlive the binding
            sess.run_with_iobinding(binding)

        run()  # the first run allocates the outputs; later runs reuse them
        return run

    def prepare(self, path: Path, input_shapes: Sequence[Shape]):
        """Inputs and outputs bound once with IOBinding: the timed call is the inference only."""
        return self._bound_run(self.session(path), path, input_shapes)

    def node_profile(self, path: Path, input_shapes: Sequence[Shape], runs: int = 20, flush_bytes: int = 0,
                     between: tuple | None = None):
        """ORT's profiler (``enable_profiling``): the trimmed mean ``*_kernel_time`` of every node of
        the optimized graph (``optimized_model_filepath``) over ``runs`` runs after a warm-up.
        ``between``: ``(path, input_shapes)`` of an artifact run once, untimed, before every run (as in
        :meth:`measure_together`; its own session, so the profile holds none of its nodes)."""
        import json
        import tempfile

        import onnx

        from profilers.base import NodeProfile, ProfiledNode
        from profilers.cache import CacheFlush
        from profilers.stats import trimmed_mean

        flush = self.prepare(Path(between[0]), between[1]) if between else CacheFlush(flush_bytes, self.flush_threads)
        with tempfile.TemporaryDirectory(prefix="hwnas-ortprof-") as d:
            sess = self.session(path, profile_dir=d)
            run = self._bound_run(sess, path, input_shapes)
            for _ in range(max(3, runs // 4)):
                flush()
                run()
            # ORT records every run since the session started: drop those before the timed ones
            skip = max(3, runs // 4) + 1
            for _ in range(runs):
                flush()
                run()
            trace = json.loads(Path(sess.end_profiling()).read_text())
            graph = onnx.load(str(Path(d) / "optimized.onnx"), load_external_data=False).graph
        durs: dict[str, list[float]] = {}
        for e in trace:
            if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time"):
                durs.setdefault(e["name"][: -len("_kernel_time")], []).append(float(e["dur"]))
        nodes = []
        for n in graph.node:
            d_us = durs.get(n.name, [])[skip:]
            nodes.append(ProfiledNode(n.name, n.op_type, list(n.input), list(n.output), trimmed_mean(d_us)))
        return NodeProfile(nodes, [i.name for i in graph.input], [o.name for o in graph.output], runs)
