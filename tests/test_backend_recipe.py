"""The recipe "add a profiler backend" (docs/architecture.md), walked: one module (this test's
``ToyBackend``) plus one registry line, and every table command works with it, options included."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Sequence

import pytest
import torch

import profilers
from profilers.base import Profiler
from profilers.stats import Protocol

QUICK = Protocol(warmup_runs=10, warmup_s=0.2, runs=10, min_time_s=0.02, max_attempts=1)


class ToyBackend(Profiler):
    """Runs a TorchScript trace in this process, ``repeat`` times per inference (its option)."""

    name = "toy"
    artifact_suffix = ".ts"
    runtime = "torch"

    def __init__(self, threads: int = 1, precision: str = "fp32", protocol=None, repeat: int = 1):
        super().__init__(threads, precision, protocol)
        self.repeat = int(repeat)

    def runtime_version(self) -> str:
        return torch.__version__

    def settings(self) -> dict:
        return {"threads": self.threads, "repeat": self.repeat}

    def options(self) -> dict:
        return {"repeat": self.repeat}

    def export(self, model, example_inputs: tuple, path: Path) -> Path:
        with torch.no_grad():
            torch.jit.save(torch.jit.trace(model.eval(), tuple(example_inputs)), str(path))
        return Path(path)

    def prepare(self, path: Path, input_shapes: Sequence[tuple]):
        module = torch.jit.load(str(path))
        inputs = [torch.randn(s) for s in input_shapes]

        def run():
            with torch.inference_mode():
                for _ in range(self.repeat):
                    module(*inputs)

        run()
        return run


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(profilers.BACKENDS, "toy", f"{__name__}:ToyBackend")  # the one registry line


def test_toy_backend_builds_predicts_and_is_rebuilt_from_its_table(toy, tmp_path, capsys):
    from hwnas.cli import main
    from hwnas.space import create
    from lut.table import LatencyTable
    from lut.validate import table_profiler

    assert profilers.available()["toy"][0]
    out = tmp_path / "toy.parquet"
    rc = main(["lut", "build", "--space", "inas-smoke", "--backend", "toy", "--backend-option", "repeat=2",
               "--runs", "10", "--min-time-s", "0.02", "--out", str(out), "--no-progress"])
    assert rc == 0, capsys.readouterr().err
    t = LatencyTable.read(out)
    assert t.backend["name"] == "toy" and t.backend["options"] == {"repeat": 2}
    # interleaved with the reference (prepare is enough), no per-node profiler: call-overhead context
    assert t.metadata["latency_model"]["context"] == "call-overhead" and t.reference_ms > 0
    assert (t.rows["context_ms"] < t.rows["median_ms"]).all()
    space = create("inas-smoke")
    arch = space.smallest(space.resolutions[0])
    keys = [b.key for b in space.blocks(arch)]
    assert t.model_ms(keys) == pytest.approx(t.call_ms + sum(t.context_ms(k) for k in keys))
    prof = table_profiler(t)  # rebuilt from the table's metadata, its option included
    assert isinstance(prof, ToyBackend) and prof.repeat == 2
    capsys.readouterr()
    arch_file = tmp_path / "a.json"
    arch_file.write_text(json.dumps(arch.to_dict()))
    assert main(["lut", "predict", "--lut", str(out), "--arch", str(arch_file), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["predicted_ms"] == pytest.approx(t.model_ms(keys))


def test_unknown_backend_option_is_one_line(toy, tmp_path, capsys):
    from hwnas.cli import main

    rc = main(["lut", "build", "--space", "inas-smoke", "--backend", "toy", "--backend-option", "speed=9",
               "--out", str(tmp_path / "t.parquet"), "--no-progress"])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and "speed" in err[0], err


class DeviceTimedToy(ToyBackend):
    """A backend whose samples hold no per-call overhead (as torch-cuda's CUDA-graph replays) and
    that times one artifact at a time (no ``prepare``: no interleaved reference)."""

    name = "toy-device"
    call_in_samples = False
    prepare = Profiler.prepare

    def measure_artifact(self, path: Path, input_shapes):
        from profilers.stats import time_callable

        return time_callable(ToyBackend.prepare(self, path, input_shapes), self.protocol)


def test_a_backend_without_call_overhead_charges_blocks_their_isolated_time(tmp_path):
    """Where a sample holds no call (``Profiler.call_in_samples`` False) a table subtracts none:
    its call is 0, a block's context cost is its isolated median, the prediction the plain sum,
    and the latency model says so, so such a table never mixes with one that subtracts a call."""
    from hwnas.space import create
    from lut.measure import BlockMeter, latency_model_kind
    from lut.table import compatibility_problem

    prof = DeviceTimedToy(protocol=QUICK)
    assert not prof.can_interleave
    kind = latency_model_kind(prof)
    assert kind["context"] == "call-overhead" and kind["call"] == "none"
    assert "call" not in latency_model_kind(ToyBackend(protocol=QUICK))
    meter = BlockMeter(prof, tmp_path)
    assert meter.call_ms == 0.0 and meter.describe()["call"] == "none"
    space = create("inas-smoke")
    block = space.blocks(space.smallest(space.resolutions[0]))[0]
    arts = meter.export_ahead([block], tmp_path / "arts", progress=False, workers=1)[block.key]
    m, extra = meter.measure(block, arts)
    assert m.median_ms > 0 and extra["context_ms"] == m.median_ms
    with_call = dict(kind, call=None)
    assert "latency model differs" in compatibility_problem({"latency_model": kind}, {"latency_model": with_call})

    # torch-cuda: replays hold no call, eager events do (its timer decides; no GPU needed to ask)
    assert latency_model_kind(profilers.get("torch-cuda", timer="cuda-graph"))["call"] == "none"
    assert "call" not in latency_model_kind(profilers.get("torch-cuda", timer="cuda-events"))
