"""The project's one I/O layer: crash-safe writes, journals, resume identity, one-line error texts.

``deploy`` is the bottom package, so ``profilers``, ``lut`` and ``hwnas`` all use this module
instead of writing their own version of any of these:

- ``atomic_write_bytes / atomic_write_text / atomic_write_json(path, ...)`` and the context manager
  ``atomic_path(path)`` (yields a temporary path beside ``path``, renamed over it on success; for
  writers that want a file name: ``torch.save``, pyarrow, exporters; directories work too). A killed
  or failed write leaves the old file or the new one, never half of one.
- ``writing_to(path)``: a context manager whose errors name ``path`` (a full disk reported by a
  toolchain in its own words becomes ``OSError(ENOSPC)``), for writers that stage files themselves.
- ``file_digest(path)``: sha256 hex of a file or a directory tree; ``path_size(path)``.
- ``first_line(exc)``: an exception's text as one line (never an ``IndexError`` on an empty message).
- ``check_identity(found, expected, what)``: refuse to resume work written with other settings,
  naming every differing field with both values.
- ``Journal``: an append-only JSON-lines file with one identity header, a writer lock and one policy
  for damaged lines (skipped with a warning that names the line and what is lost).
- Write errors surface as ``OSError`` with ``filename`` set to the file being written (the OS
  leaves it out for writes and fsyncs), so the CLI's one-line mapping (``hwnas/cli/__init__.py``)
  can name the path.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator


class FileIOError(Exception):
    """A file the user pointed at cannot be used as asked (the CLI prints it as one line, exit 2)."""


class IdentityError(FileIOError):
    """Work on disk was written with other settings than the command's; resuming would mix them."""


class JournalLockedError(FileIOError):
    """Another live process is writing this journal."""


def warn(message: str) -> None:
    """A warning for the user (stderr, one line): damaged journal lines, stale locks taken over."""
    print(f"warning: {message}", file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------- one-line texts
def first_line(exc: BaseException, with_type: bool = False) -> str:
    """The first non-empty line of ``str(exc)``; the type name when the message is empty.
    ``with_type`` prefixes ``TypeName: `` (for errors whose type says more than the message)."""
    lines = [s for s in str(exc).strip().splitlines() if s.strip()]
    text = lines[0].strip() if lines else ""
    if not text:
        return type(exc).__name__
    return f"{type(exc).__name__}: {text}" if with_type else text


def _with_path(exc: OSError, path: Path) -> OSError:
    """``exc`` with ``filename`` set to ``path`` when the OS left it out (writes and fsyncs do)."""
    if exc.filename is not None or exc.errno is None:
        return exc
    return type(exc)(exc.errno, exc.strerror or os.strerror(exc.errno), str(path))


def _raise_named(exc: OSError, path: Path):
    """Re-raise ``exc`` (from an ``except`` block) with ``path`` as its file name when it has none."""
    named = _with_path(exc, path)
    if named is exc:
        raise exc
    raise named from exc


def _disk_full(directory: Path) -> bool:
    """True when the file system holding ``directory`` has no space left for an ordinary user."""
    try:
        st = os.statvfs(directory)
    except OSError:
        return False
    return st.f_bavail * st.f_frsize < 64 * 1024


@contextlib.contextmanager
def writing_to(path: str | Path) -> Iterator[None]:
    """Errors of a block that writes ``path`` (or files beside it) name ``path``: an ``OSError``
    without a file name gets it, and any other error raised while the disk is full becomes
    ``OSError(ENOSPC)`` (toolchains report a full disk in their own words, e.g. torch's
    "unexpected pos"), so the CLI can say "disk full" and where."""
    path = Path(path)
    try:
        yield
    except OSError as e:
        _raise_named(e, path)
    except Exception as e:
        if _disk_full(path.parent if path.parent.exists() else Path(".")):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path)) from e
        raise


# ----------------------------------------------------------------------------------- atomic writes
_UMASK: int | None = None


def _file_mode() -> int:
    """The mode an ordinary ``open(..., "w")`` would give (mkstemp makes 0600; artifacts are shared)."""
    global _UMASK
    if _UMASK is None:
        _UMASK = os.umask(0)
        os.umask(_UMASK)
    return 0o666 & ~_UMASK


