"""TensorRT: what can be checked without TensorRT (configuration, trtexec argument lists, parsing
trtexec's JSON), plus an engine build + parity test behind the ``tensorrt`` marker.

The JSON fixtures below are written the way trtexec writes them: the writer is NVIDIA's
``samples/common/sampleReporting.cpp`` (``exportJSONTrace`` — one object per inference, entries
separated by a leading ``", "``; ``Profiler::exportJSONProfile`` — ``{ "count" : N }`` first, then
one object per layer), and its readers are ``samples/trtexec/tracer.py`` / ``profiler.py``.
TensorRT 10 writes ``medianMs`` per layer and drops the warm-up records and ``endToEndMs`` from
the trace; TensorRT 8 wrote both.
"""

import os

import numpy as np
import pytest
import torch

from deploy.errors import ExportError
from deploy.tensorrt_export import (
    EngineConfig, configure_builder, network_flags, parse_trtexec_output, parse_trtexec_profile,
    parse_trtexec_times, tensorrt_status, trtexec_benchmark_args, trtexec_build_args,
)

TRT10_TIMES = """[
  { "startEnqMs" : 1204.51, "endEnqMs" : 1204.53, "startH2dMs" : 1204.54, "endH2dMs" : 1204.61, "startComputeMs" : 1204.62, "endComputeMs" : 1205.84, "startD2hMs" : 1205.85, "endD2hMs" : 1205.93, "h2dMs" : 0.07, "computeMs" : 1.22, "d2hMs" : 0.08, "latencyMs" : 1.42 }
, { "startEnqMs" : 1205.95, "endEnqMs" : 1205.97, "startH2dMs" : 1205.98, "endH2dMs" : 1206.05, "startComputeMs" : 1206.06, "endComputeMs" : 1207.26, "startD2hMs" : 1207.27, "endD2hMs" : 1207.35, "h2dMs" : 0.07, "computeMs" : 1.2, "d2hMs" : 0.08, "latencyMs" : 1.4 }
, { "startEnqMs" : 1207.4, "endEnqMs" : 1207.42, "startH2dMs" : 1207.43, "endH2dMs" : 1207.5, "startComputeMs" : 1207.51, "endComputeMs" : 1208.81, "startD2hMs" : 1208.82, "endD2hMs" : 1208.9, "h2dMs" : 0.07, "computeMs" : 1.3, "d2hMs" : 0.08, "latencyMs" : 1.5 }
, { "startEnqMs" : 1208.95, "endEnqMs" : 1208.97, "startH2dMs" : 1208.98, "endH2dMs" : 1209.06, "startComputeMs" : 1209.07, "endComputeMs" : 1210.29, "startD2hMs" : 1210.3, "endD2hMs" : 1210.39, "h2dMs" : 0.08, "computeMs" : 1.22, "d2hMs" : 0.09, "latencyMs" : 1.44 }
, { "startEnqMs" : 1210.4, "endEnqMs" : 1210.42, "startH2dMs" : 1210.43, "endH2dMs" : 1210.5, "startComputeMs" : 1210.51, "endComputeMs" : 1213.51, "startD2hMs" : 1213.52, "endD2hMs" : 1213.6, "h2dMs" : 0.07, "computeMs" : 3.0, "d2hMs" : 0.08, "latencyMs" : 3.2 }
]
"""

# TensorRT 8.x: warm-up records included, an extra endToEndMs
TRT8_TIMES = """[
  { "startEnqMs" : 0.5, "endEnqMs" : 0.6, "startH2dMs" : 0.6, "endH2dMs" : 0.7, "startComputeMs" : 0.7, "endComputeMs" : 9.7, "startD2hMs" : 9.7, "endD2hMs" : 9.8, "h2dMs" : 0.1, "computeMs" : 9, "d2hMs" : 0.1, "latencyMs" : 9.2, "endToEndMs" : 9.3 }
, { "startEnqMs" : 10.0, "endEnqMs" : 10.1, "startH2dMs" : 10.1, "endH2dMs" : 10.2, "startComputeMs" : 10.2, "endComputeMs" : 12.2, "startD2hMs" : 12.2, "endD2hMs" : 12.3, "h2dMs" : 0.1, "computeMs" : 2, "d2hMs" : 0.1, "latencyMs" : 2.2, "endToEndMs" : 2.3 }
, { "startEnqMs" : 12.5, "endEnqMs" : 12.6, "startH2dMs" : 12.6, "endH2dMs" : 12.7, "startComputeMs" : 12.7, "endComputeMs" : 14.8, "startD2hMs" : 14.8, "endD2hMs" : 14.9, "h2dMs" : 0.1, "computeMs" : 2.1, "d2hMs" : 0.1, "latencyMs" : 2.3, "endToEndMs" : 2.4 }
]
"""

