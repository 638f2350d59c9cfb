"""The ``hwnas`` console script: one entry point, one module per subcommand group.

Each ``hwnas/cli/<group>.py`` defines ``register(subparsers)``; heavy imports happen inside the
command functions so ``hwnas --help`` stays fast. A user's mistake (any of the packages' error
types), a refused command line (checked option types: ``hwnas/cli/argtypes.py``) and a file-system
error (``OSError``: path and cause) print one line and exit 2; anything else is a bug and keeps its
traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# order = order in --help
GROUPS = ["space", "data", "supernet", "eval", "baseline", "export", "profilers", "lut", "search", "cells", "quickstart"]


# the packages' user-error types (module, class): printed as one line, exit 2
USER_ERRORS = (("hwnas.errors", "HwnasError"), ("lut.errors", "LUTError"), ("profilers.errors", "ProfilerError"),
               ("deploy.errors", "ExportError"), ("deploy.fileio", "FileIOError"))


def _user_errors() -> tuple[type[BaseException], ...]:
    """The user-error types of the modules loaded so far: an error whose module was never imported
    cannot be in flight, and importing ``lut`` or ``deploy`` just to name their error would cost a
    torch import on every refusal."""
    return tuple(getattr(sys.modules[module], name) for module, name in USER_ERRORS if module in sys.modules)


class _Parser(argparse.ArgumentParser):
    """An argparse parser whose refusals are one line (the usage is one ``--help`` away)."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see {self.prog} --help)\n")


def _one_line(text: str) -> str:
    return " ".join(part.strip() for part in str(text).strip().splitlines() if part.strip())


def _os_error_line(e: OSError) -> str:
    """``PATH: cause`` for a file-system error (disk full, not a directory, permission, read-only)."""
    import errno

    from pathlib import Path

    cause = e.strerror or _one_line(str(e)) or type(e).__name__
    if e.errno in (errno.EEXIST, errno.ENOTDIR) and e.filename is not None:
        # e.g. --out under a regular file: name that file rather than the path that could not be made
        blocker = next((p for p in (Path(e.filename), *Path(e.filename).parents) if p.is_file()), None)
        if blocker is not None:
            wanted = f" (for {e.filename})" if str(blocker) != str(e.filename) else ""
            return f"{blocker}: is a file where a directory is needed{wanted}"
    if e.errno == errno.ENOSPC:
        cause = "no space left on device (the disk is full); free space and rerun to resume"
    elif e.errno == errno.EDQUOT:
        cause = "disk quota exceeded; free space and rerun to resume"
    paths = [str(p) for p in (e.filename, e.filename2) if p is not None]
    return f"{' -> '.join(paths)}: {cause}" if paths else cause


def _stdout_reader_gone() -> bool:
    """True when stdout is a pipe whose reader has closed it; stdout then points at /dev/null, so
    the interpreter's last flush does not fail a second time."""
    import os
    import select

    try:
        fd = sys.stdout.fileno()
        poller = select.poll()
        poller.register(fd, select.POLLOUT)
        gone = any(ev & select.POLLERR for _, ev in poller.poll(0))
        if gone:
            os.dup2(os.open(os.devnull, os.O_WRONLY), fd)
        return gone
    except (OSError, ValueError, AttributeError):  # no real file descriptor (captured output)
        return False


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="hwnas",
        description="Hardware-aware NAS for salient object detection: profile a device into a latency "
        "table, search a device-specific model, export it re-parameterized.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for group in GROUPS:
        try:
            module = importlib.import_module(f"hwnas.cli.{group}")
        except ModuleNotFoundError as e:
            if e.name == f"hwnas.cli.{group}":
                continue  # that group is not part of this build
            raise
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # a refused command line (one line, code 2) or --help (code 0)
        return e.code if isinstance(e.code, int) else 2
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
    except _user_errors() as e:
        print(f"hwnas {args.command}: error: {_one_line(e)}", file=sys.stderr)
        return 2
    except OSError as e:  # the machine refused a read or write: name the path and the cause
        if isinstance(e, BrokenPipeError) and _stdout_reader_gone():
            return 141  # the reader stopped early (`hwnas ... | head`): quiet, as shell tools (128 + SIGPIPE)
        print(f"hwnas {args.command}: error: {_os_error_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hwnas {args.command}: interrupted; finished work is kept and a rerun resumes", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
