"""deploy.fileio: atomic writes, digests, one-line errors, identity checks and the Journal."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap

import pytest

from deploy.fileio import (
    IdentityError,
    Journal,
    JournalLockedError,
    atomic_path,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    check_identity,
    file_digest,
    first_line,
    path_size,
)


def _leftovers(d):
    return sorted(p.name for p in d.iterdir() if p.name.startswith("."))


# ----------------------------------------------------------------------------- atomic writes
def test_atomic_writes_replace_and_leave_nothing_behind(tmp_path):
    p = tmp_path / "sub" / "a.json"
    atomic_write_json(p, {"x": 1})
    assert json.loads(p.read_text()) == {"x": 1}
    atomic_write_text(p, "two")
    assert p.read_text() == "two"
    atomic_write_bytes(p, b"\x00\x01")
    assert p.read_bytes() == b"\x00\x01"
    umask = os.umask(0)
    os.umask(umask)
    assert p.stat().st_mode & 0o777 == 0o666 & ~umask  # not mkstemp's 0600
    assert _leftovers(p.parent) == []


def test_atomic_path_keeps_old_file_on_failure(tmp_path):
    p = tmp_path / "model.pt"
    p.write_text("old")
    with pytest.raises(ValueError):
        with atomic_path(p) as tmp:
            assert tmp.parent.parent == tmp_path and tmp.name == "model.pt"
            tmp.write_text("half")
            raise ValueError("writer failed")
    assert p.read_text() == "old"
    assert _leftovers(tmp_path) == []


def test_atomic_path_replaces_a_directory(tmp_path):
    p = tmp_path / "m.mlpackage"
    (p / "old").mkdir(parents=True)
    with atomic_path(p) as tmp:
        (tmp / "data").mkdir(parents=True)
        (tmp / "data" / "w.bin").write_bytes(b"new")
    assert (p / "data" / "w.bin").read_bytes() == b"new" and not (p / "old").exists()
    assert _leftovers(tmp_path) == []


def test_atomic_path_refuses_when_the_writer_wrote_nothing(tmp_path):
    with pytest.raises(FileNotFoundError):
        with atomic_path(tmp_path / "x.bin"):
            pass
    assert not (tmp_path / "x.bin").exists()


def test_atomic_write_errors_name_the_target(tmp_path):
    with pytest.raises(OSError) as e:
        atomic_write_text("/proc/hwnas-test.json", "x")  # no files can be made in /proc
    assert e.value.filename == "/proc/hwnas-test.json"
    (tmp_path / "file").write_text("")
    with pytest.raises(OSError) as e:
        atomic_write_text(tmp_path / "file" / "x.json", "x")  # a file where a directory should be
    assert e.value.filename == str(tmp_path / "file")


# ----------------------------------------------------------------------------- digests, texts
def test_file_digest_of_file_and_directory(tmp_path):
    f = tmp_path / "a.bin"
    f.write_bytes(b"hello")
    assert file_digest(f) == hashlib.sha256(b"hello").hexdigest()
    d = tmp_path / "pkg"
    (d / "sub").mkdir(parents=True)
    (d / "sub" / "w").write_bytes(b"abc")
    (d / "m").write_bytes(b"de")
    first = file_digest(d)
    assert path_size(d) == 5
    (d / "m").write_bytes(b"dE")
    assert file_digest(d) != first and len(first) == 64


def test_first_line_never_raises_on_empty_messages():
    assert first_line(RuntimeError("")) == "RuntimeError"
    assert first_line(RuntimeError("  \n \n")) == "RuntimeError"
    assert first_line(ValueError("\n  bad thing \nmore")) == "bad thing"
    assert first_line(KeyError("k"), with_type=True) == "KeyError: 'k'"
    assert first_line(OSError(), with_type=True) == "OSError"


def test_check_identity_names_every_differing_field():
    check_identity({"a": 1, "b": {"c": 2}}, {"a": 1, "b": {"c": 2}}, "run")
    with pytest.raises(IdentityError) as e:
        check_identity({"a": 1, "b": {"c": 2}, "d": 0}, {"a": 2, "b": {"c": 3}}, "search state x")
    msg = str(e.value)
    assert "search state x" in msg and "a: 1 vs 2" in msg and "b.c: 2 vs 3" in msg and "d: 0 vs '<missing>'" in msg
    assert "\n" not in msg


# ------------------------------------------------------------------------------------ journal
ID = {"space": "tiny", "threads": 1}


def _journal(path, identity=ID, warnings=None, **kw):
    return Journal(path, identity, what=f"journal {path.name}", required=("k",), lost="one measurement",
                   on_warning=(warnings.append if warnings is not None else print), **kw)


def test_journal_round_trip_and_one_header(tmp_path):
    p = tmp_path / "j.jsonl"
    with _journal(p) as j:
        j.append({"k": 1})
        assert (tmp_path / "j.jsonl.lock").is_file()
    assert not (tmp_path / "j.jsonl.lock").exists()
    with _journal(p) as j:
        assert j.rows == [{"k": 1}]
        j.append({"k": 2})
    lines = p.read_text().splitlines()
    assert len(lines) == 3 and sum("header" in json.loads(s) for s in lines) == 1
    assert _journal(p).read() == [{"k": 1}, {"k": 2}]


def test_journal_refuses_other_settings_naming_the_fields(tmp_path):
    p = tmp_path / "j.jsonl"
    with _journal(p) as j:
        j.append({"k": 1})
    with pytest.raises(IdentityError, match=r"threads: 1 vs 2"):
        _journal(p, {"space": "tiny", "threads": 2}).open()
    assert not (tmp_path / "j.jsonl.lock").exists()  # a refused open leaves no lock


def test_journal_refuses_a_second_header(tmp_path):
    p = tmp_path / "j.jsonl"
    p.write_text(json.dumps({"header": ID}) + "\n" + '{"k": 1}\n' + json.dumps({"header": dict(ID, threads=2)})
                 + "\n" + '{"k": 1}\n')
    with pytest.raises(IdentityError, match=r"second header on line 3.*threads: 1 vs 2"):
        _journal(p).read()
    p.write_text(2 * (json.dumps({"header": ID}) + "\n"))  # even an identical one: two runs wrote here
    with pytest.raises(IdentityError, match="second header on line 2"):
        _journal(p).read()


def test_journal_refuses_rows_without_a_header(tmp_path):
    p = tmp_path / "j.jsonl"
    p.write_text('{"k": 1}\n' + json.dumps({"header": ID}) + "\n")
    with pytest.raises(IdentityError, match="row on line 1 before any header"):
        _journal(p).read()
    p.write_text('{"header": {"spa\n{"k": 1}\n')  # a torn header: the rows' settings are unknown
    with pytest.raises(IdentityError, match="row on line 2 before any header"):
        _journal(p, warnings=[]).read()


def test_journal_skips_damaged_lines_anywhere_with_a_warning(tmp_path):
    p = tmp_path / "j.jsonl"
    p.write_text(json.dumps({"header": ID}) + '\n{"k": 1}\ngarbage\x00\n[1, 2]\n{"no_k": 1}\n{"k": 2}\n{"k": 3, "x": "tor')
    warnings = []
    with _journal(p, warnings=warnings) as j:
        assert [r["k"] for r in j.rows] == [1, 2]
        j.append({"k": 4})
    assert [w.split(" is damaged")[0] for w in warnings] == [f"journal j.jsonl line {n}" for n in (3, 4, 5, 7)]
    assert all("one measurement lost" in w for w in warnings)
    assert "cut off" in warnings[-1] and "no k" in warnings[2]
    warnings.clear()
    assert [r["k"] for r in _journal(p, warnings=warnings).read()] == [1, 2, 4]  # the append began a fresh line
    assert len(warnings) == 4


def test_journal_peek_header_reads_the_identity_silently_without_checking_it(tmp_path):
    p = tmp_path / "j.jsonl"
    warnings = []
    assert _journal(p, warnings=warnings).peek_header() is None  # no journal yet
    p.write_text(json.dumps({"header": ID}) + '\n{"k": 1}\ngarbage\n')
    other = _journal(p, {"space": "tiny", "threads": 2}, warnings=warnings)
    assert other.peek_header() == ID and warnings == []  # another identity is not refused, damage not reported
    p.write_text(2 * (json.dumps({"header": ID}) + "\n"))
    assert _journal(p).peek_header() is None  # two headers: read()/open() refuse it, with the reason


def test_journal_with_only_a_torn_header_starts_over(tmp_path):
    p = tmp_path / "j.jsonl"
    p.write_text('{"header": {"spa')
    warnings = []
    with _journal(p, warnings=warnings) as j:
        j.append({"k": 1})
    assert len(warnings) == 1
    assert p.read_text().splitlines()[0] == json.dumps({"header": ID}, sort_keys=True)


_HOLDER = textwrap.dedent("""
    import sys, time
    from deploy.fileio import Journal
    with Journal(sys.argv[1], {"space": "tiny", "threads": 1}) as j:
        print("locked", flush=True)
        sys.stdin.readline()
