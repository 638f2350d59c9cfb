"""The quickstart end to end with tiny settings (``hwnas quickstart --smoke``), then ``lut calibrate`` and
``lut merge`` from the command line on the latency table it built.

Every stage runs for real (synthetic data, supernet training, a torch-cpu latency table of the
83-block ``inas-smoke`` space, its validation, both searches, held-out eval, ONNX export with parity,
the artifact measured with ONNX Runtime); only the amounts are tiny, so the figures mean nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
STAGES = ["data", "train", "lut", "lut-validate", "search-lgs", "search-uniform", "eval", "export", "measure"]


def _env():
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = "1"
    return env


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    out = tmp_path_factory.mktemp("quickstart") / "run"
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "hwnas", "quickstart", "--smoke", "--out", str(out)], env=_env(),
                          capture_output=True, text=True, timeout=900)
    seconds = time.perf_counter() - t0
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    print(f"quickstart --smoke: {seconds:.1f} s (load average {os.getloadavg()[0]:.1f})")
    return out, proc, seconds


def test_quickstart_smoke_runs_every_stage(smoke):
    from hwnas.arch import load_arch
    from hwnas.space import create
    from lut.table import LatencyTable

    out, proc, _ = smoke
    assert sorted(p.stem for p in (out / ".stages").glob("*.json")) == sorted(STAGES)
    assert "[quickstart] finished" in proc.stdout
    create("inas-smoke").validate(load_arch(str(out / "best-arch.json")))
    assert len(LatencyTable.read(out / "lut" / "torch-cpu-1t.parquet")) == len(create("inas-smoke").all_blocks())
    train = json.loads((out / "supernet" / "summary.json").read_text())
    assert train["final_lr"] == 0.0 and train["elapsed_s"] <= 1.10 * 0.05 * 60 + 10  # budget kept (+ a slow first step)
    manifest = json.loads((out / "export" / "manifest.json").read_text())
    onnx = [a for a in manifest["artifacts"] if a["format"] == "onnx"]
    assert len(onnx) == 1 and onnx[0]["status"] == "passed"
    measured = json.loads((out / "measured.json").read_text())
    assert measured["onnxruntime-cpu"]["median_ms"] > 0 and measured["onnxruntime-cpu"]["runs"] >= 3
    summary = json.loads((out / "summary.json").read_text())
    assert 0 <= summary["metrics"]["max_f"] <= 1 and summary["predicted_ms"] > 0
    report = (out / "report.md").read_text()
    for section in ("## Chosen architecture", "## Artifacts", "## Latency table accuracy", "## Plots"):
        assert section in report
    for png in ("supernet/curve.png", "plots/pareto_lgs_vs_uniform.png", "lut/validation/scatter.png"):
        assert (out / png).stat().st_size > 1000


def test_quickstart_rerun_reuses_finished_stages(smoke):
    out, _, first_s = smoke
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "hwnas", "quickstart", "--smoke", "--out", str(out)], env=_env(),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.count("done earlier") == len(STAGES) - 1  # `measure` is recorded, not re-run or announced
    assert time.perf_counter() - t0 < first_s


def test_cli_lut_calibrate_saves_a_fit_and_refuses_too_few_models(smoke, tmp_path, capsys, monkeypatch):
    from hwnas.cli import main
    from lut import validate
    from lut.table import LatencyTable

    lut = tmp_path / "t.parquet"
    shutil.copy(smoke[0] / "lut" / "torch-cpu-1t.parquet", lut)
    table = LatencyTable.read(lut)
    assert table.calibration is None
    # What calibrate stores, not how models are timed (the validation tests time real ones): the smoke
    # space's models lie within ~12 % of each other, so a real timing on a noisy VM can invert their
    # order against the smoke table's single-run blocks, and the fit is then rightly refused.
    monkeypatch.setattr(validate, "measure_cases", lambda cases, *a, **k: {
        c.name: {"median_ms": 2.0 * table.model_ms(c.keys) + 0.5} for c in cases})
    assert main(["lut", "calibrate", "--lut", str(lut), "--n", "3", "--kind", "affine", "--candidates", "40",
                 "--no-progress"]) == 0
    assert "calibration: " in capsys.readouterr().out
    cal = LatencyTable.read(lut).calibration
    assert cal["kind"] == "affine" and cal["n_models"] == 3
    assert cal["a"] == pytest.approx(2.0, rel=1e-6) and cal["b_ms"] == pytest.approx(0.5, abs=1e-6)
    capsys.readouterr()
    assert main(["lut", "calibrate", "--lut", str(lut), "--n", "3", "--kind", "affine+count"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "--n" in err and "Traceback" not in err
    assert LatencyTable.read(lut).calibration == cal  # a refused fit leaves the saved one alone


def test_cli_lut_merge_joins_journals_and_refuses_another_protocol(tmp_path, capsys):
    from hwnas.cli import main
    from lut.build import journal_path, read_rows
    from lut.table import LatencyTable

    def part(name: str, seed: int, runs: int) -> Path:
        out = tmp_path / f"{name}.parquet"
        assert main(["lut", "build", "--space", "inas-smoke", "--backend", "torch-cpu", "--runs", str(runs),
                     "--min-time-s", "0", "--limit", "3", "--seed", str(seed), "--out", str(out), "--no-progress"]) == 0
        assert journal_path(out).exists() and not out.exists()  # unfinished: only its journal
        return journal_path(out)

    a, b = part("a", 0, 1), part("b", 1, 1)
    keys = {r["key"] for j in (a, b) for r in read_rows(j)[1]}
    capsys.readouterr()
    assert main(["lut", "merge", str(a), str(b), "--out", str(tmp_path / "m.parquet")]) == 0
    assert f"{len(keys)} blocks from 2 inputs" in capsys.readouterr().out
    assert set(LatencyTable.read(tmp_path / "m.parquet").keys) == keys
    other = part("c", 2, 2)  # measured with another protocol: its numbers are not comparable
    capsys.readouterr()
    assert main(["lut", "merge", str(a), str(other), "--out", str(tmp_path / "bad.parquet")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "cannot merge" in err and "protocol differs" in err
    assert not (tmp_path / "bad.parquet").exists()


def test_quickstart_refuses_a_search_split_that_leaves_nothing_held_out(tmp_path):
    """Checked right after the data stage, before any training: no image left for held-out metrics."""
    from dataclasses import replace

    from hwnas.errors import HwnasError
    from hwnas.quickstart import QuickstartConfig, run

    smoke = QuickstartConfig.smoke(tmp_path / "q")
    n_val = round(smoke.images * smoke.val_fraction)  # the smoke data's validation pairs (8)
    cfg = replace(smoke, val_images=n_val)
    with pytest.raises(HwnasError, match=f"the search's {n_val} validation images leave none of the {n_val}"):
        run(cfg)
    assert not (tmp_path / "q" / "supernet").exists()


def test_report_states_the_measurement_floor_and_an_unsteady_reference():
    """The accuracy table is followed by what bounds it: the models' own retest, and a warning when the
    drift reference moved more than 25 % (p90/p10) across the table's windows."""
    from hwnas.quickstart_report import measurement_floor_lines

    retest = {"n": 12, "raw_median_pct": 17.26, "normalized_median_pct": 11.13}
    steady = measurement_floor_lines(retest, [0.30, 0.31, 0.32, 0.33, 0.34, float("nan")])
    assert steady[0].startswith("Measurement floor: the same 12 models") and "17.3 % (11.1 % drift-compensated)" in steady[0]
    assert "5 block windows" in steady[1] and "The machine ran at speeds" not in steady[1]
    unsteady = measurement_floor_lines(None, [0.19] * 5 + [0.33] * 5 + [0.45] * 5)
    assert len(unsteady) == 1 and "(2.37x)" in unsteady[0] and "The machine ran at speeds" in unsteady[0]
    assert measurement_floor_lines(None, [0.3, 0.3]) == []
