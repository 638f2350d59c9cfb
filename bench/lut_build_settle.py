"""`hwnas lut build` with one setting other than the default build's: the A/B arm of a comparison.

``--settle-ms``: another ``Protocol.settle_ms`` (``hwnas.cli.lut.BUILD_PROTOCOL``); ``--context-after-model-run
yes|no``: the blocks' context runs follow an untimed run of the space's smallest model wherever the cache plan
allows one (the model stays cached and is cheap to run: ``hwnas.cli.lut._cold_context_plan``), or never (warm),
whatever the runtime and the core's private cache would decide.
Everything else is the default build; the table records its protocol and latency-model kind, so it never
mixes with a default table. Validate it like any other (``bench/lut_accuracy.py``).

    python bench/lut_build_settle.py --settle-ms 0.2 -- --space inas-tiny --backend executorch-xnnpack \
        --resolutions 64 -o runs/s35/tiny-xnn1-settle02.parquet
    python bench/lut_build_settle.py --context-after-model-run yes -- --space inas-tiny \
        --backend onnxruntime-cpu --resolutions 64 -o runs/s47/tiny-ort1-between.parquet
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settle-ms", type=float, default=None)
    ap.add_argument("--context-after-model-run", choices=("yes", "no"), default=None)
    ap.add_argument("build_args", nargs=argparse.REMAINDER, help="arguments of `hwnas lut build` (after --)")
    args = ap.parse_args(argv)
    import hwnas.cli.lut as lut_cli
    from hwnas.cli import main as hwnas_main

    if args.settle_ms is not None:
        lut_cli.BUILD_PROTOCOL["settle_ms"] = args.settle_ms
    if args.context_after_model_run is not None:
        plan, forced = lut_cli._cold_context_plan, args.context_after_model_run == "yes"

        def forced_plan(space, res, retained=None, profiler=None, private=None):
            # a private cache of 0 bytes: every model outgrows it (a model run wherever one is cheap
            # and the model stays cached); of 2**62: none does, and no runtime asks (warm)
            return plan(space, res, retained, None, 0 if forced else 1 << 62)

        lut_cli._cold_context_plan = forced_plan
    rest = args.build_args[1:] if args.build_args[:1] == ["--"] else args.build_args
    return hwnas_main(["lut", "build", *rest])


if __name__ == "__main__":  # the build's export workers re-import this file: run only as a script
    raise SystemExit(main())
