"""Profilers: timing protocol and statistics, registry, and each runtime measured for real."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import torch
import torch.nn as nn

import profilers
from profilers.errors import ProfilerError
from profilers.stats import Measurement, Protocol, time_callable

FAST = Protocol(warmup_runs=10, warmup_s=0.2, runs=20, min_time_s=0.05, max_attempts=1)


def small_model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1, groups=8)).eval()


def small_inputs():
    return (torch.randn(1, 3, 16, 16),)


class FakeClock:
    """A clock that only moves when the measured function runs: exact, deterministic timings."""

    def __init__(self, durations_s):
        self.t = 0.0
        self.durations = iter(durations_s)

    def __call__(self):
        return self.t

    def run(self):
        self.t += next(self.durations)


# ----------------------------------------------------------------------------- protocol
def test_protocol_enforces_warmup_floor():
    with pytest.raises(ProfilerError, match="warm-up must be >= 10 runs and >= 0.2 s"):
        Protocol(warmup_runs=5)
    with pytest.raises(ProfilerError, match="warm-up"):
        Protocol(warmup_s=0.1)


def test_time_callable_follows_protocol_exactly():
    clock = FakeClock(iter(lambda: 0.002, None))  # every run takes exactly 2 ms
    m = time_callable(clock.run, Protocol(runs=10, min_time_s=0.1), clock=clock)
    assert m.warmup_runs == 100  # 0.2 s of warm-up at 2 ms a run (more than the 10-run floor)
    assert m.runs == 50  # max(10 runs, 0.1 s / 2 ms)
    assert m.median_ms == pytest.approx(2.0)
    assert m.iqr_over_median == pytest.approx(0.0)
    assert not m.unstable and m.attempts == 1


def test_time_callable_runs_floor_dominates_for_slow_models():
    clock = FakeClock(iter(lambda: 0.05, None))  # 50 ms a run
    m = time_callable(clock.run, Protocol(runs=30, min_time_s=0.1), clock=clock)
    assert m.warmup_runs == 10 and m.runs == 30


def test_unstable_measurement_is_remeasured_and_flagged():
    # attempt 1: alternating 1 ms / 3 ms (IQR/median = 1.0); attempt 2: steady 1 ms
    noisy = [0.001, 0.003] * 60  # exactly attempt 1: 100 warm-up runs (0.2 s) + 20 timed
    steady = [0.001] * 400
    clock = FakeClock(noisy + steady)
    p = Protocol(runs=20, min_time_s=0.0, warmup_s=0.2, max_attempts=3)
    m = time_callable(clock.run, p, clock=clock)
    assert m.attempts == 2 and not m.unstable and m.median_ms == pytest.approx(1.0)

    always_noisy = FakeClock([0.001, 0.003] * 2000)
    m = time_callable(always_noisy.run, Protocol(runs=20, min_time_s=0.0, max_attempts=2), clock=always_noisy)
    assert m.unstable and m.attempts == 2 and m.iqr_over_median > 0.1


def _busy(ms: float) -> None:
    end = time.thread_time() + ms / 1e3
    while time.thread_time() < end:
        pass


def test_thread_cpu_clock_counts_own_work_and_refuses_other_threads():
    p = Protocol(runs=20, min_time_s=0.0, max_attempts=1, clock="thread_cpu")
    m = time_callable(lambda: _busy(1.0), p)
    assert m.info["clock"] == "thread_cpu" and m.median_ms == pytest.approx(1.0, rel=0.2)
    assert m.median_ms <= m.info["wall_median_ms"] * 1.05  # CPU time never exceeds wall time (1 thread)

    def elsewhere():  # the work happens on another thread, the caller only waits
        t = threading.Thread(target=_busy, args=(1.0,))
        t.start()
        t.join()

    with pytest.raises(ProfilerError, match="runs on other threads; use clock 'wall'"):
        time_callable(elsewhere, p)
    with pytest.raises(ProfilerError, match="only latency for 1 thread"):
        profilers.get("onnxruntime-cpu", threads=2, protocol=p)
    with pytest.raises(ProfilerError, match="clock 'gpu' unknown"):
        Protocol(clock="gpu")


def test_statistics_match_numpy():
    s = list(np.arange(1, 101, dtype=float))
    m = Measurement.from_samples(s, warmup_runs=10)
    assert m.median_ms == 50.5 and m.mean_ms == 50.5 and m.min_ms == 1.0
    assert m.p90_ms == pytest.approx(np.percentile(s, 90)) and m.p99_ms == pytest.approx(np.percentile(s, 99))
    assert m.std_ms == pytest.approx(np.std(s, ddof=1))
    assert m.iqr_over_median == pytest.approx((75.25 - 25.75) / 50.5)
    assert m.samples_ms == s and m.runs == 100
    assert Measurement.from_dict(json.loads(json.dumps(m.to_dict()))) == m


# ----------------------------------------------------------------------------- registry
def test_registry_lists_every_backend_with_a_reason():
    av = profilers.available()
    assert set(av) == {"onnxruntime-cpu", "executorch-xnnpack", "openvino-cpu", "litert", "torch-cpu", "torch-cuda",
                       "tensorrt", "ssh", "adb"}
    for name, (ok, reason) in av.items():
        assert isinstance(ok, bool) and reason, name
    assert av["onnxruntime-cpu"][0] and av["torch-cpu"][0]
    if not torch.cuda.is_available():
        assert not av["torch-cuda"][0]


def test_unknown_backend_suggests():
    with pytest.raises(ProfilerError, match="did you mean 'onnxruntime-cpu'"):
        profilers.get("onnxruntime-cp")


def test_import_is_lazy():
    code = "import sys, profilers; print(sorted(m for m in ('onnxruntime','executorch','tensorrt','torch') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_bad_options_are_user_errors():
    with pytest.raises(ProfilerError, match="threads must be >= 1"):
        profilers.get("onnxruntime-cpu", threads=0)
    with pytest.raises(ProfilerError, match="allowed: \\['fp32'\\]"):
        profilers.get("onnxruntime-cpu", precision="fp16")
    with pytest.raises(ProfilerError, match="optimization"):
        profilers.get("onnxruntime-cpu", optimization="max")


# ------------------------------------------------------------------------ real runtimes
def _check_measurement(m, protocol):
    assert m.runs >= protocol.runs and len(m.samples_ms) == m.runs
    assert m.warmup_runs >= protocol.warmup_runs
    assert 0 < m.min_ms <= m.median_ms <= m.p90_ms <= m.p99_ms
    assert m.median_ms < 50  # a 16x16 two-conv model; seconds would mean a broken timer


@pytest.mark.parametrize("exporter", ["torchscript", pytest.param("dynamo", marks=pytest.mark.slow)])
def test_onnxruntime_cpu_measures(exporter):
    import onnxruntime as ort

    prof = profilers.get("onnxruntime-cpu", threads=1, protocol=FAST, exporter=exporter)
    m = prof.measure(small_model(), small_inputs())
    _check_measurement(m, FAST)
    # ORT at 1 intra-op thread computes in the calling thread: CPU-time measurement is accepted
    cpu = profilers.get("onnxruntime-cpu", threads=1, protocol=Protocol(**dict(FAST.to_dict(), clock="thread_cpu")),
                        exporter=exporter).measure(small_model(), small_inputs())
    assert cpu.info["clock"] == "thread_cpu" and cpu.median_ms <= cpu.info["wall_median_ms"] * 1.05
    assert m.info["allow_spinning"] is False and m.info["intra_op_threads"] == 1
    dev = prof.device_info()
    assert dev["runtime_version"] == ort.__version__ and dev["threads"] == 1 and dev["precision"] == "fp32"
    assert dev["cpu_model"] and dev["logical_cores"] == os.cpu_count()


def test_torch_cpu_measures_and_restores_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        prof = profilers.get("torch-cpu", threads=1, protocol=FAST)
        _check_measurement(prof.measure(small_model(), small_inputs()), FAST)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.slow  # exporting through ExecuTorch takes 10-40 s on two shared cores
def test_executorch_xnnpack_measures_delegated():
    ok, reason = profilers.get_class("executorch-xnnpack").check_available()
    if not ok:
        pytest.skip(reason)
    from executorch.extension.pybindings.portable_lib import _threadpool_get_thread_count

    prof = profilers.get("executorch-xnnpack", threads=1, protocol=FAST)
    m = prof.measure(small_model(), small_inputs())
    _check_measurement(m, FAST)
    assert _threadpool_get_thread_count() == 1
    assert m.info["delegation"]["delegate_calls"] >= 1 and m.info["delegation"]["fully_delegated"]


def test_torch_cuda_timer_is_an_option_and_old_tables_keep_theirs():
    """CUDA-graph replays are the default timer; a table recorded before the timer was an option
    (settings ``timer: cuda-events``, no options) is rebuilt with the eager timer it was measured with."""
    prof = profilers.get("torch-cuda")
    assert prof.timer == "cuda-graph" and prof.identity()["options"] == {"timer": "cuda-graph"}
    with pytest.raises(ProfilerError, match=r"timer 'graph' unknown; allowed: \['cuda-graph', 'cuda-events'\]"):
        profilers.get("torch-cuda", timer="graph")
    old = {"name": "torch-cuda", "options": {},
           "settings": {"device": 0, "precision": "fp32", "cudnn_benchmark": True, "timer": "cuda-events"}}
    rebuilt = profilers.from_identity(old, threads=1, precision="fp32", protocol=FAST)
    assert rebuilt.timer == "cuda-events" and rebuilt.settings() == old["settings"]
    assert profilers.from_identity(prof.identity(), threads=1, precision="fp32", protocol=FAST).timer == "cuda-graph"


@pytest.mark.gpu
def test_torch_cuda_measures_with_events(tmp_path):
    ok, reason = profilers.get_class("torch-cuda").check_available()
    if not ok:
        pytest.skip(reason)
    for timer in ("cuda-graph", "cuda-events"):
        for precision in ("fp32", "fp16"):
            prof = profilers.get("torch-cuda", precision=precision, protocol=FAST, timer=timer)
            m = prof.measure(small_model(), small_inputs())
            _check_measurement(m, FAST)
            assert m.info["timer"] == timer
            assert prof.device_info()["gpu_name"]
        # the deploy form (a torch.export program), loaded back the way validation and remote runs do
        artifact = prof.export(small_model(), small_inputs(), tmp_path / f"m-{timer}.pt2")
        m = prof.measure_artifact(artifact, [tuple(t.shape) for t in small_inputs()])
        _check_measurement(m, FAST)


@pytest.mark.gpu
def test_torch_cuda_graph_replay_drops_launch_gaps():
    """A chain of 64 tiny kernels: eager, the events measure 64 launches from Python; a replay
    launches them at once, so it must be several times faster (the effect the graph timer exists for)."""
    import torch

    ok, reason = profilers.get_class("torch-cuda").check_available()
    if not ok:
        pytest.skip(reason)
    chain = torch.nn.Sequential(*[torch.nn.ReLU() for _ in range(64)])
    x = (torch.randn(1, 8, 4, 4),)
    eager = profilers.get("torch-cuda", protocol=FAST, timer="cuda-events").measure(chain, x)
    graph = profilers.get("torch-cuda", protocol=FAST, timer="cuda-graph").measure(chain, x)
    assert graph.median_ms < eager.median_ms / 2, (graph.median_ms, eager.median_ms)


def test_runner_measures_an_artifact_in_a_subprocess(tmp_path):
    """The command a remote host runs (``python -m profilers.runner``), run here."""
    prof = profilers.get("onnxruntime-cpu", threads=1, protocol=FAST, exporter="torchscript")
    artifact = prof.export(small_model(), small_inputs(), tmp_path / "m.onnx")
    argv = prof.runner_argv(str(artifact), [(1, 3, 16, 16)], python=sys.executable)
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    m, device = prof.parse_runner_output(out)
    _check_measurement(m, FAST)
    assert device["threads"] == 1 and device["runtime"] == "onnxruntime"

    bad = subprocess.run([*argv[:-1], str(tmp_path / "missing.onnx")], capture_output=True, text=True)
    assert bad.returncode == 2 and "cannot load" in bad.stderr


# --------------------------------------------------------------------------- tensorrt
TRT_TIMES = [{"count": 5}] + [
    {"startInMs": i, "endInMs": i, "startComputeMs": i, "endComputeMs": i + v, "startOutMs": i + v, "endOutMs": i + v,
     "inMs": 0, "computeMs": v, "outMs": 0, "latencyMs": v, "endToEndMs": v}
    for i, v in enumerate([1.5, 1.2, 1.3, 1.1, 9.0])
]
TRT_LOG = "[I] TensorRT version: 8.6.2\n[I] Selected Device: Orin\n[I] Precision: FP32+FP16\n&&&& PASSED TensorRT.trtexec"


def test_tensorrt_unavailable_fails_clearly(tmp_path):
    from profilers.tensorrt import find_trtexec

    if find_trtexec():
        pytest.skip("trtexec is installed here")
    ok, reason = profilers.get_class("tensorrt").check_available()
    assert not ok and "trtexec" in reason
    with pytest.raises(ProfilerError, match="TensorRT not found"):
        profilers.get("tensorrt").measure_artifact(tmp_path / "m.onnx", [(1, 3, 16, 16)])


def test_tensorrt_command_line_and_parsing():
    from profilers.tensorrt import TIMES_MARK, parse_log, parse_times

    prof = profilers.get("tensorrt", precision="fp16", protocol=Protocol(runs=200, min_time_s=3.0, warmup_s=0.5))
    argv = prof.trtexec_argv("/x/model.onnx", "/x/times.json", "/usr/src/tensorrt/bin/trtexec")
    assert argv[0] == "/usr/src/tensorrt/bin/trtexec"
    for flag in ("--onnx=/x/model.onnx", "--exportTimes=/x/times.json", "--iterations=200", "--duration=3",
                 "--warmUp=500", "--noDataTransfers", "--useCudaGraph", "--useSpinWait", "--fp16"):
        assert flag in argv
    assert "--fp16" not in profilers.get("tensorrt").trtexec_argv("a", "b")

    assert parse_times(json.dumps(TRT_TIMES)) == [1.5, 1.2, 1.3, 1.1, 9.0]
    with pytest.raises(ProfilerError, match="no per-inference"):
        parse_times("[{\"count\": 0}]")
    info = parse_log(TRT_LOG)
    assert info == {"tensorrt_version": "8.6.2", "gpu_name": "Orin", "precision_line": "FP32+FP16", "status": "PASSED"}

    # what the remote (Jetson) command prints, parsed back
    m, dev = prof.parse_runner_output(TRT_LOG + f"\n{TIMES_MARK}\n" + json.dumps(TRT_TIMES))
    assert m.median_ms == 1.3 and m.runs == 5
    assert dev == {"gpu_name": "Orin", "tensorrt_version": "8.6.2"}
    cmd = prof.remote_command("/tmp/d/model.onnx", [(1, 3, 16, 16)])
    assert "command -v trtexec" in cmd and "--exportTimes=/tmp/d/model.onnx.times.json" in cmd


def test_tensorrt_runs_trtexec_binary(tmp_path):
    """The subprocess path end to end with a stand-in ``trtexec`` that writes the documented outputs."""
    fake = tmp_path / "trtexec"
    times = json.dumps(TRT_TIMES)
    fake.write_text("#!/bin/sh\nfor a in \"$@\"; do case $a in --exportTimes=*) out=${a#--exportTimes=};; esac; done\n"
                    f"printf '%s' '{times}' > \"$out\"\nprintf '%s\\n' '{TRT_LOG}'\n")
    fake.chmod(0o755)
    prof = profilers.get("tensorrt", trtexec=str(fake), protocol=FAST)
    m = prof.measure_artifact(tmp_path / "m.onnx", [(1, 3, 16, 16)])
    assert m.samples_ms == [1.5, 1.2, 1.3, 1.1, 9.0] and m.median_ms == 1.3
    assert prof.runtime_version() == "8.6.2" and prof.device_info()["gpu_name"] == "Orin"


# -------------------------------------------------------------------------------- adb
RUNNER_LOG = "\n".join(
    [f"I 00:00:01.{i:06d} executorch:executor_runner.cpp:420] Iteration {i + 1} of 13: {v} ms"
     for i, v in enumerate([5.0] * 10 + [2.0, 2.5, 3.0])]
    + ["I 00:00:02.000000 executorch:executor_runner.cpp:433] Model executed successfully 13 time(s) in 57.5 ms."])


def test_adb_command_and_parsing():
    from profilers.adb import parse_executor_runner

    prof = profilers.get("adb", threads=4, serial="R58M", protocol=Protocol(runs=3, min_time_s=0.0))
    argv = prof.run_argv("/data/local/tmp/hwnas/model.pte")
    assert argv[:4] == ["adb", "-s", "R58M", "shell"]
    assert "taskset f0 /data/local/tmp/executor_runner --model_path=/data/local/tmp/hwnas/model.pte" in argv[4]
    assert "--num_executions=13" in argv[4] and "--cpu_threads=4" in argv[4]
    assert prof.push_argv("/tmp/x/model.pte") == ["adb", "-s", "R58M", "push", "/tmp/x/model.pte",
                                                  "/data/local/tmp/hwnas/model.pte"]
    m = prof.parse(RUNNER_LOG)
    assert m.samples_ms == [2.0, 2.5, 3.0] and m.warmup_runs == 10 and m.median_ms == 2.5
    assert parse_executor_runner("Model executed successfully 4 time(s) in 10.0 ms.") == [2.5]
    with pytest.raises(ProfilerError, match="printed no"):
        parse_executor_runner("Segmentation fault")
