"""The openvino-cpu and litert profilers: real runtimes, tiny models, tiny run counts."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import torch.nn as nn

import profilers
from profilers.errors import ProfilerError
from test_ssh import sshd  # noqa: F401  (the local OpenSSH server fixture)
from profilers.stats import Protocol

FAST = Protocol(warmup_runs=10, warmup_s=0.2, runs=20, min_time_s=0.0, max_attempts=1)
X = (torch.randn(1, 3, 16, 16, generator=torch.Generator().manual_seed(0)),)

needs_openvino = pytest.mark.skipif(not profilers.get_class("openvino-cpu").check_available()[0],
                                    reason=profilers.get_class("openvino-cpu").check_available()[1])
needs_litert = pytest.mark.skipif(not profilers.get_class("litert").check_available()[0],
                                  reason=profilers.get_class("litert").check_available()[1])


def conv(stride: int = 1, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Conv2d(3, 8, 3, stride=stride, padding=1), nn.ReLU(),
                         nn.Conv2d(8, 8, 3, padding=1, groups=8)).eval()


def test_listed_with_the_reason_when_missing(monkeypatch, capsys):
    from hwnas.cli import main

    assert main(["profilers", "list"]) == 0
    lines = {line.split()[1]: line for line in capsys.readouterr().out.splitlines() if len(line.split()) > 1}
    assert "openvino-cpu" in lines and "litert" in lines
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "ai_edge_litert" else real(name, *a))
    assert profilers.get_class("litert").check_available() == (False, "ai-edge-litert not installed; pip install 'hwnas[litert]'")
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino -> ImportError
    ok, reason = profilers.get_class("openvino-cpu").check_available()
    assert not ok and reason.startswith("openvino not installed") and "hwnas[openvino]" in reason


@needs_openvino
def test_openvino_measures_with_settings_read_back(tmp_path):
    prof = profilers.get("openvino-cpu", threads=2, protocol=FAST)
    m = prof.measure(conv(), X)
    assert m.runs >= FAST.runs and len(m.samples_ms) == m.runs and 0 < m.median_ms < 100
    compiled = m.info["compiled"]
    assert compiled["INFERENCE_NUM_THREADS"] == "2" and compiled["PERFORMANCE_HINT"] == "LATENCY"
    assert compiled["NUM_STREAMS"] == "1" and compiled["ENABLE_CPU_PINNING"] == "False"
    assert "float32" in compiled["INFERENCE_PRECISION_HINT"]
    dev = prof.device_info()
    assert dev["runtime"] == "openvino" and dev["settings"]["inference_num_threads"] == 2
    assert dev["settings"]["performance_hint"] == "LATENCY" and dev["settings"]["cpu_pinning"] is False
    # inference runs in the calling thread: the CPU-time clock is valid at one thread
    one = profilers.get("openvino-cpu", threads=1, protocol=Protocol(runs=20, min_time_s=0.0, clock="thread_cpu"))
    assert one.measure(conv(), X).median_ms > 0
    with pytest.raises(ProfilerError, match="not an IR tar"):
        one.measure_artifact(tmp_path / "missing.tar", [(1, 3, 16, 16)])


@needs_openvino
def test_openvino_node_profile_splits_a_block_from_its_neighbours(tmp_path):
    """PERF_COUNT per node of the executed graph, wired by its edges: lut.context.attribute finds
    the 1x1 neighbours and the plugin's layout Reorders around the depthwise 'block'."""
    from lut.context import attribute

    model = nn.Sequential(nn.Conv2d(3, 8, 1), nn.Conv2d(8, 8, 3, padding=1, groups=8), nn.ReLU(), nn.Conv2d(8, 4, 1)).eval()
    prof = profilers.get("openvino-cpu", protocol=FAST)
    art = prof.export(model, X, tmp_path / "m.tar")
    profile = prof.node_profile(art, [(1, 3, 16, 16)], runs=20)
    types = [n.op_type for n in profile.nodes]
    assert types.count("Convolution") == 2 and "GroupConvolution" in types and profile.total_us > 0
    assert len(profile.graph_inputs) == 1 and len(profile.graph_outputs) == 1
    split = attribute(profile, True, True)
    assert split.block_ops == ("GroupConvolution",)
    # the two 1x1 convolutions, plus the plugin's layout Reorders where this CPU's kernels want another layout
    assert sorted(op for op in split.neighbour_ops if op != "Reorder") == ["Convolution", "Convolution"]


