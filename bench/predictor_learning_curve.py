"""Predictor quality vs the number of evaluated candidates it is fitted on (no new evaluations).

Reads the fitness memo ``bench/predictor_search.py --memo`` wrote (every architecture its searches
evaluated, with its fitness) and the LUT, and for each training size fits every predictor on a
random subset and scores Kendall tau on a disjoint held-out set (the same held-out set for every
size of one repeat). The default search evaluates 1000 initial candidates before its first
screening; the quickstart 100.

    python bench/predictor_learning_curve.py --memo bench/results/predictor_search_memo.jsonl --lut L.parquet
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import write_result  # noqa: E402  (bench/ is on the path of a script run from it)

import numpy as np  # noqa: E402

from deploy.fileio import Journal  # noqa: E402
from hwnas.arch import Arch  # noqa: E402
from hwnas.search.evolution import latency_range  # noqa: E402
from hwnas.search.predictor import ArchEncoder, kendall_tau, make_predictor  # noqa: E402
from hwnas.search.sampling import Genome  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--memo", required=True)
    ap.add_argument("--lut", required=True)
    ap.add_argument("--space", default="inas-tiny")
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--sizes", default="100,200,400,800,1200")
    ap.add_argument("--test", type=int, default=400, help="held-out candidates per repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--predictors", default="gbt,mlp,ridge,gp")
    ap.add_argument("--out", default="bench/results/predictor_learning_curve.json")
    args = ap.parse_args()

    from hwnas.search.fitness import LutLatency, file_digest
    from hwnas.space import create

    space = create(args.space)
    latency = LutLatency.from_file(args.lut, space, calibrated=False)
    lo, hi = latency_range(space, latency, args.resolution)
    encoder = ArchEncoder(Genome(space, args.resolution), lo, hi)
    rows = Journal(args.memo, None, what=f"fitness memo {args.memo}", header_key="identity", required=("arch", "fitness")).read()
    archs = [Arch.from_string(r["arch"]) for r in rows]
    X = np.stack([encoder.encode(a, latency(a)) for a in archs])
    y = np.array([r["fitness"] for r in rows])
    sizes = [int(s) for s in args.sizes.split(",") if int(s) + args.test <= len(y)]
    curve = {p: {n: [] for n in sizes} for p in args.predictors.split(",")}
    t0 = time.perf_counter()
    for rep in range(args.repeats):
        idx = list(range(len(y)))
        random.Random(rep).shuffle(idx)
        test, pool = idx[: args.test], idx[args.test :]
        for n in sizes:
            train = pool[:n]
            for p in curve:
                pred = make_predictor(p, seed=rep).fit(X[train], y[train]).predict(X[test])
                curve[p][n].append(kendall_tau(pred, y[test]))
        print(f"repeat {rep}: " + "; ".join(f"{p} " + " ".join(f"{n}:{curve[p][n][-1]:.3f}" for n in sizes) for p in curve),
              file=sys.stderr)
    result = {"memo": args.memo, "candidates": len(y), "lut_sha256": file_digest(args.lut), "test": args.test,
              "repeats": args.repeats,
              "tau_mean": {p: {str(n): float(np.mean(v)) for n, v in by_n.items()} for p, by_n in curve.items()},
              "tau_all": {p: {str(n): v for n, v in by_n.items()} for p, by_n in curve.items()},
              "seconds": round(time.perf_counter() - t0, 1), "host": {"cpus": os.cpu_count(), "load_average": os.getloadavg()}}
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
