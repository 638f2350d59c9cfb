"""`hwnas lut build` with another ``settle_ms`` than the default build's: the A/B arm of a settle comparison.

Everything else is the default build (``hwnas.cli.lut.BUILD_PROTOCOL``); the table records the protocol it
was built with, so it never mixes with a default table. Validate it like any other (``bench/lut_accuracy.py``).

    python bench/lut_build_settle.py --settle-ms 0.2 -- --space inas-tiny --backend executorch-xnnpack \
        --resolutions 64 -o runs/s35/tiny-xnn1-settle02.parquet
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settle-ms", type=float, required=True)
    ap.add_argument("build_args", nargs=argparse.REMAINDER, help="arguments of `hwnas lut build` (after --)")
    args = ap.parse_args(argv)
    import hwnas.cli.lut as lut_cli
    from hwnas.cli import main as hwnas_main

    lut_cli.BUILD_PROTOCOL["settle_ms"] = args.settle_ms
    rest = args.build_args[1:] if args.build_args[:1] == ["--"] else args.build_args
    return hwnas_main(["lut", "build", *rest])


if __name__ == "__main__":  # the build's export workers re-import this file: run only as a script
    raise SystemExit(main())
