"""CLI of data / baseline / supernet / eval: user mistakes are one line and exit 2, no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hwnas.cli import main

REPO = Path(__file__).resolve().parents[1]


def _write_pairs(root: Path, stems, size=32):
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "masks").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for s in stems:
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(root / "images" / f"{s}.png")
        m = np.zeros((size, size), np.uint8)
        m[8:24, 8:24] = 255
        Image.fromarray(m).save(root / "masks" / f"{s}.png")


def _one_line_error(capsys, argv, pattern):
    rc = main(argv)
    stderr = capsys.readouterr().err
    err = [line for line in stderr.splitlines() if line.startswith("hwnas ")]  # the rest: progress bars
    assert rc == 2
    assert len(err) == 1 and "Traceback" not in stderr, stderr
    import re

    assert re.search(pattern, err[0]), err[0]
    return err[0]


@pytest.fixture
def tiny_ckpt(tmp_path, tiny_space):
    from hwnas.checkpoint import save_checkpoint, space_record
    from hwnas.supernet import Supernet

    return save_checkpoint({"space": space_record(tiny_space), "model": Supernet(tiny_space).state_dict()},
                           tmp_path / "supernet.pt")


def test_images_without_masks(tmp_path, capsys):
    _write_pairs(tmp_path / "d", ["a", "b"])
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "d" / "images" / "orphan.png")
    _one_line_error(capsys, ["baseline", "ft", "--data", str(tmp_path / "d")], r"have no mask .*orphan\.png")
    _one_line_error(capsys, ["supernet", "train", "--space", "inas-tiny", "--data", str(tmp_path / "d"), "--out",
                             str(tmp_path / "run"), "--steps", "1"], r"^hwnas supernet: error: 1 of 3 images")


def test_unreadable_image(tmp_path, capsys):
    _write_pairs(tmp_path / "d", ["a"])
    (tmp_path / "d" / "images" / "a.png").write_bytes(b"\x89PNG broken")
    _one_line_error(capsys, ["data", "check", str(tmp_path / "d")], r"cannot read image .*a\.png")
    _one_line_error(capsys, ["baseline", "ft", "--data", str(tmp_path / "d"), "--size", "32"], r"cannot read image .*a\.png")


def test_empty_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    _one_line_error(capsys, ["data", "check", str(tmp_path / "empty")], r"empty folder")
    _one_line_error(capsys, ["supernet", "train", "--space", "inas-tiny", "--data", str(tmp_path / "empty"),
                             "--out", str(tmp_path / "r"), "--steps", "1"], r"empty folder")


def test_checkpoint_of_another_space(tmp_path, capsys, tiny_ckpt, tiny_space, sod_space):
    _write_pairs(tmp_path / "d", ["a", "b"])
    line = _one_line_error(capsys, ["eval", "--space", "inas-sod", "--supernet", str(tiny_ckpt), "--arch", "largest",
                                    "--data", str(tmp_path / "d")], r"trained on space 'inas-tiny'")
    assert tiny_space.hash in line and sod_space.hash in line and "'inas-sod'" in line
    # resuming training into a run folder of another space is refused the same way
    _one_line_error(capsys, ["supernet", "train", "--space", "inas-sod", "--data", str(tmp_path / "d"), "--out",
                             str(tmp_path), "--steps", "1", "--batch-size", "1"], rf"hash {sod_space.hash}")


def test_bad_arch_and_options(tmp_path, capsys, tiny_ckpt):
    _write_pairs(tmp_path / "d", ["a"])
    _one_line_error(capsys, ["eval", "--supernet", str(tiny_ckpt), "--arch", "r999_bogus", "--data", str(tmp_path / "d")],
                    r"error:")
    _one_line_error(capsys, ["data", "synth", "--out", str(tmp_path / "s"), "--n", "0"], r"argument --n: expected an integer >= 1")
    _one_line_error(capsys, ["supernet", "train", "--space", "inas-tiny", "--data", str(tmp_path / "d"), "--out",
                             str(tmp_path / "r"), "--steps", "1", "--batch-size", "4"], r"fewer than one batch")


def test_synth_baseline_eval_end_to_end(tmp_path, capsys, tiny_ckpt):
    assert main(["data", "synth", "--out", str(tmp_path / "s"), "--n", "10", "--size", "64", "--seed", "1"]) == 0
    assert len(list((tmp_path / "s" / "val" / "images").glob("*.png"))) == 2
    assert main(["data", "check", str(tmp_path / "s"), "--split", "train"]) == 0
    assert "ok: 8 pairs" in capsys.readouterr().out
    assert main(["baseline", "ft", "--data", str(tmp_path / "s")]) == 0
    out = capsys.readouterr().out
    assert "frequency-tuned" in out and "max-F" in out
    assert main(["eval", "--supernet", str(tiny_ckpt), "--arch", "smallest", "--data", str(tmp_path / "s"),
                 "--calib-batches", "1", "--batch-size", "4", "--json"]) == 0
    import json

    row = json.loads([line for line in capsys.readouterr().out.splitlines() if line.startswith("{")][0])
    assert row["images"] == 2 and 0 <= row["max_f"] <= 1 and row["arch"].startswith("r64_")


def test_error_exits_2_without_traceback_in_a_real_process(tmp_path):
    (tmp_path / "empty").mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    p = subprocess.run([sys.executable, "-m", "hwnas", "baseline", "ft", "--data", str(tmp_path / "empty")],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2
    assert p.stderr.strip().splitlines() == [f"hwnas baseline: error: {tmp_path / 'empty'}: empty folder (no images, no sub-folders)"]


def _synth_val_and_rest(tmp_path: Path, skip: int) -> tuple[Path, Path]:
    """Synthetic data with 4 validation pairs, and a folder holding those after the first ``skip``."""
    import shutil

    assert main(["data", "synth", "--out", str(tmp_path / "s"), "--n", "20", "--size", "64", "--seed", "1"]) == 0
    val, rest = tmp_path / "s" / "val", tmp_path / "rest"
    for sub in ("images", "masks"):
        (rest / sub).mkdir(parents=True)
        for f in sorted((val / sub).glob("*.png"))[skip:]:
            shutil.copy(f, rest / sub / f.name)
    return val, rest


def test_eval_skip_images_scores_only_the_images_a_search_did_not(tmp_path, capsys, tiny_ckpt):
    """`--skip-images N` = the same scores as a folder holding only the images after the first N."""
    import json

    val, rest = _synth_val_and_rest(tmp_path, skip=2)
    common = ["--supernet", str(tiny_ckpt), "--arch", "smallest", "--calib", str(tmp_path / "s" / "train"),
              "--calib-batches", "1", "--batch-size", "4", "--json"]
    capsys.readouterr()

    def scores(*argv):
        assert main(["eval", *common, *argv]) == 0
        return json.loads([x for x in capsys.readouterr().out.splitlines() if x.startswith("{")][0])

    skipped, copied, whole = scores("--data", str(val), "--skip-images", "2"), scores("--data", str(rest)), scores("--data", str(val))
    assert skipped["images"] == copied["images"] == 2 and whole["images"] == 4
    assert skipped == copied and skipped["max_f"] != whole["max_f"]
    _one_line_error(capsys, ["eval", *common, "--data", str(val), "--skip-images", "4"], r"--skip-images 4 leaves no image of the 4")


def test_search_fitness_val_skip_is_a_rescore_on_the_next_images(tmp_path, tiny_space):
    """`val_skip=N` scores on images N.. (the metric's test-retest in bench/predictor_search.py)."""
    import torch

    from hwnas.search.errors import SearchError
    from hwnas.search.fitness import SupernetFitness
    from hwnas.supernet import Supernet

    val, rest = _synth_val_and_rest(tmp_path, skip=2)
    train = tmp_path / "s" / "train"

    torch.manual_seed(0)
    net = Supernet(tiny_space)
    arch = tiny_space.smallest(64)
    kw = dict(resolution=64, val_images=2, calib_batches=1, batch_size=4)
    first = SupernetFitness.from_folders(net, val, train, **kw)(arch)
    skipped = SupernetFitness.from_folders(net, val, train, val_skip=2, **kw)(arch)
    copied = SupernetFitness.from_folders(net, rest, train, **kw)(arch)
    assert skipped == copied != first
    with pytest.raises(SearchError, match="skipping 4 of the 4 validation pairs"):
        SupernetFitness.from_folders(net, val, train, val_skip=4, **kw)
