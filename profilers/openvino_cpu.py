"""OpenVINO runtime, CPU plugin.

Fixed and recorded (each read back from the compiled model, so a plugin that ignores one is
caught, not silently measured): inference threads (``INFERENCE_NUM_THREADS`` = ``threads``), the
``LATENCY`` performance hint, one stream, CPU pinning (off by default: on a shared machine pinned
threads fight other jobs for the same cores), hyper-threading off, and fp32 inference precision
(the plugin's default on CPUs with AMX / AVX512-BF16 is bf16, which would measure another
computation than the other runtimes). Inputs are set once; the timed region is one synchronous
inference (``infer``, which runs in the calling thread at one stream, outputs shared, not copied).

The artifact is one file: an uncompressed tar holding ``model.xml`` and ``model.bin`` (the IR
``deploy.openvino_export`` writes), because a remote measurement ships a single file; a bare
``.xml`` with its ``.bin`` beside it is measured too (``hwnas export`` output). Measuring needs
only ``openvino`` and numpy.
"""

from __future__ import annotations

import tarfile
import tempfile
from pathlib import Path
from typing import Callable, Sequence

from profilers.base import Profiler, Shape
from profilers.errors import ProfilerError
from profilers.stats import Measurement, time_callable

PRECISION_HINT = {"fp32": "f32"}


