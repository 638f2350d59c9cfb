"""LUT build journals: never a mixed table (two headers, other settings, concatenated journals),
damaged lines skipped with a warning, one writer per ``--out`` (real processes)."""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from deploy.fileio import IdentityError
from lut.build import build, journal_path, merge
from lut.table import LatencyTable
from test_lut import SPACE, ort, synthetic_blocks


def _lines(path):
    return path.read_text().splitlines()


def test_concatenated_journals_of_other_settings_are_refused_by_build_and_merge(tmp_path, capsys):
    blocks = synthetic_blocks()
    build(blocks, ort(threads=1), tmp_path / "a.parquet", SPACE, progress=False, limit=2)
    build(blocks, ort(threads=2), tmp_path / "b.parquet", SPACE, progress=False, limit=2)
    ja, jb = journal_path(tmp_path / "a.parquet"), journal_path(tmp_path / "b.parquet")
    mixed = tmp_path / "mixed.parquet"
    journal_path(mixed).write_text(ja.read_text() + jb.read_text())  # `cat a b > mixed`
    with pytest.raises(IdentityError, match=r"second header on line 4 .*threads: 1 vs 2"):
        build(blocks, ort(threads=1), mixed, SPACE, progress=False)
    with pytest.raises(IdentityError, match=r"mixed.parquet.journal.jsonl has a second header on line 4"):
        merge([ja, journal_path(mixed)], tmp_path / "m.parquet")
    assert not (tmp_path / "m.parquet").exists() and not mixed.exists()
    from hwnas.cli import main  # the CLI: one line, exit 2

    assert main(["lut", "merge", str(journal_path(mixed)), "--out", str(tmp_path / "m.parquet")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("hwnas lut: error: journal ") and "second header on line 4" in err[0]
    # two journals of other settings given to merge: refused naming both files and the field
    with pytest.raises(Exception, match=r"cannot merge .*b.parquet.journal.jsonl into .*a.parquet.journal.jsonl.*threads"):
        merge([ja, jb], tmp_path / "m.parquet")
    # even two headers of the same settings: two runs wrote into one journal
    same = tmp_path / "same.parquet"
    journal_path(same).write_text(ja.read_text() + ja.read_text())
    with pytest.raises(IdentityError, match="second header on line 4"):
        build(blocks, ort(threads=1), same, SPACE, progress=False)


def test_damaged_lines_anywhere_are_skipped_and_remeasured(tmp_path, capsys):
    blocks = synthetic_blocks()
    out = tmp_path / "t.parquet"
    build(blocks, ort(), out, SPACE, progress=False, limit=3)
    j = journal_path(out)
    lines = _lines(j)
    lost_key = json.loads(lines[2])["row"]["key"]
    lines[2] = lines[2][: len(lines[2]) // 2] + "\x00garbage"  # a damaged row in the middle
    j.write_text("\n".join(lines) + '\n{"row": {"key": "conv r16 c4')  # and a torn last line
    seen = []
    t = build(blocks, ort(), out, SPACE, progress=False, on_row=lambda r: seen.append(r["key"]))
    err = capsys.readouterr().err
    assert f"journal {j} line 3 is damaged" in err and f"journal {j} line 5 is damaged" in err
    assert err.count("one block measurement (a rerun of the build measures it again) lost") == 2
    assert lost_key in seen and len(seen) == len(blocks) - 2  # the damaged row was measured again
    assert sorted(t.keys) == sorted(b.key for b in blocks) and not j.exists()


def _cli_build(out, *extra):
    cmd = [sys.executable, "-m", "hwnas", "lut", "build", "--space", "inas-tiny", "--resolutions", "64", "--out", str(out),
           "--no-progress", "--runs", "3", "--min-time-s", "0.5", *extra]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


_HOLDER = """
import sys
from lut.build import _journal, journal_path
j = _journal(journal_path(sys.argv[1]), None).lock()  # what a running build holds
print("locked", flush=True)
sys.stdin.readline()
j.close()
"""


def test_a_build_is_refused_while_another_process_builds_the_same_out(tmp_path):
    from deploy.fileio import JournalLockedError

    out = tmp_path / "t.parquet"
    build(synthetic_blocks(), ort(), tmp_path / "part.parquet", SPACE, progress=False, limit=1)  # a journal to merge
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(JournalLockedError, match=rf"journal {journal_path(out)} is being written by pid {holder.pid} on host"):
            build(synthetic_blocks(), ort(), out, SPACE, progress=False)
        assert not journal_path(out).exists() and not out.exists()  # the refused build wrote nothing
        with pytest.raises(JournalLockedError, match=rf"pid {holder.pid}"):  # nor merged into
            merge([journal_path(tmp_path / "part.parquet")], out)
        assert not out.exists()
    finally:
        holder.communicate("\n", timeout=60)
    assert len(build(synthetic_blocks()[:2], ort(), out, SPACE, progress=False).keys) == 2  # free again


@pytest.mark.slow  # ~15-35 s: two real `hwnas lut build` processes
def test_two_concurrent_builds_on_one_out_one_proceeds_the_other_is_refused(tmp_path):
    out = tmp_path / "t.parquet"
    first = _cli_build(out, "--limit", "12")  # ~6 s of measuring
    j = journal_path(out)
    deadline = time.time() + 120
    while not (j.exists() and len(_lines(j)) >= 2):  # the first one holds the lock and has measured a block
        assert first.poll() is None, first.communicate()[1][-2000:]
        assert time.time() < deadline
        time.sleep(0.05)
    second = _cli_build(out, "--limit", "1")
    _, err2 = second.communicate(timeout=120)
    still_running = first.poll() is None
    _, err1 = first.communicate(timeout=300)
    assert still_running, "the first build ended before the second one started: the test proved nothing"
    errors = [line for line in err2.splitlines() if line.startswith("hwnas lut: error:")]
    assert second.returncode == 2 and len(errors) == 1 and "Traceback" not in err2, err2
    assert f"is being written by pid {first.pid} on host" in errors[0] and str(j) in errors[0]
    assert first.returncode == 0, err1
    rows = [json.loads(s) for s in _lines(j)]
    assert sum("header" in r for r in rows) == 1 and len(rows) == 13  # only the first build wrote
    assert not j.with_name(j.name + ".lock").exists()
    # afterwards the second one proceeds (resuming the first one's journal)
    again = _cli_build(out, "--limit", "1")
    assert again.wait(timeout=120) == 0 and len(_lines(j)) == 14
    assert not out.exists() or LatencyTable.read(out)  # a partial build writes no table