def _fsync_dir(directory: Path) -> None:
    try:  # the rename itself survives a power loss only once its directory is synced
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path, durable: bool = True) -> Iterator[Path]:
    """Yield a temporary path beside ``path`` (same file name, in a hidden staging folder); when the
    block ends without an exception, the staged file (or directory) is renamed over ``path``.

    On an exception nothing at ``path`` changes and the staging folder is removed. A writer that
    fails with a non-``OSError`` on a full disk (``torch.save`` raises ``RuntimeError``) is reported
    as ``OSError(ENOSPC)`` naming ``path``, so the CLI can say "disk full" instead of a traceback.
    ``durable=False`` skips the fsyncs (still safe against a killed process, not against a power
    loss): for many small files that can be regenerated, e.g. a synthetic data set.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        stage = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as e:  # name the file the user asked for, not the staging folder
        raise type(e)(e.errno, e.strerror or os.strerror(e.errno or 0), str(path)) from e
    staged = stage / path.name
    try:
        with writing_to(path):
            yield staged
        if not staged.exists():
            raise FileNotFoundError(errno.ENOENT, "the writer did not create the staged file", str(staged))
        try:
            if staged.is_dir():
                if path.is_dir():  # a directory cannot be renamed over a non-empty one: move the old aside
                    os.replace(path, stage / (path.name + ".old"))
            else:
                os.chmod(staged, _file_mode())
                if durable:
                    with open(staged, "rb") as f:
                        os.fsync(f.fileno())
            os.replace(staged, path)
            if durable:
                _fsync_dir(path.parent)
        except OSError as e:
            _raise_named(e, path)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` crash-safely (temporary file beside it, fsync, rename)."""
    path = Path(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | Path, obj: Any, *, indent: int | None = 2, sort_keys: bool = False) -> Path:
    """JSON with a trailing newline; paths and other odd values as ``str``."""
    return atomic_write_text(path, json.dumps(obj, indent=indent, sort_keys=sort_keys, default=str) + "\n")


# --------------------------------------------------------------------------------------- digests
def _hash_file(path: Path, h) -> None:
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)


def file_digest(path: str | Path) -> str:
    """sha256 hex of a file; of a directory (``.mlpackage``): its files' relative paths and contents
    in sorted order, so the digest is stable across machines."""
    path = Path(path)
    h = hashlib.sha256()
    if path.is_dir():
        for f in sorted(p for p in path.rglob("*") if p.is_file()):
            rel = f.relative_to(path).as_posix().encode()
            h.update(len(rel).to_bytes(8, "little") + rel)
            _hash_file(f, h)
    else:
        _hash_file(path, h)
    return h.hexdigest()


def path_size(path: str | Path) -> int:
    """Bytes of a file, or of all files under a directory."""
    path = Path(path)
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    return path.stat().st_size


# -------------------------------------------------------------------------------------- identity
def _flatten(d: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(d, dict) and d:
        out: dict[str, Any] = {}
        for k, v in d.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    return {prefix: d}


_MISSING = "<missing>"


def identity_differences(found: dict, expected: dict) -> list[str]:
    """``field: found vs expected`` for every differing (dotted, nested) field, sorted."""
    a, b = _flatten(found or {}), _flatten(expected or {})
    return [f"{k}: {a.get(k, _MISSING)!r} vs {b.get(k, _MISSING)!r}"
            for k in sorted(set(a) | set(b)) if a.get(k, _MISSING) != b.get(k, _MISSING)]


def check_identity(found: dict, expected: dict, what: str) -> None:
    """Raise ``IdentityError`` unless ``found`` (on disk) equals ``expected`` (this command's
    settings); the message names every differing field with both values (found vs expected)."""
    diff = identity_differences(found, expected)
    if diff:
        raise IdentityError(f"{what} was written with other settings ({'; '.join(diff)}; found vs this "
                            "command's); use the same settings to resume, or another output path")


# --------------------------------------------------------------------------------------- journals
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


class _Lock:
    """An exclusive writer lock: ``<path>`` holds ``{"pid", "host"}`` of the owner, and the owner
    holds ``flock`` on it (the kernel drops it when the owner dies, even by ``kill -9``, so a lock
    left behind is recognised as stale without trusting the pid alone)."""

    def __init__(self, path: Path, what: str):
        self.path, self.what, self.fd = path, what, None

    def acquire(self) -> None:
        import fcntl

        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, _file_mode())
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = self._read(fd)
                os.close(fd)
                who = f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')}" if holder else "another process"
                raise JournalLockedError(f"{self.what} is being written by {who} (lock {self.path}); "
                                         "wait for it to finish or use another output path") from None
            except BaseException:
                os.close(fd)
                raise
            # the previous owner may have unlinked the file between our open and flock: retry on the new one
            try:
                same = os.fstat(fd).st_ino == os.stat(self.path).st_ino
            except FileNotFoundError:
                same = False
            if not same:
                os.close(fd)
                continue
            break
        old = self._read(fd)
        me = {"pid": os.getpid(), "host": socket.gethostname()}
        if old and old.get("pid") is not None:
            if old.get("host") == me["host"] and isinstance(old.get("pid"), int) and _pid_alive(old["pid"]) \
                    and old["pid"] != me["pid"]:
                note = "its pid is alive but no longer holds the lock"
            else:
                note = "that process is gone"
            warn(f"taking over the stale lock {self.path} of pid {old.get('pid')} on host {old.get('host')} ({note})")
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(me) + "\n").encode(), 0)
            os.fsync(fd)
        except OSError as e:
            os.close(fd)
            _raise_named(e, self.path)
        self.fd = fd

    @staticmethod
    def _read(fd: int) -> dict:
        try:
            raw = os.pread(fd, 4096, 0)
            obj = json.loads(raw.decode() or "{}")
            return obj if isinstance(obj, dict) else {}
        except (OSError, ValueError):
            return {}

    def release(self) -> None:
        if self.fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)  # while still holding it: a waiter re-checks the inode
        except OSError:
            pass
        os.close(self.fd)  # releases the flock
        self.fd = None