class OpenVINOCPU(Profiler):
    name = "openvino-cpu"
    artifact_suffix = ".tar"
    runtime = "openvino"
    # node times were medians of whole-microsecond counters before; tables record the change
    # (``lut.measure.latency_model_kind``) so that the two never mix
    node_profile_revision = "trimmed-mean"
    context_after_model_run = True  # oneDNN JIT-compiles each convolution's kernel (``Profiler``)
    # how an artifact is made (``--exporter``): ``dynamo`` = what ``hwnas export`` deploys (the
    # PyTorch frontend), ``torchscript`` = a TorchScript ONNX export read by the ONNX frontend, the
    # same operations, a little faster: the blocks of a table (``deploy.openvino_export``)
    artifact_options = ("exporter",)
    EXPORTERS = {"dynamo": "pytorch", "torchscript": "onnx"}

    def __init__(self, threads: int = 1, precision: str = "fp32", protocol=None, pinning: bool = False,
                 exporter: str = "dynamo"):
        super().__init__(threads, precision, protocol)
        self.pinning = bool(pinning)
        if exporter not in self.EXPORTERS:
            raise ProfilerError(f"{self.name}: exporter {exporter!r} unknown; allowed: {list(self.EXPORTERS)}")
        self.exporter = exporter
        self.compiled_properties: dict = {}

    @classmethod
    def check_available(cls) -> tuple[bool, str]:
        try:
            import openvino as ov
        except ImportError as e:
            return False, f"openvino not installed ({e}); pip install 'hwnas[openvino]'"
        devices = ov.Core().available_devices
        if "CPU" not in devices:
            return False, f"openvino has no CPU plugin here (devices: {devices})"
        return True, f"openvino {ov.get_version().split('-')[0]}, CPU plugin"

    def runtime_version(self) -> str:
        import openvino as ov

        return ov.get_version()

    def config(self) -> dict:
        """The CPU plugin properties every compile uses."""
        return {"INFERENCE_NUM_THREADS": self.threads, "PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": 1,
                "ENABLE_CPU_PINNING": self.pinning, "ENABLE_HYPER_THREADING": False,
                "INFERENCE_PRECISION_HINT": PRECISION_HINT[self.precision]}

    def settings(self) -> dict:
        return {"inference_num_threads": self.threads, "performance_hint": "LATENCY", "num_streams": 1,
                "cpu_pinning": self.pinning, "hyper_threading": False, "inference_precision": PRECISION_HINT[self.precision]}

    def options(self) -> dict:
        return {"pinning": self.pinning}

    def device_info(self) -> dict:
        info = super().device_info()
        try:
            import openvino as ov

            info["openvino_cpu_name"] = ov.Core().get_property("CPU", "FULL_DEVICE_NAME")
        except Exception:  # the fingerprint must not fail on a plugin query
            pass
        return info

    # ------------------------------------------------------------------ export
    def export(self, model, example_inputs: tuple, path: Path) -> Path:
        """The IR from ``deploy.openvino_export``, packed as one tar (``model.xml`` + ``model.bin``)."""
        from deploy.fileio import atomic_path
        from deploy.openvino_export import export_openvino

        path = Path(path)
        with tempfile.TemporaryDirectory(prefix=".ov-", dir=path.parent) as tmp:
            xml = export_openvino(model, tuple(example_inputs), Path(tmp) / "model.xml",
                                  frontend=self.EXPORTERS[self.exporter])
            with atomic_path(path) as staged, tarfile.open(staged, "w", format=tarfile.PAX_FORMAT) as tar:
                for f in (xml, xml.with_suffix(".bin")):
                    tar.add(f, arcname=f.name)
        return path

    # ------------------------------------------------------------------ measuring
    def read_model(self, core, path: Path):
        """An IR from a tar artifact or from ``NAME.xml`` with ``NAME.bin`` beside it."""
        import numpy as np
        import openvino as ov

        path = Path(path)
        if path.suffix == ".xml":
            return core.read_model(str(path))
        try:
            with tarfile.open(path) as tar:
                xml = tar.extractfile("model.xml").read()
                weights = tar.extractfile("model.bin").read()
        except (tarfile.TarError, KeyError, AttributeError, OSError) as e:
            raise ProfilerError(f"{self.name}: {path} is not an IR tar (model.xml + model.bin): {e}") from None
        return core.read_model(model=xml, weights=ov.Tensor(np.frombuffer(weights, dtype=np.uint8).copy()))

    def prepare(self, path: Path, input_shapes: Sequence[Shape], perf_count: bool = False) -> Callable[[], object]:
        import numpy as np
        import openvino as ov

        core = ov.Core()
        config = dict(self.config(), PERF_COUNT=True) if perf_count else self.config()
        try:
            compiled = core.compile_model(self.read_model(core, path), "CPU", config)
        except ProfilerError:
            raise
        except Exception as e:  # the runtime raises RuntimeError for unreadable or unsupported IRs
            from deploy.openvino_export import openvino_error_line

            raise ProfilerError(f"{self.name}: cannot load {path}: {openvino_error_line(e)}") from None
        self.compiled_properties = {k: str(compiled.get_property(k)) for k in self.config()}
        got_threads = int(compiled.get_property("INFERENCE_NUM_THREADS"))
        if got_threads != self.threads:
            raise ProfilerError(f"{self.name}: asked for {self.threads} inference threads, the plugin set {got_threads}")
        if len(compiled.inputs) != len(input_shapes):
            raise ProfilerError(f"{self.name}: {path} has {len(compiled.inputs)} inputs, {len(input_shapes)} shapes given")
        request = compiled.create_infer_request()
        rng = np.random.default_rng(0)
        for i, shape in enumerate(input_shapes):
            request.set_input_tensor(i, ov.Tensor(rng.standard_normal(shape).astype(np.float32)))

        def run():
            # synchronous: runs in the calling thread (start_async + wait hands the work to a plugin
            # thread, which the thread_cpu clock cannot see); outputs stay in the plugin's memory
            request.infer(share_outputs=True)

        run()  # first run: the plugin allocates and primes its kernels
        run.request, run.compiled = request, compiled  # for node_profile
        return run

    def node_profile(self, path: Path, input_shapes: Sequence[Shape], runs: int = 20, flush_bytes: int = 0,
                     between: tuple | None = None):
        """The CPU plugin's per-node counters (``PERF_COUNT``): the trimmed mean ``real_time`` of every
        node of the executed graph (``get_runtime_model``: after fusions, with the plugin's ``Reorder``
        layout conversions) over ``runs`` runs after a warm-up. Node inputs and outputs are named
        ``<producer>:<port>`` from the executed graph's edges. ``between``: ``(path, input_shapes)`` of
        an artifact run once, untimed, before every run (as in :meth:`measure_together`).

        The counters are whole microseconds, so a median puts every node on an integer: a 1.5 us node
        reads 1 in one process and 2 in the next: over the ~130 nodes of an inas-tiny model at 64 px,
        one architecture's blocks summed to 184 us of kernels in one process and 230 us in another;
        with the mean of many runs, 186 and 184 us."""
        from profilers.base import NodeProfile, ProfiledNode
        from profilers.cache import CacheFlush
        from profilers.stats import trimmed_mean

        flush = self.prepare(Path(between[0]), between[1]) if between else CacheFlush(flush_bytes, self.flush_threads)
        run = self.prepare(path, input_shapes, perf_count=True)
        for _ in range(max(3, runs // 4)):
            flush()
            run()
        times: dict[str, list[float]] = {}
        types: dict[str, str] = {}
        for _ in range(runs):
            flush()
            run()
            for info in run.request.profiling_info:  # the last inference's counters
                times.setdefault(info.node_name, []).append(info.real_time.total_seconds() * 1e6)
                types[info.node_name] = info.node_type
        graph = run.compiled.get_runtime_model()
        ops = {op.get_friendly_name(): op for op in graph.get_ordered_ops()}

        def source(op, i: int) -> str:
            value = op.input_value(i)
            return f"{value.get_node().get_friendly_name()}:{value.get_index()}"

        nodes = []
        for name, samples in times.items():
            op = ops.get(name)
            if op is None or types[name] in ("Parameter", "Result", "Const", "Constant"):
                continue  # graph plumbing, or a node fused away (not in the executed graph, 0 us)
            nodes.append(ProfiledNode(name, types[name], [source(op, i) for i in range(op.get_input_size())],
                                      [f"{name}:{i}" for i in range(op.get_output_size())], trimmed_mean(samples)))
        graph_inputs = [f"{p.get_friendly_name()}:0" for p in graph.get_parameters()]
        graph_outputs = [source(r, 0) for r in graph.get_results()]
        return NodeProfile(nodes, graph_inputs, graph_outputs, runs)

    def measure_artifact(self, path: Path, input_shapes: Sequence[Shape]) -> Measurement:
        run = self.prepare(path, input_shapes)
        return time_callable(run, self.protocol, info=dict(self.settings(), compiled=self.compiled_properties))
