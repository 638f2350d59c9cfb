"""The profiler interface every backend implements: export an artifact, measure it, describe the device.

A backend is a small pair, *run* then *parse*: :meth:`Profiler.export` turns a module into the
file the runtime executes, :meth:`Profiler.measure_artifact` times that file here, and
:meth:`Profiler.runner_argv` / :meth:`Profiler.parse_runner_output` do the same on another machine
(``profilers.ssh``, ``profilers.adb``), so a remote measurement is the same code as a local one.
"""

from __future__ import annotations

import copy
import json
import shlex
import tempfile
from pathlib import Path
from dataclasses import dataclass
from typing import Callable, Sequence

from profilers.errors import ProfilerError
from profilers.fingerprint import host_info
from profilers.stats import Measurement, Protocol

Shape = tuple[int, ...]


def shapes_to_str(shapes: Sequence[Shape]) -> str:
    """``[(1,3,64,64), (1,8,32,32)]`` -> ``"1x3x64x64,1x8x32x32"`` (the executor_runner convention)."""
    return ",".join("x".join(str(int(d)) for d in s) for s in shapes)


def shapes_from_str(text: str) -> list[Shape]:
    try:
        return [tuple(int(d) for d in part.split("x")) for part in text.split(",") if part]
    except ValueError:
        raise ProfilerError(f"bad input shapes {text!r}; expected e.g. 1x3x64x64,1x8x32x32") from None


@dataclass
class ProfiledNode:
    """One node of a runtime's optimized graph and its kernel time over the profiled runs: the
    trimmed mean (``profilers.stats.trimmed_mean``), since profilers count whole microseconds."""

    name: str
    op_type: str
    inputs: list[str]
    outputs: list[str]
    kernel_us: float


@dataclass
class NodeProfile:
    """Per-node kernel times of one artifact as the runtime ran it (after its own graph rewrites)."""

    nodes: list[ProfiledNode]
    graph_inputs: list[str]
    graph_outputs: list[str]
    runs: int

    @property
    def total_us(self) -> float:
        return float(sum(n.kernel_us for n in self.nodes))

    def to_dict(self) -> dict:
        from dataclasses import asdict

        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> NodeProfile:
        return cls([ProfiledNode(**n) for n in d["nodes"]], list(d["graph_inputs"]), list(d["graph_outputs"]), int(d["runs"]))


