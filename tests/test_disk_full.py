"""Disk full: one line saying so and where (exit 2), nothing half-written trusted, a rerun after
freeing space resumes. The disk is a small tmpfs mounted for the test (needs root or
CAP_SYS_ADMIN; skipped with the reason otherwise), filled up to a chosen number of free bytes."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

from _spaces import MICRO_SPACE

import pytest

from hwnas.cli import main

FULL = "no space left on device (the disk is full)"


class SmallDisk:
    def __init__(self, root: Path):
        self.root = root
        self.filler = root / ".filler"

    def free_bytes(self) -> int:
        st = os.statvfs(self.root)
        return st.f_bavail * st.f_frsize

    def fill(self, leave_bytes: int) -> None:
        """Occupy all but ``leave_bytes`` of the disk."""
        size = self.free_bytes() - leave_bytes
        assert size > 0, f"the disk has only {self.free_bytes()} bytes free"
        with open(self.filler, "wb") as f:
            f.truncate(0)
            chunk = b"\0" * (1 << 20)
            while size > 0:
                size -= f.write(chunk[: min(len(chunk), size)])

    def make_room(self) -> None:
        self.filler.unlink(missing_ok=True)


@pytest.fixture
def small_disk(tmp_path):
    def mount(size: str) -> SmallDisk:
        root = tmp_path / "disk"
        root.mkdir()
        try:
            r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(root)],
                               capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired) as e:
            pytest.skip(f"disk-full test skipped: cannot run mount ({e})")
        if r.returncode != 0:
            pytest.skip(f"disk-full test skipped: mounting a tmpfs is not allowed here "
                        f"({(r.stderr or r.stdout).strip() or f'exit {r.returncode}'}); needs root or CAP_SYS_ADMIN")
        mounted.append(root)
        return SmallDisk(root)

    mounted: list[Path] = []
    yield mount
    for root in mounted:
        subprocess.run(["umount", "-l", str(root)], capture_output=True)


def _one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if line.startswith(f"hwnas {command}: error:")]
    assert len(errors) == 1, err
    return errors[0]


def _no_staging_left(directory: Path) -> None:
    leftovers = [p.name for p in directory.rglob(".*") if p.name != ".filler" and p.name.endswith(".tmp")]
    assert not leftovers, leftovers




@pytest.mark.slow  # ~85 s on 2 busy cores: 70 blocks exported and timed in context
def test_lut_build_on_a_full_disk_says_so_and_resumes(small_disk, tmp_path, capsys):
    from lut.build import journal_path
    from lut.table import LatencyTable

    disk = small_disk("2m")
    space = tmp_path / "micro.yaml"
    space.write_text(MICRO_SPACE)
    out = disk.root / "lut" / "micro.parquet"
    argv = ["lut", "build", "--space", str(space), "--out", str(out), "--no-progress", "--runs", "3", "--min-time-s", "0"]
    disk.fill(leave_bytes=16 * 1024)  # the lock file and a few pages of block artifacts or journal
    assert main(argv) == 2
    line = _one_error_line(capsys, "lut")
    assert line.startswith(f"hwnas lut: error: {disk.root}/lut/micro.parquet") and line.endswith(
        f": {FULL}; free space and rerun to resume"), line
    assert not out.exists()  # no table from a failed build
    journal = journal_path(out)
    measured = [json.loads(s)["row"]["key"] for s in journal.read_text().splitlines()[1:]
                if s.endswith("}")] if journal.exists() else []

    disk.make_room()
    assert main(argv) == 0
    capsys.readouterr()
    table = LatencyTable.read(out)
    assert len(table) == 70 and len(set(table.keys)) == 70  # complete, no key twice
    assert set(measured) <= set(table.keys) and not journal.exists()
    assert not journal.with_name(journal.name + ".lock").exists()
    _no_staging_left(disk.root)


def test_export_on_a_full_disk_leaves_nothing_and_reruns(small_disk, capsys):
    disk = small_disk("4m")
    out = disk.root / "exp"
    argv = ["export", "--space", "inas-tiny", "--arch", "smallest", "--formats", "onnx", "--out", str(out)]
    disk.fill(leave_bytes=64 * 1024)  # the tiny model's ONNX file is ~0.5 MB
    assert main(argv) == 2
    line = _one_error_line(capsys, "export")
    assert line.startswith(f"hwnas export: error: {out / 'model.onnx'}: {FULL}"), line
    assert not (out / "model.onnx").exists() and not (out / "manifest.json").exists()
    _no_staging_left(disk.root)

    disk.make_room()
    assert main(argv) == 0
    capsys.readouterr()
    manifest = json.loads((out / "manifest.json").read_text())
    assert [a["status"] for a in manifest["artifacts"]] == ["passed"]
    _no_staging_left(disk.root)


def test_supernet_train_on_a_full_disk_keeps_its_last_checkpoint_and_resumes(small_disk, tmp_path, capsys):
    from hwnas.checkpoint import load_checkpoint
    from hwnas.data.synth import write_synthetic

    write_synthetic(tmp_path / "data", n=16, seed=0, size=64, val_fraction=0.25)
    disk = small_disk("24m")
    run = disk.root / "run"
    argv = ["supernet", "train", "--space", "inas-tiny", "--data", str(tmp_path / "data"), "--out", str(run),
            "--steps", "6", "--batch-size", "2", "--resolutions", "64", "--threads", "1", "--save-every", "3",
            "--warmup-steps", "2", "--no-progress"]
    disk.fill(leave_bytes=8 << 20)  # room for one ~5.3 MB checkpoint, not for its successor beside it
    assert main(argv) == 2
    line = _one_error_line(capsys, "supernet")
    assert line == f"hwnas supernet: error: {run / 'supernet.pt'}: {FULL}; free space and rerun to resume", line
    assert load_checkpoint(run / "supernet.pt")["step"] == 3  # the last good checkpoint, intact
    _no_staging_left(disk.root)

    disk.make_room()
    assert main(argv) == 0
    capsys.readouterr()
    assert load_checkpoint(run / "supernet.pt")["step"] == 6
    summary = json.loads((run / "summary.json").read_text())
    assert summary["steps"] == 6
    _no_staging_left(disk.root)


def test_journal_append_on_a_full_disk_names_the_journal_and_the_torn_row_is_skipped(small_disk):
    import errno

    from deploy.fileio import Journal

    disk = small_disk("1m")
    path = disk.root / "j.jsonl"
    warnings: list[str] = []

    def journal():
        return Journal(path, {"run": 1}, required=("k",), lost="one row", on_warning=warnings.append)

    big = "x" * 3000
    with journal() as j:
        j.append({"k": 0, "pad": big})
        disk.fill(leave_bytes=0)
        with pytest.raises(OSError) as e:
            for k in range(1, 10):
                j.append({"k": k, "pad": big})  # the page in use has room for part of one more row
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(path)
    disk.make_room()
    with journal() as j:
        kept = [r["k"] for r in j.rows]
        j.append({"k": 99})
    assert kept == [0] or (kept[0] == 0 and len(kept) <= 2)
    assert all("line" in w and "one row lost" in w for w in warnings)
    assert [r["k"] for r in journal().read()] == kept + [99]


@pytest.mark.slow  # 7-70 s depending on the load: two tiny searches
def test_search_on_a_full_disk_says_so_and_resumes_from_its_cache(small_disk, tmp_path, capsys):
    import re

    import torch

    from hwnas.checkpoint import save_checkpoint, space_record
    from hwnas.data.synth import write_synthetic
    from hwnas.space import create
    from hwnas.supernet import Supernet
    from lut.table import LatencyTable

    torch.manual_seed(0)
    space = create("inas-tiny")
    keys = sorted({b.key for b in space.all_blocks([64])})
    rows = [{"key": k, "kind": k.split()[0], "median_ms": 0.001 * (1 + len(k) + sum(map(ord, k)) % 97)} for k in keys]
    lut = LatencyTable(rows, {"space": {"name": space.name, "hash": space.hash}, "resolutions": [64],
                              "backend": {"name": "synthetic"}}).write(tmp_path / "tiny.parquet")
    ckpt = save_checkpoint({"space": space_record(space), "model": Supernet(space).state_dict()}, tmp_path / "sn.pt")
    write_synthetic(tmp_path / "data", 24, seed=0, size=64, val_fraction=0.25)
    disk = small_disk("1m")
    run = disk.root / "run"
    argv = ["search", "--space", "inas-tiny", "--supernet", str(ckpt), "--lut", str(lut), "--data",
            str(tmp_path / "data" / "val"), "--calib", str(tmp_path / "data" / "train"), "--out", str(run), "--quiet",
            "--population", "8", "--groups", "2", "--keep", "4", "--iterations", "1", "--workers", "1",
            "--val-images", "4", "--calib-batches", "1", "--batch-size", "4"]
    disk.fill(leave_bytes=10_000)  # room for the cache journal, not for everything a search writes
    assert main(argv) == 2
    line = _one_error_line(capsys, "search")
    assert line.startswith(f"hwnas search: error: {run}/") and line.endswith(f": {FULL}; free space and rerun to resume")
    _no_staging_left(disk.root)

    disk.make_room()
    assert main(argv) == 0
    err = capsys.readouterr().err
    computed = int(re.search(r"12 candidates evaluated \((\d+) computed by this run", err).group(1))
    assert computed < 12  # what the failed run evaluated came back from its cache
    assert len((run / "population.csv").read_text().splitlines()) == 1 + 12