@needs_litert
def test_litert_measures_inside_xnnpack_and_caches_conversions(tmp_path, monkeypatch):
    import deploy.tflite_export as tfl
    from profilers.litert import structure_key

    prof = profilers.get("litert", threads=1, protocol=FAST, cache_dir=str(tmp_path / "cache"))
    m = prof.measure(conv(), X)
    assert m.runs >= FAST.runs and 0 < m.median_ms < 100
    assert m.info["num_threads"] == 1 and m.info["delegate"] == "xnnpack"
    assert m.info["delegation"]["convolutions_in_xnnpack"] and m.info["delegation"]["fully_delegated"]
    assert len(list((tmp_path / "cache").rglob("*.tflite"))) == 1
    # same structure, other weights: served from the cache, the converter is not called
    monkeypatch.setattr(tfl, "export_tflite", lambda *a, **k: pytest.fail("converted again"))
    assert prof.measure(conv(seed=5), X).runs >= FAST.runs
    assert structure_key(conv(seed=0), X) == structure_key(conv(seed=5), X)
    assert structure_key(conv(stride=2), X) != structure_key(conv(), X)
    assert structure_key(conv(), (torch.randn(1, 3, 32, 32),)) != structure_key(conv(), X)


@needs_litert
def test_litert_profiler_pickles_and_its_cache_outlives_the_process(tmp_path, monkeypatch):
    """lut's builder sends the profiler to spawn workers to export blocks ahead of timing; a
    conversion made there (or by an earlier build) serves every later export of that structure."""
    import pickle

    import deploy.tflite_export as tfl

    prof = profilers.get("litert", threads=1, protocol=FAST, cache_dir=str(tmp_path / "cache"))
    first = pickle.loads(pickle.dumps(prof)).export(conv(), X, tmp_path / "w" / "block.tflite")  # "the worker"
    monkeypatch.setattr(tfl, "export_tflite", lambda *a, **k: pytest.fail("converted again"))
    again = profilers.get("litert", cache_dir=str(tmp_path / "cache")).export(conv(seed=3), X, tmp_path / "b.tflite")
    assert again.read_bytes() == first.read_bytes()


@needs_openvino
@needs_litert
@pytest.mark.parametrize("backend, suffix", [("openvino-cpu", ".tar"), ("litert", ".tflite")])
def test_runner_measures_the_artifact_without_the_exporter(tmp_path, backend, suffix):
    """What a remote host runs (`--host`): one file, the runner, one JSON line."""
    prof = profilers.get(backend, protocol=FAST, **({"cache_dir": str(tmp_path / "c")} if backend == "litert" else {}))
    art = prof.export(conv(), X, tmp_path / f"m{suffix}")
    assert art.is_file()
    argv = prof.runner_argv(str(art), [(1, 3, 16, 16)], python=sys.executable)
    out = subprocess.run(argv, capture_output=True, text=True, check=True, timeout=300).stdout
    m, device = prof.parse_runner_output(out)
    assert m.runs >= FAST.runs and device["backend"] == backend


@needs_openvino
@needs_litert
@pytest.mark.parametrize("backend", ["openvino-cpu", "litert"])
def test_lut_build_and_rebuilt_profiler(tmp_path, backend):
    """`lut build` on a few blocks; the table's metadata rebuilds an equivalent profiler (what
    `lut validate` measures whole models with)."""
    from lut.build import build
    from lut.table import LatencyTable
    from lut.validate import table_profiler
    from test_lut import SPACE, synthetic_blocks

    opts = {"cache_dir": str(tmp_path / "c")} if backend == "litert" else {}
    prof = profilers.get(backend, threads=1, protocol=FAST, **opts)
    table = build(synthetic_blocks()[:1], prof, tmp_path / "t.parquet", SPACE, progress=False)
    assert len(table) == 1 and all(table.rows["median_ms"] > 0)
    read = LatencyTable.read(tmp_path / "t.parquet")
    assert read.backend["name"] == backend
    again = table_profiler(read, runs=20)
    assert again.name == backend and again.settings() == prof.settings()
    assert again.measure(conv(), X).median_ms > 0