""")


def test_journal_second_writer_is_refused_naming_the_holder(tmp_path):
    p = tmp_path / "j.jsonl"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(p)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(JournalLockedError, match=rf"pid {holder.pid} on host"):
            _journal(p).open()
        assert _journal(p).read() == []  # reading needs no lock
    finally:
        holder.communicate("\n", timeout=30)
    with _journal(p) as j:  # released on exit
        j.append({"k": 1})


def test_journal_takes_over_a_stale_lock(tmp_path):
    p = tmp_path / "j.jsonl"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = int(dead.stdout)
    (tmp_path / "j.jsonl.lock").write_text(json.dumps({"pid": pid, "host": os.uname().nodename}))
    warnings = []
    import deploy.fileio as fio

    orig = fio.warn
    fio.warn = warnings.append
    try:
        with _journal(p) as j:
            j.append({"k": 1})
    finally:
        fio.warn = orig
    assert len(warnings) == 1 and "stale lock" in warnings[0] and f"pid {pid}" in warnings[0]


def test_journal_killed_writer_leaves_a_stale_lock_that_is_taken_over(tmp_path):
    p = tmp_path / "j.jsonl"
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(p)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True)
    assert holder.stdout.readline().strip() == "locked"
    holder.kill()
    holder.wait(timeout=30)
    assert (tmp_path / "j.jsonl.lock").exists()
    with _journal(p) as j:
        j.append({"k": 1})
    assert _journal(p).read() == [{"k": 1}]
