"""`hwnas search` end to end on a tiny real supernet checkpoint, a LUT file and a synthetic SOD folder."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from hwnas.arch import load_arch
from hwnas.cli import main
from hwnas.search.synthetic import MacsLatencyModel

RES = 64


@pytest.fixture(scope="module")
def assets(tmp_path_factory):
    """A LUT whose entries are the LUT-like model's per-block costs (keys from space.blocks), a
    random-init supernet checkpoint, and a small synthetic SOD set."""
    from hwnas.checkpoint import save_checkpoint, space_record
    from hwnas.data.synth import write_synthetic
    from hwnas.space import create
    from hwnas.supernet import Supernet
    from lut.table import LatencyTable

    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("search_cli")
    space = create("inas-tiny")
    keys = sorted({b.key for b in space.all_blocks([RES])})
    # deterministic, key-dependent costs so latency grows with the block's size
    rows = [{"key": k, "kind": k.split()[0], "median_ms": 0.001 * (1 + len(k) + sum(map(ord, k)) % 97)} for k in keys]
    lut_path = LatencyTable(rows, {"space": {"name": space.name, "hash": space.hash}, "resolutions": [RES],
                                   "backend": {"name": "synthetic"}}).write(root / "tiny.parquet")
    ckpt = save_checkpoint({"space": space_record(space), "model": Supernet(space).state_dict()}, root / "supernet.pt")
    write_synthetic(root / "data", 24, seed=0, size=64, val_fraction=0.25)
    return {"lut": lut_path, "supernet": ckpt, "val": root / "data" / "val", "train": root / "data" / "train", "root": root}


def _argv(assets, out, *extra):
    return ["search", "--space", "inas-tiny", "--supernet", str(assets["supernet"]), "--lut", str(assets["lut"]),
            "--data", str(assets["val"]), "--calib", str(assets["train"]), "--out", str(out), "--quiet", *extra]


def test_impossible_constraint_refused_up_front(assets, tmp_path, capsys):
    from hwnas.search.fitness import LutLatency
    from hwnas.space import create

    space = create("inas-tiny")
    lat = LutLatency.from_file(assets["lut"], space)
    lo, hi = lat(space.smallest(RES)), lat(space.largest(RES))
    rc = main(_argv(assets, tmp_path / "never", "--max-latency-ms", f"{lo / 2:.4f}"))
    err = capsys.readouterr().err
    assert rc == 2
    assert f"feasible range: {lo:.3f}-{hi:.3f} ms" in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "never").exists()  # refused before any work


def test_cli_search_writes_results_and_resumes(assets, tmp_path, capsys):
    out = tmp_path / "run"
    argv = _argv(assets, out, "--population", "8", "--groups", "2", "--keep", "4", "--iterations", "1",
                 "--workers", "1", "--val-images", "4", "--calib-batches", "1", "--batch-size", "4")
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "latency range" in captured.err and "12 candidates evaluated (12 computed" in captured.err
    rows = (out / "population.csv").read_text().splitlines()
    assert rows[0].split(",")[:3] == ["arch", "latency_ms", "max_f"] and len(rows) == 1 + 12
    files = sorted((out / "pareto").glob("arch-*ms-maxF*.json"))
    assert files and (out / "plots" / "pareto.png").stat().st_size > 10_000
    arch = load_arch(str(files[0]))
    assert arch.resolution == RES
    # the same command again: everything comes from the cache
    assert main(argv) == 0
    assert "(0 computed by this run" in capsys.readouterr().err
    # one more iteration extends the finished search
    more = list(argv)
    more[more.index("--iterations") + 1] = "2"
    assert main(more) == 0
    assert "16 candidates evaluated (4 computed" in capsys.readouterr().err
    state = json.loads((out / "search_state.json").read_text())
    assert state["iteration_done"] == 2


def test_cli_refuses_resume_with_other_settings(assets, tmp_path, capsys):
    out = tmp_path / "run"
    small = ["--population", "4", "--groups", "2", "--keep", "2", "--iterations", "0", "--workers", "1",
             "--val-images", "4", "--calib-batches", "1", "--batch-size", "4"]
    assert main(_argv(assets, out, *small)) == 0
    capsys.readouterr()
    assert main(_argv(assets, out, *small, "--metric", "mae")) == 2
    assert "other settings (fingerprint.metric: 'max_f' vs 'mae'; found vs this command's)" in capsys.readouterr().err


def test_cli_help_lists_the_options():
    out = subprocess.run([sys.executable, "-m", "hwnas", "search", "--help"], capture_output=True, text=True,
                         cwd=Path(__file__).resolve().parents[1])
    assert out.returncode == 0
    for flag in ("--max-latency-ms", "--population", "--groups", "--iterations", "--seed", "--sampler", "--out",
                 "--predictor", "--screen-factor", "--explore", "--device", "--synthetic"):
        assert flag in out.stdout


def test_lut_latency_matches_the_table_sum(assets):
    from hwnas.search.fitness import LutLatency
    from hwnas.space import create
    from lut.table import LatencyTable

    space = create("inas-tiny")
    lat = LutLatency.from_file(assets["lut"], space)
    table = LatencyTable.read(assets["lut"])
    arch = space.sample(5, resolution=RES)
    assert lat(arch) == pytest.approx(sum(table.median_ms(b.key) for b in space.blocks(arch)))
    assert lat.resolutions == [RES]
    assert MacsLatencyModel(space)(arch) > 0


def test_cli_needs_the_four_inputs_unless_synthetic(tmp_path, capsys):
    assert main(["search", "--out", str(tmp_path / "run"), "--lut", "x.parquet"]) == 2
    assert "--supernet, --data, --calib required (or --synthetic" in capsys.readouterr().err
    assert main(["search", "--synthetic", "--predictor", "gbt", "--population", "12", "--groups", "3", "--keep", "3",
                 "--iterations", "1", "--quiet", "--out", str(tmp_path / "syn")]) == 0
    summary = json.loads((tmp_path / "syn" / "search.json").read_text())
    assert summary["config"]["predictor"] == "gbt" and summary["evaluated"] == 15 and summary["predicted"] > 3
    assert f"{summary['predicted']} offspring scored by the gbt predictor" in capsys.readouterr().err