@needs_openvino
def test_openvino_blocks_through_the_onnx_frontend_are_the_deployed_ir(tmp_path):
    """``--exporter torchscript`` (a table's blocks) converts a TorchScript ONNX export with the ONNX
    frontend; ``dynamo`` (what ``hwnas export`` deploys) the module with the PyTorch frontend. On an
    inas-tiny fusion block in its context graph both give the same operations and the same outputs."""
    import tarfile

    import numpy as np

    from deploy.openvino_export import run_openvino
    from hwnas.space import create
    from lut.context import in_context

    block = next(b for b in create("inas-tiny").all_blocks([64]) if b.key.startswith("fusion"))
    module, inputs = in_context(block)
    irs = {}
    for exporter in ("dynamo", "torchscript"):
        prof = profilers.get("openvino-cpu", threads=1, exporter=exporter)
        assert prof.artifact_settings() == {"exporter": exporter}
        folder = tmp_path / exporter
        folder.mkdir()
        with tarfile.open(prof.export(module, inputs, tmp_path / f"{exporter}.tar")) as tar:
            tar.extractall(folder)
        import openvino as ov

        ops = sorted(op.get_type_name() for op in ov.Core().read_model(str(folder / "model.xml")).get_ordered_ops())
        irs[exporter] = (ops, run_openvino(folder / "model.xml", inputs))
    assert irs["dynamo"][0] == irs["torchscript"][0]
    for a, b in zip(irs["dynamo"][1], irs["torchscript"][1]):
        assert np.abs(a - b).max() <= 1e-5
    with pytest.raises(ProfilerError, match="exporter 'tflite' unknown"):
        profilers.get("openvino-cpu", exporter="tflite")


@needs_openvino
def test_openvino_conversion_starts_no_telemetry_process(tmp_path, monkeypatch):
    """OpenVINO's converter sends each conversion's telemetry from a new process; in a table build's
    spawned export workers each was a fresh interpreter (3.5 s per block instead of 0.5 s)."""
    import multiprocessing

    from deploy.openvino_export import export_openvino

    monkeypatch.delenv("CI", raising=False)
    monkeypatch.delenv("HWNAS_OPENVINO_TELEMETRY", raising=False)
    for frontend in ("pytorch", "onnx"):
        export_openvino(conv(), X, tmp_path / f"{frontend}.xml", frontend=frontend)
        assert multiprocessing.active_children() == []
    assert "CI" not in os.environ  # set for the conversion only


