"""The ``hwnas`` console script: one entry point, one module per subcommand group.

Each ``hwnas/cli/<group>.py`` defines ``register(subparsers)``; heavy imports happen inside the
command functions so ``hwnas --help`` stays fast. A user's mistake (any of the packages' error
types) prints one line and exits 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# order = order in --help
GROUPS = ["space", "data", "supernet", "eval", "baseline", "export", "profilers", "lut", "search", "cells", "quickstart"]


def _user_errors() -> tuple[type[BaseException], ...]:
    from deploy.errors import ExportError
    from deploy.fileio import FileIOError
    from hwnas.errors import HwnasError
    from lut.errors import LUTError
    from profilers.errors import ProfilerError

    return (HwnasError, LUTError, ProfilerError, ExportError, FileIOError)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
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
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        rc = args.func(args)
    except _user_errors() as e:
        print(f"hwnas {args.command}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # disk full, not a directory, permission: the one mapping is deploy.fileio.os_error_line
        from deploy.fileio import os_error_line

        print(f"hwnas {args.command}: error: {os_error_line(e)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hwnas {args.command}: interrupted; finished work is kept and a rerun resumes", file=sys.stderr)
        return 130
    return int(rc or 0)


if __name__ == "__main__":
    sys.exit(main())
