"""TensorRT: build an engine from an exported ONNX file, run it for parity, drive and parse ``trtexec``.

Two ways to build, same configuration (:class:`EngineConfig`):

* the Python API — ``trt.Builder`` → ``create_network`` → ``trt.OnnxParser.parse`` →
  ``create_builder_config`` (workspace pool limit, precision flag) → ``build_serialized_network``;
* ``trtexec --onnx=… --saveEngine=…`` (:func:`trtexec_build_args`), the tool users already know
  and the one on every Jetson (``/usr/src/tensorrt/bin/trtexec``).

Version notes that shape the code (NVIDIA's documentation): TensorRT < 10 needs the
``EXPLICIT_BATCH`` network flag for ONNX (10.x makes it the default); TensorRT 11 removed
``BuilderFlag.FP16`` and ``trtexec --fp16`` (networks are always strongly typed; an fp16 engine
needs an fp16 / mixed-precision ONNX, e.g. from ModelOpt AutoCast), so asking this module for fp16
on TensorRT >= 11 is refused with that reason instead of silently building fp32.

Engines are tied to the GPU, TensorRT version and precision they were built for: build on the
target. TensorRT cannot be installed everywhere; :func:`tensorrt_status` says why not, and every
entry point that needs it raises :class:`ExportError` with that reason.

The ``trtexec`` JSON parsers follow the writer in NVIDIA's ``samples/common/sampleReporting.cpp``
(``exportJSONTrace`` / ``Profiler::exportJSONProfile``) and the readers ``samples/trtexec/tracer.py``
and ``profiler.py``: ``--exportTimes`` is a list of per-inference records in ms
(``startEnqMs``, ``endEnqMs``, ``startH2dMs``, …, ``h2dMs``, ``computeMs``, ``d2hMs``,
``latencyMs`` and, before TensorRT 10, ``endToEndMs``; TensorRT 8 also wrote the warm-up runs);
``--exportProfile`` is ``[{"count": N}, {"name", "timeMs", "averageMs", ["medianMs",] "percentage"}, …]``;
``--exportOutput`` is ``[{"name", "dimensions": "1x1x320x320", "values": [...]}]``.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deploy.errors import ExportError
from deploy.formats import Format

PRECISIONS = ("fp32", "fp16")
JETSON_TRTEXEC = "/usr/src/tensorrt/bin/trtexec"


@dataclass(frozen=True)
class EngineConfig:
    precision: str = "fp32"
    workspace_mb: int = 1024
    builder_optimization_level: int | None = None  # TensorRT >= 8.6: 0..5, default 3

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise ExportError(f"tensorrt: precision {self.precision!r} not supported; allowed: {list(PRECISIONS)}")
        if self.workspace_mb <= 0:
            raise ExportError(f"tensorrt: workspace_mb must be > 0, got {self.workspace_mb}")
        if self.builder_optimization_level is not None and not 0 <= self.builder_optimization_level <= 5:
            raise ExportError(f"tensorrt: builder_optimization_level must be 0..5, got {self.builder_optimization_level}")


# ------------------------------------------------------------------------------ availability
def find_trtexec() -> str | None:
    found = shutil.which("trtexec")
    if found:
        return found
    return JETSON_TRTEXEC if os.access(JETSON_TRTEXEC, os.X_OK) else None


def tensorrt_status() -> tuple[bool, str]:
    """(usable, reason): the Python API and a CUDA device are both needed to build and run here."""
    try:
        import tensorrt as trt  # noqa: F401
    except ImportError as e:
        tool = find_trtexec()
        extra = f"; trtexec found at {tool}" if tool else "; no trtexec on PATH either"
        return False, f"TensorRT Python package not installed ({e.name or e}){extra}"
    try:
        import torch

        if not torch.cuda.is_available():
            return False, "TensorRT installed but no CUDA device is visible"
    except ImportError:
        return False, "torch missing"
    return True, f"TensorRT {trt.__version__}"


def _require_trt():
    ok, reason = tensorrt_status()
    if not ok:
        raise ExportError(f"tensorrt: unavailable here: {reason} (build the engine on the target GPU: "
                          f"`trtexec --onnx=model.onnx --saveEngine=model.engine`)")
    import tensorrt as trt

    return trt


def trt_major(trt) -> int:
    return int(str(trt.__version__).split(".")[0])


# ------------------------------------------------------------------------------ building
def network_flags(trt) -> int:
    """ONNX needs explicit batch; TensorRT 10 made it the default and deprecated the flag."""
    if trt_major(trt) < 10:
        return 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    return 0


def configure_builder(trt, builder, config: EngineConfig):
    """A ``IBuilderConfig`` for ``config``: workspace pool limit, precision, optimisation level."""
    cfg = builder.create_builder_config()
    cfg.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, config.workspace_mb * (1 << 20))
    if config.precision == "fp32":
        # TensorRT uses TF32 for fp32 convolutions on Ampere+ by default (~1e-3 error): "fp32" means fp32
        cfg.clear_flag(trt.BuilderFlag.TF32)
    if config.precision == "fp16":
        if trt_major(trt) >= 11:
            raise ExportError("tensorrt: fp16 on TensorRT >= 11 needs an fp16/mixed-precision ONNX "
                              "(BuilderFlag.FP16 was removed; convert with ModelOpt AutoCast) — build fp32 or convert first")
        if not builder.platform_has_fast_fp16:
            raise ExportError("tensorrt: fp16 requested but this GPU has no fast fp16; the engine would silently be fp32")
        cfg.set_flag(trt.BuilderFlag.FP16)
    if config.builder_optimization_level is not None:
        cfg.builder_optimization_level = config.builder_optimization_level
    return cfg


def build_engine(onnx_path, engine_path, config: EngineConfig = EngineConfig(), trt=None) -> Path:
    """Build a serialized engine from ``onnx_path`` with the Python API; atomic write to ``engine_path``."""
    trt = trt or _require_trt()
    engine_path = Path(engine_path)
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(network_flags(trt))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(Path(onnx_path).read_bytes()):
        errors = [str(parser.get_error(i)) for i in range(parser.num_errors)]
        raise ExportError(f"tensorrt: ONNX parser rejected {onnx_path}: {'; '.join(errors) or 'no detail'}")
    cfg = configure_builder(trt, builder, config)
    serialized = builder.build_serialized_network(network, cfg)
    if serialized is None:
        raise ExportError("tensorrt: build_serialized_network returned nothing (see the TensorRT log above)")
    _atomic_write_bytes(engine_path, bytes(serialized))
    return engine_path


def run_engine(engine_path, inputs: dict[str, np.ndarray], trt=None) -> dict[str, np.ndarray]:
    """Run a serialized engine once on a CUDA device (name-based tensor API, TensorRT >= 8.5)."""
    trt = trt or _require_trt()
    import torch

    runtime = trt.Runtime(trt.Logger(trt.Logger.WARNING))
    engine = runtime.deserialize_cuda_engine(Path(engine_path).read_bytes())
    if engine is None:
        raise ExportError(f"tensorrt: cannot deserialize {engine_path} (built for another GPU or TensorRT version?)")
    context = engine.create_execution_context()
    buffers, outputs = {}, {}
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            if name not in inputs:
                raise ExportError(f"tensorrt: engine input {name!r} not given; given: {sorted(inputs)}")
            buffers[name] = torch.from_numpy(np.ascontiguousarray(inputs[name], dtype=np.float32)).cuda()
        else:
            shape = tuple(context.get_tensor_shape(name))
            buffers[name] = torch.empty(shape, dtype=torch.float32, device="cuda")
            outputs[name] = buffers[name]
        context.set_tensor_address(name, buffers[name].data_ptr())
    stream = torch.cuda.Stream()
    if not context.execute_async_v3(stream.cuda_stream):
        raise ExportError("tensorrt: execute_async_v3 failed")
    stream.synchronize()
    return {k: v.cpu().numpy() for k, v in outputs.items()}


# ------------------------------------------------------------------------------ trtexec
def trtexec_build_args(onnx_path, engine_path, config: EngineConfig = EngineConfig(), *,
                       trtexec: str = "trtexec", trt_version: tuple[int, int] = (10, 0),
                       timing_cache=None) -> list[str]:
    """Argument list (never a shell string) that builds ``engine_path`` from ``onnx_path``."""
    if config.precision == "fp16" and trt_version[0] >= 11:
        raise ExportError("tensorrt: trtexec --fp16 was removed in TensorRT 11; convert the ONNX to fp16 first")
    args = [trtexec, f"--onnx={onnx_path}", f"--saveEngine={engine_path}",
            f"--memPoolSize=workspace:{config.workspace_mb}"]  # MiB when no suffix, TensorRT >= 8.4
    if trt_version[0] < 10:
        args.append("--explicitBatch")  # the default from 10.x on, where the flag is gone
    if config.precision == "fp16":
        args.append("--fp16")
    else:
        args.append("--noTF32")  # as in configure_builder: fp32 means fp32, not TF32
    if config.builder_optimization_level is not None:
        args.append(f"--builderOptimizationLevel={config.builder_optimization_level}")
    if timing_cache is not None:
        args.append(f"--timingCacheFile={timing_cache}")
    if tuple(trt_version) >= (8, 6):
        args.append("--skipInference")  # build only: timing is a separate, explicit run
    return args


def trtexec_benchmark_args(engine_path, *, times_json=None, profile_json=None, output_json=None,
                           inputs_bin: dict[str, Any] | None = None, trtexec: str = "trtexec",
                           warmup_ms: int = 200, duration_s: int = 3, iterations: int = 10,
                           cuda_graph: bool = True) -> list[str]:
    """Argument list that times a built engine the way NVIDIA recommends: no host↔device copies in
    the timed region, CUDA graphs, spin-wait sync, per-layer profiling in a separate run."""
    if warmup_ms < 0 or duration_s < 0 or iterations < 1:
        raise ExportError("tensorrt: warmup_ms and duration_s must be >= 0 and iterations >= 1")
    args = [trtexec, f"--loadEngine={engine_path}", f"--warmUp={warmup_ms}", f"--duration={duration_s}",
            f"--iterations={iterations}", "--noDataTransfers", "--useSpinWait"]
    if cuda_graph:
        args.append("--useCudaGraph")
    if inputs_bin:
        args.append("--loadInputs=" + ",".join(f"{name}:{path}" for name, path in inputs_bin.items()))
    if times_json is not None:
        args.append(f"--exportTimes={times_json}")
    if profile_json is not None:
        args += ["--dumpProfile", "--separateProfileRun", f"--exportProfile={profile_json}"]
    if output_json is not None:
        args.append(f"--exportOutput={output_json}")
    return args


@dataclass
class TrtexecTimes:
    """Statistics of ``--exportTimes`` records (ms). ``compute`` is the GPU time per inference."""

    runs: int
    latency_ms: list[float] = field(repr=False)
    compute_ms: list[float] = field(repr=False)
    median_ms: float = 0.0  # of latencyMs
    mean_ms: float = 0.0
    min_ms: float = 0.0
    p90_ms: float = 0.0
    p99_ms: float = 0.0
    compute_median_ms: float = 0.0
    h2d_median_ms: float = 0.0
    d2h_median_ms: float = 0.0


def _load_json(path_or_obj):
    if isinstance(path_or_obj, (str, os.PathLike)):
        try:
            return json.loads(Path(path_or_obj).read_text())
        except (OSError, json.JSONDecodeError) as e:
            raise ExportError(f"tensorrt: cannot read trtexec JSON {path_or_obj}: {e}") from e
    return path_or_obj


def _percentile(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def parse_trtexec_times(path_or_obj, skip: int = 0) -> TrtexecTimes:
    """Parse ``trtexec --exportTimes``; ``skip`` drops leading records (TensorRT 8 included warm-ups)."""
    records = _load_json(path_or_obj)
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        raise ExportError("tensorrt: --exportTimes JSON must be a list of per-inference objects")
    records = records[skip:]
    if not records:
        raise ExportError("tensorrt: --exportTimes JSON holds no inference records")
    missing = {"latencyMs", "computeMs"} - records[0].keys()
    if missing:
        raise ExportError(f"tensorrt: --exportTimes records lack {sorted(missing)}; keys: {sorted(records[0])}")
    latency = [float(r["latencyMs"]) for r in records]
    compute = [float(r["computeMs"]) for r in records]
    # h2d/d2h were called inMs/outMs in TensorRT 7's writer
    h2d = [float(r.get("h2dMs", r.get("inMs", 0.0))) for r in records]
    d2h = [float(r.get("d2hMs", r.get("outMs", 0.0))) for r in records]
    return TrtexecTimes(
        runs=len(records), latency_ms=latency, compute_ms=compute,
        median_ms=statistics.median(latency), mean_ms=statistics.fmean(latency), min_ms=min(latency),
        p90_ms=_percentile(latency, 90), p99_ms=_percentile(latency, 99),
        compute_median_ms=statistics.median(compute), h2d_median_ms=statistics.median(h2d),
        d2h_median_ms=statistics.median(d2h),
    )


@dataclass(frozen=True)
class LayerTime:
    name: str
    total_ms: float
    average_ms: float
    median_ms: float | None  # written from TensorRT 10 on
    percentage: float


def parse_trtexec_profile(path_or_obj) -> tuple[int, list[LayerTime]]:
    """Parse ``trtexec --exportProfile``: (profiled iterations, per-layer times in engine order)."""
    data = _load_json(path_or_obj)
    if not isinstance(data, list) or not data or not isinstance(data[0], dict) or "count" not in data[0]:
        raise ExportError('tensorrt: --exportProfile JSON must start with {"count": N}')
    layers = []
    for row in data[1:]:
        try:
            layers.append(LayerTime(str(row["name"]), float(row["timeMs"]), float(row["averageMs"]),
                                    float(row["medianMs"]) if "medianMs" in row else None, float(row["percentage"])))
        except (KeyError, TypeError, ValueError) as e:
            raise ExportError(f"tensorrt: malformed --exportProfile layer record {row!r}: {e}") from e
    return int(data[0]["count"]), layers


def parse_trtexec_output(path_or_obj) -> dict[str, np.ndarray]:
    """Parse ``trtexec --exportOutput``: output name → array with the written dimensions."""
    data = _load_json(path_or_obj)
    if not isinstance(data, list):
        raise ExportError("tensorrt: --exportOutput JSON must be a list of outputs")
    out = {}
    for entry in data:
        dims = tuple(int(d) for d in str(entry["dimensions"]).split("x") if d)
        values = np.asarray(entry["values"], dtype=np.float32)
        if values.size != int(np.prod(dims)):
            raise ExportError(f"tensorrt: output {entry['name']!r} has {values.size} values for dimensions {dims}")
        out[str(entry["name"])] = values.reshape(dims)
    return out


from deploy.fileio import atomic_write_bytes as _atomic_write_bytes  # noqa: E402


# ------------------------------------------------------------------------------ parity and registration
def check_tensorrt(path, reference, inputs, tolerance: float = 1e-4):
    from deploy.formats import input_names
    from deploy.parity import compare, ordered_outputs

    result = run_engine(path, {n: x.numpy() for n, x in zip(input_names(len(inputs)), inputs)})
    return compare("tensorrt", reference, ordered_outputs(result), tolerance)


def _export_format(model, example_inputs, target, *, precision, out_dir) -> dict:
    """The engine is built from ONNX: the export directory's ``model.onnx`` when that format ran
    first, else a private one removed afterwards."""
    import tempfile

    from deploy.onnx_export import FORMAT as ONNX, export_onnx

    ok, reason = tensorrt_status()
    if not ok:
        raise ExportError(f"tensorrt: unavailable here: {reason}; build on the target with "
                          f"`trtexec --onnx=model.onnx --saveEngine=model.engine`")
    onnx_path = Path(out_dir) / ONNX.file
    tmp_dir = None
    if not onnx_path.exists():
        tmp_dir = Path(tempfile.mkdtemp(prefix=".trt-onnx-", dir=out_dir))
        onnx_path = export_onnx(model, example_inputs, tmp_dir / "model.onnx")
    try:
        build_engine(onnx_path, target, EngineConfig(precision=precision))
    finally:
        if tmp_dir:
            shutil.rmtree(tmp_dir, ignore_errors=True)
    return {}


FORMAT = Format("tensorrt", "model.engine", _export_format, check_tensorrt, aliases=("trt", "engine"),
                precisions=PRECISIONS, extra=None, runtime="tensorrt")
