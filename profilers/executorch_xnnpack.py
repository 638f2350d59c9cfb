"""ExecuTorch with the XNNPACK delegate, run through the Python runtime (``executorch.runtime``).

The XNNPACK thread pool is set with ``portable_lib._unsafe_reset_threadpool(threads)`` before
the program is loaded and recorded. Ops left outside the delegate run on the portable kernels
(~50x slower); the exporter's delegation summary is kept in the measurement's ``info`` so a slow
number can be traced to its cause.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from deploy.fileio import first_line
from profilers.base import Profiler, Shape
from profilers.errors import ProfilerError
from profilers.stats import Measurement, time_callable


def set_threads(n: int) -> int:
    from executorch.extension.pybindings.portable_lib import _threadpool_get_thread_count, _unsafe_reset_threadpool

    _unsafe_reset_threadpool(int(n))
    return int(_threadpool_get_thread_count())


class ExecuTorchXNNPACK(Profiler):
    name = "executorch-xnnpack"
    artifact_suffix = ".pte"
    runtime = "executorch"
    # Inside a whole inas-tiny model at 64 px a node's time outside its operator was 0.0009-0.0010
    # reference units, in its block's context graph run back to back 0.0003-0.0004, and its kernels
    # 5-8 % faster: the table predicted 3 models 12-17 % low. After an untimed run of the space's
    # smallest model: -0.2 ... +2.4 %; after a 4 MB data flush (2x L2) +7.2 %, 0.25 MB -9.7 %
    # (``bench/context_outside.py --seed 73``): the model's other nodes evict the block's L2 state.
    context_after_model_run = True

    def __init__(self, threads: int = 1, precision: str = "fp32", protocol=None):
        super().__init__(threads, precision, protocol)
        if self.protocol.clock == "thread_cpu":
            # measured (inas-sod blocks at 320 px, pool reset to 1 thread): while execute() runs, a second
            # thread of the process uses as much CPU time as the calling thread, so the calling thread's
            # CPU time is about half of the work, whatever the load (the refusal "the calling thread used
            # 245 of 491 ms" of an earlier build); wall time is the latency
            raise ProfilerError(f"{self.name}: clock thread_cpu does not measure ExecuTorch: a second runtime thread "
                                "does as much CPU work as the calling thread; use clock wall (the default)")
        self.delegation: dict = {}

    @classmethod
    def check_available(cls) -> tuple[bool, str]:
        from importlib.util import find_spec

        # find_spec, not import: importing executorch takes seconds and loads torch
        for mod in ("executorch", "executorch.runtime", "executorch.extension.pybindings.portable_lib"):
            try:
                found = find_spec(mod) is not None
            except ImportError:
                found = False
            if not found:
                return False, f"executorch not installed ({mod} missing); pip install 'hwnas[executorch]'"
        return True, f"executorch {cls._version()}"

    @staticmethod
    def _version() -> str:
        from importlib.metadata import PackageNotFoundError, version

        try:
            return version("executorch")
        except PackageNotFoundError:
            return "unknown"

    def runtime_version(self) -> str:
        return self._version()

    def settings(self) -> dict:
        return {"threads": self.threads, "delegate": "xnnpack"}

    def export(self, model, example_inputs: tuple, path: Path) -> Path:
        from deploy.executorch_export import export_pte_with_summary

        out, summary = export_pte_with_summary(model, tuple(example_inputs), path)
        self.delegation = summary.to_dict()
        return Path(out)

    def prepare(self, path: Path, input_shapes: Sequence[Shape]):
        import torch
        from executorch.runtime import Runtime

        got = set_threads(self.threads)
        if got != self.threads:
            raise ProfilerError(f"{self.name}: asked for {self.threads} XNNPACK threads, the pool has {got}")
        try:
            method = Runtime.get().load_program(str(path)).load_method("forward")
        except Exception as e:  # the runtime raises RuntimeError/ValueError for bad programs
            raise ProfilerError(f"{self.name}: cannot load {path}: {first_line(e)}") from None
        g = torch.Generator().manual_seed(0)
        inputs = [torch.randn(s, generator=g) for s in input_shapes]
        method.execute(inputs)  # first run initialises the delegate
        return lambda: method.execute(inputs)

    def node_profile(self, path: Path, input_shapes: Sequence[Shape], runs: int = 20, flush_bytes: int = 0,
                     between: tuple | None = None):
        """Per-operator times from ExecuTorch's own profiler: the program runs with ETDump enabled and
        ``executorch.devtools.Inspector`` reads back every operator the XNNPACK delegate executed
        (``Convolution (NHWC, F32)``, ``Transpose (ND, X32)`` at the delegate's edges, ...) in execution
        order, without edges (``lut.context.attribute`` splits such a profile by order). Times are the
        trimmed mean over ``runs`` runs after a warm-up. ``between``: ``(path, input_shapes)`` of an
        artifact run once, untimed, before every run (as in :meth:`measure_together`)."""
        import tempfile

        import torch
        from executorch.devtools import Inspector
        from executorch.extension.pybindings import portable_lib

        from profilers.base import NodeProfile, ProfiledNode
        from profilers.cache import CacheFlush
        from profilers.stats import trimmed_mean

        set_threads(self.threads)
        try:
            module = portable_lib._load_for_executorch(str(path), enable_etdump=True)
        except Exception as e:  # the runtime raises RuntimeError/ValueError for bad programs
            raise ProfilerError(f"{self.name}: cannot load {path}: {first_line(e)}") from None
        g = torch.Generator().manual_seed(0)
        inputs = [torch.randn(s, generator=g) for s in input_shapes]
        flush = self.prepare(Path(between[0]), between[1]) if between else CacheFlush(flush_bytes, self.flush_threads)
        for _ in range(max(3, runs // 4) + runs):
            flush()
            module.forward(inputs)
        with tempfile.TemporaryDirectory(prefix="hwnas-etdump-") as d:
            dump = Path(d) / "run.etdp"
            module.write_etdump_result_to_file(str(dump))
            inspector = Inspector(etdump_path=str(dump))
        nodes = []
        for block in inspector.event_blocks:
            if block.name != "Execute":
                continue
            for e in block.events:
                if e.perf_data is None or e.name in ("DELEGATE_CALL", "Method::execute"):
                    continue
                raw_us = [float(x) * 1e3 for x in list(e.perf_data.raw)[-runs:]]  # Inspector reports ms
                op_type = e.name.split(" (")[0].split(" #")[0].strip()
                nodes.append(ProfiledNode(e.name, op_type, [], [], trimmed_mean(raw_us)))
        return NodeProfile(nodes, [], [], runs)

    def measure_artifact(self, path: Path, input_shapes: Sequence[Shape]) -> Measurement:
        info = dict(self.settings(), delegation=self.delegation) if self.delegation else self.settings()
        return time_callable(self.prepare(path, input_shapes), self.protocol, info=info)