class Profiler:
    """Base class. Subclasses set ``name``, ``artifact_suffix`` and implement the hooks."""

    name = "?"
    artifact_suffix = ".bin"
    runtime = "?"
    # True where a block run back to back keeps hot what inside a whole model a hundred other nodes
    # evict between two runs of it, so its context runs follow an untimed run of a whole model
    # (``lut.measure``; where that model fits the last-level cache and is cheap to run). OpenVINO's
    # CPU plugin JIT-compiles each convolution's kernel (code and branch history per node); XNNPACK
    # keeps per-operator state and packed weights that a 1.2 MB inas-tiny model pushes out of L2.
    # ONNX Runtime's MLAS kernels, shared across nodes, leave it False: there a model run comes
    # before context runs only where the model outgrows a core's private cache (the build's plan,
    # ``hwnas.cli.lut._cold_context_plan``).
    context_after_model_run = False
    # How a block's context run is split from its neighbours' (``lut.measure.context_split``):
    # "profile", by the runtime's per-node profile; "marginal", for a block that keeps its input's
    # shape, the unprofiled context graph with one more copy of it less without (the profile for
    # the others). ONNX Runtime takes "marginal": on the AMD hosts its profiler adds microseconds to
    # every node's kernel time, and the profiled share charged an inas-tiny table's shape-keeping
    # blocks ~18 % more than they cost (every model ~+10 %); with the marginal a fresh table predicted
    # 30 fresh models within 3.96 % (README, Benchmark results).
    # Elsewhere "profile" until a table built so is validated there.
    context_split = "profile"
    # Whether a sample holds a per-call overhead that a whole model pays once and each isolated block
    # pays again (dispatch, binding inputs and outputs: what ``lut.reference.call_model`` measures);
    # a table then charges a block its time less one call. False where a sample holds none to take
    # out (torch-cuda's CUDA-graph replays: see ``profilers.torch_cuda``); then the table subtracts none.
    call_in_samples = True

    def __init__(self, threads: int = 1, precision: str = "fp32", protocol: Protocol | None = None):
        if threads < 1:
            raise ProfilerError(f"{self.name}: threads must be >= 1, got {threads}")
        if precision not in self.precisions():
            raise ProfilerError(f"{self.name}: precision {precision!r} not supported; allowed: {list(self.precisions())}")
        self.threads = int(threads)
        self.precision = precision
        self.protocol = protocol or Protocol()
        if self.protocol.clock == "thread_cpu" and self.threads != 1:
            raise ProfilerError(f"{self.name}: clock thread_cpu is only latency for 1 thread, not {self.threads}; "
                                "use clock wall")

    # ------------------------------------------------------------------ availability
    @classmethod
    def check_available(cls) -> tuple[bool, str]:
        return True, "ok"

    @classmethod
    def precisions(cls) -> tuple[str, ...]:
        return ("fp32",)

    # -------------------------------------------------------------------- identity
    def runtime_version(self) -> str:
        raise NotImplementedError

    def settings(self) -> dict:
        """Backend options that change the numbers; recorded next to every measurement."""
        return {}

    @property
    def flush_threads(self) -> int:
        """Threads that share a cache flush: ``Protocol.flush_threads``, or this runtime's threads where it is 0."""
        return self.protocol.flush_threads or self.threads

    def options(self) -> dict:
        """Constructor keyword arguments beyond threads/precision/protocol (to rebuild this profiler remotely)."""
        return {}

    # constructor options that choose how artifacts are made, not what the runtime does with them (ONNX
    # Runtime's ONNX exporter): a table's blocks and the whole models that check it may differ in them
    artifact_options: tuple[str, ...] = ()

    def artifact_settings(self) -> dict:
        """The current values of :attr:`artifact_options`."""
        return {k: getattr(self, k) for k in self.artifact_options}

    def exporting_as(self, artifacts: dict | None) -> Profiler:
        """This profiler, or a copy of it that makes artifacts with ``artifacts``' settings (those in
        :attr:`artifact_options`; others are ignored); what it measures is unchanged. A table's drift
        reference must be the same artifact when whole models are checked against it as when its
        blocks were timed: on ONNX Runtime the dynamo export of inas-tiny's 64 px reference ran 2.6 %
        faster than the TorchScript one the build timed (``bench/reference_exporter.py``), which moved every
        drift-compensated whole model by that much."""
        wanted = {k: v for k, v in (artifacts or {}).items() if k in self.artifact_options}
        if all(getattr(self, k) == v for k, v in wanted.items()):
            return self
        clone = copy.copy(self)
        for k, v in wanted.items():
            setattr(clone, k, v)
        return clone

    def identity(self) -> dict:
        """What a latency table records of this backend, enough to rebuild it (``profilers.from_identity``):
        the backend's name, the settings that change the numbers, its options and artifact settings.
        A wrapper (ssh) answers for the backend it runs."""
        return {"name": self.name, "settings": self.settings(), "options": self.options(),
                "artifacts": self.artifact_settings()}

    def device_info(self) -> dict:
        info = host_info()
        info.update(runtime=self.runtime, runtime_version=self.runtime_version(), threads=self.threads,
                    precision=self.precision, backend=self.name, settings=self.settings())
        return info

    # ------------------------------------------------------------------ measuring
    def export(self, model, example_inputs: tuple, path: Path) -> Path:
        raise NotImplementedError

    def measure_artifact(self, path: Path, input_shapes: Sequence[Shape]) -> Measurement:
        from profilers.stats import time_callable

        return time_callable(self.prepare(path, input_shapes), self.protocol, info=self.settings())

    def prepare(self, path: Path, input_shapes: Sequence[Shape]) -> Callable[[], object]:
        """Load ``path`` here and return a callable that runs one inference and blocks until it is
        done (inputs bound, first run done). Lets a caller time several artifacts interleaved
        (``profilers.stats.time_interleaved``). Backends that time on another machine or through an
        external tool (ssh, adb, trtexec) do not implement it: see :attr:`can_interleave`."""
        raise NotImplementedError(f"{self.name} cannot run an artifact in this process")

    @property
    def can_interleave(self) -> bool:
        """Whether :meth:`measure_together` works with this backend."""
        return type(self).prepare is not Profiler.prepare

    @property
    def has_node_profile(self) -> bool:
        """Whether :meth:`node_profile` gives per-node times with this backend."""
        return type(self).node_profile is not Profiler.node_profile

    def measure_together(self, artifacts: dict, seed: int = 0, flush_bytes: dict[str, int] | None = None,
                         between: dict | None = None, reference: str | None = None) -> dict[str, Measurement]:
        """``{name: Measurement}`` of ``{name: (path, input_shapes)}`` timed interleaved, run for run in
        random order (``profilers.stats.time_interleaved``): their ratios hold while the machine's
        speed drifts. ``flush_bytes[name]``: touch that many bytes before every run of ``name``,
        untimed (``profilers.cache``); ``between[name]``: ``(path, input_shapes)`` of an artifact run
        once, untimed, before every run of ``name`` (instead of its flush). ``reference``: the name of
        the drift reference (settled by ``Protocol.reference_settle_runs``). A remote backend runs
        the flush on its host; ``between`` is local only."""
        from profilers.cache import CacheFlush
        from profilers.stats import time_interleaved

        runs = {name: self.prepare(Path(path), shapes) for name, (path, shapes) in artifacts.items()}
        before = {name: CacheFlush(n, self.flush_threads) for name, n in (flush_bytes or {}).items() if n > 0}
        before.update({name: self.prepare(Path(path), shapes) for name, (path, shapes) in (between or {}).items()})
        return time_interleaved(runs, self.protocol, seed=seed, info=self.settings(), before=before, reference=reference)

    def node_profile(self, path: Path, input_shapes: Sequence[Shape], runs: int = 20,
                     flush_bytes: int = 0) -> NodeProfile | None:
        """Per-node kernel times of ``path`` from the runtime's own profiler, with the optimized graph
        they ran in (every run after a cache flush of ``flush_bytes``, as in :meth:`measure_together`);
        ``None`` where the runtime has no per-node profiler reachable from Python."""
        return None

    def measure(self, model, example_inputs: tuple) -> Measurement:
        """Export ``model`` for this backend and time it end to end (inputs of ``example_inputs``' shapes)."""
        shapes = [tuple(t.shape) for t in example_inputs]
        with tempfile.TemporaryDirectory(prefix=f"hwnas-{self.name}-") as d:
            artifact = self.export(model, example_inputs, Path(d) / f"model{self.artifact_suffix}")
            return self.measure_artifact(artifact, shapes)

    # ---------------------------------------------------------- remote (ssh/adb)
    def runner_argv(self, artifact: str, input_shapes: Sequence[Shape], python: str = "python3") -> list[str]:
        """argv that measures ``artifact`` on a target and prints one JSON object (see ``profilers.runner``)."""
        return [python, "-m", "profilers.runner", "--backend", self.name, "--threads", str(self.threads),
                "--precision", self.precision, "--protocol", json.dumps(self.protocol.to_dict(), sort_keys=True),
                "--options", json.dumps(self.options(), sort_keys=True),
                "--shapes", shapes_to_str(input_shapes), artifact]

    def remote_command(self, artifact: str, input_shapes: Sequence[Shape], python: str = "python3") -> str:
        """The shell command (quoted) a remote host runs; prints what :meth:`parse_runner_output` reads."""
        return shlex.join(self.runner_argv(artifact, input_shapes, python))

    def parse_runner_output(self, stdout: str) -> tuple[Measurement, dict]:
        """(measurement, remote device fingerprint) from the runner's stdout (its last JSON line)."""
        for line in reversed(stdout.strip().splitlines()):
            line = line.strip()
            if line.startswith("{"):
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if "measurement" in obj:
                    return Measurement.from_dict(obj["measurement"]), obj.get("device", {})
        tail = stdout.strip()[-300:]
        raise ProfilerError(f"{self.name}: the remote runner printed no result; output ends with: {tail!r}")