def test_context_runs_follow_a_model_run_only_where_the_model_fits_in_the_cache_and_is_cheap(monkeypatch):
    """inas-tiny at 64 px stays cached here: its blocks' context runs follow a whole-model run where
    the runtime asks for one or the model outgrows a core's private cache, else they run warm;
    where less than the model stays cached they follow the flush of the model's bytes."""
    import types

    import profilers.cache
    from hwnas.cli.lut import _cold_context_plan
    from hwnas.space import create

    space = create("inas-tiny")
    model = space.model_bytes(64)
    asks, plain = types.SimpleNamespace(context_after_model_run=True), types.SimpleNamespace()
    monkeypatch.setattr(profilers.cache, "retained_cache_bytes", lambda: 4 * model)
    keys = {b.key for b in space.all_blocks([64])}
    for prof, private in ((asks, 2 * model), (plain, model // 2)):
        flush, between = _cold_context_plan(space, [64], profiler=prof, private=private)
        assert set(between) == keys and set(flush) == keys and set(flush.values()) == {0}
    flush, between = _cold_context_plan(space, [64], profiler=plain, private=2 * model)  # fits L2: warm
    assert between == {} and set(flush.values()) == {0}
    assert set(_cold_context_plan(space, [64])[1]) == set(_cold_context_plan(space, [64], private=profilers.cache.private_cache_bytes())[1])
    monkeypatch.setattr(profilers.cache, "retained_cache_bytes", lambda: model // 2)
    flush, between = _cold_context_plan(space, [64], profiler=asks)
    assert between == {} and set(flush) == keys and set(flush.values()) == {model}
    # nor where the model to run is too costly to run before every context run (hwnas.reference.MAX_MACS)
    import hwnas.reference

    monkeypatch.setattr(profilers.cache, "retained_cache_bytes", lambda: 4 * model)
    monkeypatch.setattr(hwnas.reference, "MAX_MACS", 1000)
    for prof, private in ((asks, 2 * model), (plain, model // 2)):
        flush, between = _cold_context_plan(space, [64], profiler=prof, private=private)
        assert between == {} and set(flush) == keys


def test_options_unknown_are_refused():
    with pytest.raises(ProfilerError, match="bad options"):
        profilers.get("openvino-cpu", streams=4)
    with pytest.raises(ProfilerError, match="bad options"):
        profilers.get("litert", delegate="gpu")


@pytest.mark.slow
@needs_openvino
@needs_litert
@pytest.mark.parametrize("backend", ["openvino-cpu", "litert"])
def test_cli_lut_build_and_validate_on_inas_tiny(tmp_path, backend, capsys):
    """`hwnas lut build` + `lut validate` on inas-tiny at 64 px with tiny run counts."""
    from hwnas.cli import main

    lut_path = tmp_path / f"tiny-{backend}.parquet"
    assert main(["lut", "build", "--space", "inas-tiny", "--resolutions", "64", "--backend", backend, "--out",
                 str(lut_path), "--no-progress", "--runs", "10", "--min-time-s", "0"]) == 0
    assert main(["lut", "validate", "--lut", str(lut_path), "--space", "inas-tiny", "--n", "3", "--calibrate", "2",
                 "--candidates", "30", "--runs", "10", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "plain sum vs measured" in out and "n=3 MAPE" in out
    report = json.loads((tmp_path / f"tiny-{backend}.parquet.validation" / "report.json").read_text())
    assert len(report["models"]) == 3


# ------------------------------------------------------------------------------ through ssh (`--host`)
@pytest.mark.ssh
@needs_openvino
@needs_litert
@pytest.mark.parametrize("backend", ["openvino-cpu", "litert"])
def test_build_through_ssh_matches_local_keys(sshd, tmp_path, backend):
    """A table built through a real sshd (the remote runner measures the shipped artifact) has the
    local build's keys and the remote runtime's settings."""
    from lut.build import build
    from test_lut import SPACE, synthetic_blocks
    from test_ssh import remote

    opts = {"cache_dir": str(tmp_path / "c")} if backend == "litert" else {}
    blocks = synthetic_blocks()[:2]
    local = build(blocks, profilers.get(backend, protocol=FAST, **opts), tmp_path / "local.parquet", SPACE, progress=False)
    prof = remote(sshd, backend=backend, **opts)
    far = build(blocks, prof, tmp_path / "remote.parquet", SPACE, progress=False)
    dev = prof.device_info()
    prof.close()
    assert sorted(far.keys) == sorted(local.keys)
    assert far.metadata["device"]["via"] == "ssh" and far.backend["name"] == backend
    assert dev["runtime"] == profilers.get_class(backend).runtime and dev["settings"]["via"] == "ssh"


@needs_openvino
def test_openvino_context_runs_follow_a_whole_model_and_never_mix_with_a_warm_table(tmp_path, monkeypatch):
    """OpenVINO generates a kernel per node: a block's context runs (timed and profiled) follow an
    untimed run of a whole model; the table says so, and it does not mix with a warm one. Given the
    same plan, ONNX Runtime follows the model run too (the plan decides where: the runtime's ask, or
    a model outgrowing a core's private cache)."""
    from lut.build import build
    from lut.errors import LUTError
    from lut.table import compatibility_problem
    from test_lut import SPACE, synthetic_blocks

    spec = synthetic_blocks()[0]
    built = []

    def whole_model():
        built.append(1)
        return conv(), X

    prof = profilers.get("openvino-cpu", threads=1, protocol=FAST)
    ran = {"between": 0, "context": 0}
    real_prepare = type(prof).prepare

    def counting_prepare(self, path, shapes, **kw):
        run = real_prepare(self, path, shapes, **kw)
        name = "between" if "between" in path.name else "context" if path.name.startswith("context") else None
        if name is None:
            return run

        def counted():
            ran[name] += 1
            return run()
        counted.request, counted.compiled = getattr(run, "request", None), getattr(run, "compiled", None)
        return counted

    monkeypatch.setattr(type(prof), "prepare", counting_prepare)
    cold = build([spec], prof, tmp_path / "cold.parquet", SPACE, progress=False, model_between={spec.key: whole_model})
    assert cold.metadata["latency_model"]["cache"] == "model-run"
    assert cold.metadata["latency_model"]["node_profile"] == "trimmed-mean"
    assert built == [1]  # exported once per builder
    assert ran["between"] == ran["context"] > FAST.runs  # before every context run, warm-up and profile included
    assert cold.context_ms(spec.key) > 0
    monkeypatch.undo()
    warm = build([spec], profilers.get("openvino-cpu", threads=1, protocol=FAST), tmp_path / "warm.parquet", SPACE,
                 progress=False)
    assert warm.metadata["latency_model"]["cache"] == "warm"
    assert "latency model differs" in compatibility_problem(warm.metadata, cold.metadata)
    with pytest.raises(LUTError, match="cannot be extended"):
        build([spec], profilers.get("openvino-cpu", threads=1, protocol=FAST), tmp_path / "warm.parquet", SPACE,
              progress=False, model_between={spec.key: whole_model})
    pytest.importorskip("onnxruntime")
    # the build's plan decides where a model runs between (hwnas.cli.lut._cold_context_plan): any
    # runtime that profiles nodes follows it
    ort = build([spec], profilers.get("onnxruntime-cpu", threads=1, protocol=FAST), tmp_path / "ort.parquet", SPACE,
                progress=False, model_between={spec.key: whole_model})
    assert ort.metadata["latency_model"]["cache"] == "model-run" and "node_profile" not in ort.metadata["latency_model"]
    assert ort.context_ms(spec.key) > 0