TRT10_PROFILE = """[
  { "count" : 250 }
, { "name" : "/stem/stem.0/Conv + /stem/stem.2/Relu", "timeMs" : 30.5, "averageMs" : 0.122, "medianMs" : 0.12, "percentage" : 25 }
, { "name" : "/stages.0/stages.0.0/dw/Conv", "timeMs" : 61, "averageMs" : 0.244, "medianMs" : 0.241, "percentage" : 50 }
, { "name" : "Reformatting CopyNode for Output Tensor 0 to /head/Sigmoid", "timeMs" : 30.5, "averageMs" : 0.122, "medianMs" : 0.118, "percentage" : 25 }
]
"""

TRT8_PROFILE = """[
  { "count" : 10 }
, { "name" : "conv1", "timeMs" : 1.5, "averageMs" : 0.15, "percentage" : 60 }
, { "name" : "sigmoid", "timeMs" : 1, "averageMs" : 0.1, "percentage" : 40 }
]
"""

OUTPUT_JSON = """[
  { "name" : "output"
  , "dimensions" : "1x1x2x2"
  , "values" : [ 0.1, 0.2, 0.3, 0.9 ]
  }
]
"""


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_parse_trtexec_times_trt10(tmp_path):
    t = parse_trtexec_times(_write(tmp_path, "times.json", TRT10_TIMES))
    assert t.runs == 5
    assert t.median_ms == pytest.approx(1.44)
    assert t.mean_ms == pytest.approx((1.42 + 1.4 + 1.5 + 1.44 + 3.2) / 5)
    assert t.min_ms == pytest.approx(1.4)
    assert t.compute_median_ms == pytest.approx(1.22)
    assert t.h2d_median_ms == pytest.approx(0.07) and t.d2h_median_ms == pytest.approx(0.08)
    assert t.p90_ms == pytest.approx(np.percentile([1.42, 1.4, 1.5, 1.44, 3.2], 90))


def test_parse_trtexec_times_trt8_skips_warmup(tmp_path):
    t = parse_trtexec_times(_write(tmp_path, "times.json", TRT8_TIMES), skip=1)
    assert t.runs == 2 and t.median_ms == pytest.approx(2.25) and t.compute_ms == [2.0, 2.1]


def test_parse_trtexec_profile_both_versions(tmp_path):
    count, layers = parse_trtexec_profile(_write(tmp_path, "p10.json", TRT10_PROFILE))
    assert count == 250 and len(layers) == 3
    assert layers[1].name == "/stages.0/stages.0.0/dw/Conv"
    assert layers[1].average_ms == pytest.approx(0.244) and layers[1].median_ms == pytest.approx(0.241)
    assert sum(layer.percentage for layer in layers) == pytest.approx(100)
    count, layers = parse_trtexec_profile(_write(tmp_path, "p8.json", TRT8_PROFILE))
    assert count == 10 and [layer.median_ms for layer in layers] == [None, None]


def test_parse_trtexec_output(tmp_path):
    out = parse_trtexec_output(_write(tmp_path, "out.json", OUTPUT_JSON))
    assert list(out) == ["output"] and out["output"].shape == (1, 1, 2, 2)
    assert out["output"][0, 0, 1, 1] == pytest.approx(0.9)


@pytest.mark.parametrize("text, match", [
    ("{}", "list of per-inference"),
    ("[]", "no inference records"),
    ('[{"startEnqMs": 1}]', r"lack \['computeMs', 'latencyMs'\]"),
    ("[", "cannot read"),
])
def test_bad_times_json_is_a_clear_error(tmp_path, text, match):
    with pytest.raises(ExportError, match=match):
        parse_trtexec_times(_write(tmp_path, "t.json", text))


def test_bad_profile_json_is_a_clear_error(tmp_path):
    with pytest.raises(ExportError, match="count"):
        parse_trtexec_profile(_write(tmp_path, "p.json", '[{"name": "x"}]'))
    with pytest.raises(ExportError, match="malformed"):
        parse_trtexec_profile(_write(tmp_path, "p.json", '[{"count": 1}, {"name": "x"}]'))


def test_trtexec_build_args_fp32_trt10():
    args = trtexec_build_args("m.onnx", "m.engine", EngineConfig(workspace_mb=512), trtexec="/usr/src/tensorrt/bin/trtexec")
    assert args == ["/usr/src/tensorrt/bin/trtexec", "--onnx=m.onnx", "--saveEngine=m.engine",
                    "--memPoolSize=workspace:512", "--noTF32", "--skipInference"]


def test_trtexec_build_args_fp16_trt8_and_refusal_on_trt11():
    args = trtexec_build_args("a b.onnx", "m.engine", EngineConfig(precision="fp16", builder_optimization_level=5),
                              trt_version=(8, 5), timing_cache="cache.bin")
    assert args[1] == "--onnx=a b.onnx"  # an argument list: a space needs no quoting
    assert "--explicitBatch" in args and "--fp16" in args and "--builderOptimizationLevel=5" in args
    assert "--timingCacheFile=cache.bin" in args and "--skipInference" not in args  # 8.5 has no --skipInference
    with pytest.raises(ExportError, match="removed in TensorRT 11"):
        trtexec_build_args("m.onnx", "m.engine", EngineConfig(precision="fp16"), trt_version=(11, 0))