class Journal:
    """An append-only JSON-lines file: one identity header line, then one JSON object per row.

    - The header is ``{header_key: identity}``. Opening checks it against this command's
      ``identity`` (``problem(found, expected) -> str | None``, default: every field must be equal)
      and refuses (``IdentityError``) a different one or a second header line, naming the fields.
    - A writer (``with Journal(...) as j``) holds ``<path>.lock`` (pid and host inside); a second
      writer is refused naming the holder, a lock left by a dead process is taken over with a warning.
    - ``append(row)`` writes one line, flushed and fsynced, so a ``kill -9`` loses at most the
      row in flight. A write error (disk full) raises ``OSError`` naming the journal.
    - A torn or garbage line anywhere (not JSON, not an object, missing a ``required`` key) is
      skipped with a warning naming its line number and ``lost`` (what that line held), never a crash.
      Rows before the header, or rows with no header at all, are refused: their settings are unknown.

    ``read()`` / ``Journal.rows`` give the rows (header excluded) without taking the lock, so a
    reader can look at a journal another process is writing. ``identity=None`` inspects a journal
    without comparing its header (``Journal.header`` is what it was written with, ``None`` for a
    journal from before headers existed); a second header or rows before the header are still refused.
    ``required`` names keys every row has; ``check(row)`` returns why a row is unusable (or None).
    """

    def __init__(self, path: str | Path, identity: dict | None, *, what: str | None = None, header_key: str = "header",
                 problem: Callable[[dict, dict], str | None] | None = None, required: tuple[str, ...] = (),
                 check: Callable[[dict], str | None] | None = None, lost: str = "one row",
                 on_warning: Callable[[str], None] = warn):
        self.path = Path(path)
        self.identity = identity
        self.what = what or f"journal {self.path}"
        self.header_key = header_key
        self.problem = problem
        self.required = tuple(required)
        self.check = check
        self.lost = lost
        self.on_warning = on_warning
        self.header: dict | None = None
        self.rows: list[dict] = []
        self._lock = _Lock(self.path.with_name(self.path.name + ".lock"), self.what)
        self._fd: int | None = None
        self._writable = False

    # -------------------------------------------------------------------------------- reading
    def read(self) -> list[dict]:
        """Rows of the journal (empty when it does not exist), after checking its header."""
        self.header, self.rows, _ = self._parse()
        return self.rows

    def peek_header(self) -> dict | None:
        """The identity the journal was written with (``None`` when it has none, or is unreadable as
        one), read without checking it and without warning about damaged rows: ``read``/``open``
        check and warn, once."""
        quiet = Journal(self.path, None, what=self.what, header_key=self.header_key, on_warning=lambda _m: None)
        try:
            return quiet._parse()[0]
        except IdentityError:
            return None

    def _parse(self) -> tuple[dict | None, list[dict], bool]:
        """(header, rows, ends_with_newline); warns for damaged lines, refuses mixed identities."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None, [], True
        header, header_line, rows = None, 0, []
        lines = data.split(b"\n")
        complete = lines[-1] == b""
        if complete:
            lines = lines[:-1]
        for n, raw in enumerate(lines, start=1):
            if not raw.strip():
                continue
            torn = n == len(lines) and not complete
            try:
                obj = json.loads(raw.decode())
            except (UnicodeDecodeError, ValueError):
                obj = None
            if not isinstance(obj, dict):
                self._damaged(n, raw, "cut off by a kill or a full disk" if torn else "not a JSON object")
                continue
            if self.header_key in obj:
                if rows and header is None:
                    raise IdentityError(f"{self.what} has rows before its header on line {n}; the settings they "
                                        "were written with are unknown. Delete it or use another output path")
                if header is not None:
                    diff = self._difference(header, obj[self.header_key])
                    raise IdentityError(
                        f"{self.what} has a second header on line {n} (the first is on line {header_line})"
                        + (f" with other settings: {diff}" if diff else "")
                        + ": two runs wrote into it; their rows cannot be told apart. Delete it or use another output path")
                header, header_line = obj[self.header_key], n
                if not isinstance(header, dict):
                    raise IdentityError(f"{self.what}: the header on line {n} is not an object")
                diff = self._difference(header, self.identity) if self.identity is not None else None
                if diff:
                    raise IdentityError(f"{self.what} was written with other settings ({diff}; found vs this "
                                        "command's); use the same settings to resume, or another output path")
                continue
            missing = [k for k in self.required if k not in obj]
            why = f"no {', '.join(missing)}" if missing else (self.check(obj) if self.check else None)
            if why:
                self._damaged(n, raw, why)
                continue
            if header_line == 0 and self.identity is not None:
                raise IdentityError(f"{self.what} has a row on line {n} before any header line; the settings it was "
                                    "written with are unknown. Delete it or use another output path")
            rows.append(obj)
        return header, rows, complete

    def _difference(self, found: dict, expected: dict) -> str | None:
        if self.problem is not None:
            return self.problem(found, expected)
        diff = identity_differences(found, expected)
        return "; ".join(diff) if diff else None

    def _damaged(self, n: int, raw: bytes, why: str) -> None:
        shown = raw[:60].decode(errors="replace")
        self.on_warning(f"{self.what} line {n} is damaged ({why}: {shown!r}{'...' if len(raw) > 60 else ''}, "
                        f"{len(raw)} bytes); skipped: {self.lost} lost")

    # -------------------------------------------------------------------------------- writing
    def __enter__(self) -> Journal:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def lock(self) -> Journal:
        """Take the writer lock only (``open`` takes it too): for a command that must hold it
        before it knows its identity, e.g. while it reads the artifact the journal will extend."""
        if self._lock.fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._lock.acquire()
        return self

    def open(self) -> Journal:
        """Take the lock (unless held), read and check the journal, and make it ready for appends
        (the header is written with the first row, from ``identity`` as it is then)."""
        if self.identity is None:
            raise ValueError("a journal opened for writing needs the identity of the command's settings")
        self.lock()
        try:
            self.header, self.rows, complete = self._parse()
            self._writable = True
            if self.header is None and not self.rows and self.path.exists() and self.path.stat().st_size:
                self._write(b"", truncate=True)  # only damaged lines and no header: nothing worth keeping
            elif not complete:
                self._write(b"\n")  # the torn line stays (skipped when read); appends start a fresh line
        except BaseException:
            self.close()
            raise
        return self

    def append(self, row: dict) -> None:
        """One row, on disk (fsynced) when this returns."""
        if not self._writable:
            raise RuntimeError(f"{self.what} is not open for writing")
        if self.header is None:  # written with the first row: a journal never holds just a header
            self._write_line({self.header_key: self.identity})
            self.header = self.identity
        self._write_line(row)
        self.rows.append(row)

    def _write_line(self, obj: dict) -> None:
        self._write((json.dumps(obj, sort_keys=True) + "\n").encode())

    def _write(self, data: bytes, truncate: bool = False) -> None:
        try:  # the file is created by the first write: opening a journal and writing nothing leaves none
            if self._fd is None:
                self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, _file_mode())
            if truncate:
                os.ftruncate(self._fd, 0)
            view = memoryview(data)
            while view:
                view = view[os.write(self._fd, view):]
            os.fsync(self._fd)
        except OSError as e:
            _raise_named(e, self.path)

    def close(self) -> None:
        self._writable = False
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        self._lock.release()

    def remove(self) -> None:
        """Delete the journal (its rows are in a finished artifact now); keeps the lock until close."""
        self.path.unlink(missing_ok=True)
