"""Drift: does a table built while the machine is busy predict what one built on an idle machine does?

Builds the same table twice with the default settings of ``hwnas lut build`` — once as the machine
is, once with a competing process spinning (a busy loop, pinned to the last core where the OS lets
us) — then predicts sampled architectures with both and compares: the tables' predictions (call
overhead + context costs, drift-compensated by the interleaved reference) and, for contrast, their
plain sums of isolated medians.

    python bench/lut_drift.py --space inas-tiny --resolution 64 --archs 30
    → bench/results/lut_drift_<space>_s<seed>.json and .md

Goal (issue: latency tables): the predictions of 30 archs agree within 2 %.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
SPIN = "import time\nt = time.time()\nwhile time.time() - t < 3600: pass\n"


def _build(space: str, resolution: int, out: Path, threads: int, context_after_model_run: str | None = None) -> float:
    t0 = time.perf_counter()
    # the default build, or its A/B arm with the context runs' cache state forced (bench/lut_build_settle.py)
    head = ([sys.executable, "-m", "hwnas", "lut", "build"] if context_after_model_run is None else
            [sys.executable, str(Path(__file__).resolve().parent / "lut_build_settle.py"),
             "--context-after-model-run", context_after_model_run, "--"])
    subprocess.run([*head, "--space", space, "--backend", "onnxruntime-cpu", "--threads", str(threads),
                    "--resolutions", str(resolution), "--out", str(out), "--no-progress"], check=True)
    return time.perf_counter() - t0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="inas-tiny")
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--archs", type=int, default=30)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", default=None, help="folder for the two tables (default: a temporary one)")
    ap.add_argument("--context-after-model-run", choices=("yes", "no"), default=None,
                    help="build both tables with the context runs' cache state forced (bench/lut_build_settle.py)")
    args = ap.parse_args(argv)

    import tempfile

    import numpy as np

    from hwnas.space import create
    from lut.table import LatencyTable

    work = Path(args.work or tempfile.mkdtemp(prefix="hwnas-drift-"))
    work.mkdir(parents=True, exist_ok=True)
    quiet, busy = work / "quiet.parquet", work / "busy.parquet"
    load = {"before": os.getloadavg()}
    secs = {"quiet": _build(args.space, args.resolution, quiet, args.threads, args.context_after_model_run)}
    spinner = subprocess.Popen([sys.executable, "-c", SPIN])
    try:
        if hasattr(os, "sched_setaffinity") and (os.cpu_count() or 1) > 1:
            os.sched_setaffinity(spinner.pid, {os.cpu_count() - 1})
        load["spinner_started"] = os.getloadavg()
        secs["busy"] = _build(args.space, args.resolution, busy, args.threads, args.context_after_model_run)
        load["busy_build_done"] = os.getloadavg()
    finally:
        spinner.kill()
        spinner.wait()

    space = create(args.space)
    a, b = LatencyTable.read(quiet), LatencyTable.read(busy)
    rng = random.Random(args.seed)
    rows = []
    for _ in range(args.archs):
        keys = [blk.key for blk in space.blocks(space.sample(rng, resolution=args.resolution))]
        rows.append({"model_quiet_ms": a.model_ms(keys), "model_busy_ms": b.model_ms(keys),
                     "raw_quiet_ms": a.raw_sum_ms(keys), "raw_busy_ms": b.raw_sum_ms(keys)})

    def rel(x, y):
        d = np.abs(np.array(x) / np.array(y) - 1) * 100
        return {"median_pct": float(np.median(d)), "max_pct": float(d.max()), "mean_signed_pct": float(np.mean(np.array(x) / np.array(y) - 1) * 100)}

    med_a = a.rows.set_index("key")["median_ms"]
    med_b = b.rows.set_index("key")["median_ms"].reindex(med_a.index)
    result = {
        "space": args.space, "resolution": args.resolution, "archs": args.archs, "build_s": secs, "load": load,
        "device": a.device.get("cpu_model"), "reference_ms": {"quiet": a.reference_ms, "busy": b.reference_ms},
        "reference_plain_median_ms": {"quiet": float(a.rows["ref_ms"].median()), "busy": float(b.rows["ref_ms"].median())},
        "seed": args.seed,
        "prediction_busy_vs_quiet": rel([r["model_busy_ms"] for r in rows], [r["model_quiet_ms"] for r in rows]),
        "plain_sum_busy_vs_quiet": rel([r["raw_busy_ms"] for r in rows], [r["raw_quiet_ms"] for r in rows]),
        "block_medians_busy_vs_quiet": rel(med_b.to_numpy(), med_a.to_numpy()),
        "models": rows,
    }
    RESULTS.mkdir(exist_ok=True)
    name = f"lut_drift_{args.space}_s{args.seed}" + (f"_between-{args.context_after_model_run}" if args.context_after_model_run else "")
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    p, s, m = result["prediction_busy_vs_quiet"], result["plain_sum_busy_vs_quiet"], result["block_medians_busy_vs_quiet"]
    lines = [f"# Drift: {args.space} at {args.resolution} px, ONNX Runtime {args.threads} thread(s), default build settings"
             + (f" but context runs after a model run: {args.context_after_model_run}" if args.context_after_model_run else ""), "",
             f"Machine: {result['device']}, {os.cpu_count()} logical cores. Builds: {secs['quiet']:.0f} s as the machine was "
             f"(load {tuple(round(x, 2) for x in load['before'])}), {secs['busy']:.0f} s with a busy loop on the other core "
             f"(load after {tuple(round(x, 2) for x in load['busy_build_done'])}). Reference speed "
             f"(`lut.table.reference_speed_ms`) {a.reference_ms:.4f} ms vs {b.reference_ms:.4f} ms; plain median "
             f"{a.rows['ref_ms'].median():.4f} ms vs {b.rows['ref_ms'].median():.4f} ms.", "",
             f"| busy vs quiet table, {args.archs} sampled archs | median | max | mean signed |", "|---|---|---|---|",
             f"| prediction (context model, drift-compensated) | {p['median_pct']:.2f} % | {p['max_pct']:.2f} % | {p['mean_signed_pct']:+.2f} % |",
             f"| plain sum of isolated medians | {s['median_pct']:.2f} % | {s['max_pct']:.2f} % | {s['mean_signed_pct']:+.2f} % |",
             f"| block medians ({len(med_a)} blocks) | {m['median_pct']:.2f} % | {m['max_pct']:.2f} % | {m['mean_signed_pct']:+.2f} % |"]
    (RESULTS / f"{name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