def test_trtexec_benchmark_args():
    args = trtexec_benchmark_args("m.engine", times_json="t.json", profile_json="p.json", output_json="o.json",
                                  inputs_bin={"input": "x.bin"}, warmup_ms=500, duration_s=10, iterations=100)
    assert args[:6] == ["trtexec", "--loadEngine=m.engine", "--warmUp=500", "--duration=10", "--iterations=100", "--noDataTransfers"]
    for flag in ("--useSpinWait", "--useCudaGraph", "--loadInputs=input:x.bin", "--exportTimes=t.json",
                 "--dumpProfile", "--separateProfileRun", "--exportProfile=p.json", "--exportOutput=o.json"):
        assert flag in args
    with pytest.raises(ExportError):
        trtexec_benchmark_args("m.engine", iterations=0)


def test_engine_config_validation():
    with pytest.raises(ExportError, match=r"allowed: \['fp32', 'fp16'\]"):
        EngineConfig(precision="int8")
    with pytest.raises(ExportError, match="workspace_mb"):
        EngineConfig(workspace_mb=0)
    with pytest.raises(ExportError, match="0..5"):
        EngineConfig(builder_optimization_level=7)


class _FakeTRT:
    """The few names of the ``tensorrt`` module that engine configuration touches, recording calls.
    TensorRT cannot be installed here; this checks what our code asks of the documented API."""

    class MemoryPoolType:
        WORKSPACE = "WORKSPACE"

    class BuilderFlag:
        FP16 = "FP16"
        TF32 = "TF32"

    class NetworkDefinitionCreationFlag:
        EXPLICIT_BATCH = 0

    def __init__(self, version, fast_fp16=True):
        self.__version__ = version
        self.fast_fp16 = fast_fp16


class _FakeConfig:
    def __init__(self):
        self.pools, self.flags = {}, {"TF32"}  # TensorRT's default: TF32 on

    def clear_flag(self, flag):
        self.flags.discard(flag)

    def set_memory_pool_limit(self, pool, size):
        self.pools[pool] = size

    def set_flag(self, flag):
        self.flags.add(flag)


class _FakeBuilder:
    def __init__(self, fast_fp16=True):
        self.platform_has_fast_fp16 = fast_fp16

    def create_builder_config(self):
        return _FakeConfig()


def test_configure_builder_sets_pool_precision_and_level():
    trt = _FakeTRT("10.3.0")
    cfg = configure_builder(trt, _FakeBuilder(), EngineConfig(precision="fp16", workspace_mb=256, builder_optimization_level=4))
    assert cfg.pools == {"WORKSPACE": 256 * 2**20}
    assert cfg.flags == {"FP16", "TF32"} and cfg.builder_optimization_level == 4
    cfg = configure_builder(trt, _FakeBuilder(), EngineConfig())
    assert cfg.flags == set() and not hasattr(cfg, "builder_optimization_level")  # fp32: TF32 cleared


def test_configure_builder_refuses_silent_fp32():
    with pytest.raises(ExportError, match="no fast fp16"):
        configure_builder(_FakeTRT("10.3.0"), _FakeBuilder(fast_fp16=False), EngineConfig(precision="fp16"))
    with pytest.raises(ExportError, match="TensorRT >= 11"):
        configure_builder(_FakeTRT("11.1.0"), _FakeBuilder(), EngineConfig(precision="fp16"))


def test_network_flags_explicit_batch_only_before_trt10():
    assert network_flags(_FakeTRT("8.6.1")) == 1
    assert network_flags(_FakeTRT("10.0.1")) == 0


def test_missing_tensorrt_fails_plainly_and_leaves_nothing(tmp_path):
    ok, reason = tensorrt_status()
    if ok:
        pytest.skip(f"TensorRT is available here ({reason}); the missing-TensorRT path is not reachable")
    assert "not installed" in reason or "no CUDA" in reason
    import deploy

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 1, 1), torch.nn.Sigmoid())
    (r,) = deploy.export(model, (torch.randn(1, 3, 8, 8),), "tensorrt", tmp_path, {})
    assert r.status == "failed" and r.message.startswith("tensorrt: unavailable here:") and reason in r.message
    assert sorted(os.listdir(tmp_path)) == ["manifest.json"]


@pytest.mark.tensorrt
def test_engine_build_and_parity(tmp_path):
    ok, reason = tensorrt_status()
    if not ok:
        pytest.skip(f"needs TensorRT and a CUDA GPU: {reason}")
    import deploy

    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 1, 1), torch.nn.Sigmoid())
    results = deploy.export(model.eval(), (torch.randn(1, 3, 32, 32),), "onnx,tensorrt", tmp_path, {})
    trt = results[1]
    assert trt.status == "passed", trt.message
    assert trt.parity["max_abs_diff"] <= 1e-4  # TF32 is switched off for fp32 engines
