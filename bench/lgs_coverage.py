"""How much of the latency range do initial populations cover? LGS vs layer-wise uniform sampling.

iNAS thesis fig. 3.10: the space spans 32.12-74.14 ms; uniform sampling reaches 50.2 % of it, LGS 99 %.
Coverage here = share of ``--bins`` equal bins of [LAT_min, LAT_max] holding at least one sample;
balance = the largest deviation of a group's count from N/G.

    python bench/lgs_coverage.py --space inas-sod --lut luts/ort1.parquet          # a real LUT
    python bench/lgs_coverage.py --space inas-sod --resolution 320                  # LUT-like model

Without ``--lut`` the latency is :class:`hwnas.search.synthetic.MacsLatencyModel` (a LUT-like sum
of per-block costs, not a measurement); the JSON says which was used.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deploy.fileio import file_digest
from hwnas.search.evolution import atomic_write_text  # noqa: E402
from hwnas.search.sampling import LatencyGroupSampler, group_edges, group_of, uniform_population  # noqa: E402
from hwnas.space import create  # noqa: E402


def coverage(latencies: list[float], lo: float, hi: float, bins: int) -> float:
    hit = {min(bins - 1, int((x - lo) / (hi - lo) * bins)) for x in latencies if lo <= x <= hi}
    return len(hit) / bins


def summarise(lats: list[float], lo: float, hi: float, edges: list[float], bins: int, seconds: float) -> dict:
    groups = len(edges) - 1
    counts = Counter(group_of(x, edges) for x in lats)
    per_group = [counts[g] for g in range(groups)]
    share = len(lats) / groups
    return {
        "coverage": coverage(lats, lo, hi, bins),
        "per_group": per_group,
        "max_group_deviation_pct": round(100 * max(abs(c - share) for c in per_group) / share, 3),
        "min_ms": min(lats),
        "max_ms": max(lats),
        "range_share_min_to_max": (max(lats) - min(lats)) / (hi - lo),
        "seconds": round(seconds, 2),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="inas-sod")
    ap.add_argument("--lut", default=None, help="latency table (default: the LUT-like MACs model)")
    ap.add_argument("--resolution", type=int, default=None, help="default: the LUT's smallest, or the space's smallest")
    ap.add_argument("--population", type=int, default=1000)
    ap.add_argument("--groups", type=int, default=10)
    ap.add_argument("--bins", type=int, default=100)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", default="bench/results/lgs_coverage.json")
    args = ap.parse_args()

    space = create(args.space)
    if args.lut:
        from hwnas.search.fitness import LutLatency

        latency = LutLatency.from_file(args.lut, space)
        source = {"kind": "lut", "path": args.lut, "sha256": file_digest(args.lut)[:16], "backend": latency.table.backend,
                  "calibrated": bool(latency.table.calibration)}
        resolutions = latency.resolutions
    else:
        from hwnas.search.synthetic import MacsLatencyModel

        latency = MacsLatencyModel(space)
        source = {"kind": "synthetic MacsLatencyModel (LUT-like per-block MACs + traffic + overhead; not measured)"}
        resolutions = sorted(space.resolutions)
    res = args.resolution if args.resolution is not None else resolutions[0]
    lo, hi = latency(space.smallest(res)), latency(space.largest(res))
    edges = group_edges(lo, hi, args.groups)
    print(f"{space.name}@{res}px: LAT_min {lo:.3f} ms, LAT_max {hi:.3f} ms ({source['kind'][:40]})", file=sys.stderr)

    runs = []
    for seed in (int(s) for s in args.seeds.split(",")):
        t0 = time.perf_counter()
        sampler = LatencyGroupSampler(space, latency, res)
        lgs = sampler.population(random.Random(seed), args.population, edges)
        lgs_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        uni = uniform_population(space, random.Random(seed), args.population, res, latency)
        uni_s = time.perf_counter() - t0
        row = {
            "seed": seed,
            "lgs": summarise([x for _, x in lgs], lo, hi, edges, args.bins, lgs_s)
            | {"latency_calls": sampler.stats.latency_calls, "fallbacks": sampler.stats.fallbacks, "draws": sampler.stats.draws},
            "uniform": summarise([x for _, x in uni], lo, hi, edges, args.bins, uni_s),
        }
        runs.append(row)
        print(f"seed {seed}: coverage LGS {row['lgs']['coverage']:.1%} (max group deviation "
              f"{row['lgs']['max_group_deviation_pct']:.1f} %), uniform {row['uniform']['coverage']:.1%}", file=sys.stderr)

    result = {
        "space": space.name,
        "space_hash": space.hash,
        "resolution": res,
        "latency_source": source,
        "lat_min_ms": lo,
        "lat_max_ms": hi,
        "population": args.population,
        "groups": args.groups,
        "bins": args.bins,
        "runs": runs,
        "lgs_coverage_min": min(r["lgs"]["coverage"] for r in runs),
        "lgs_max_group_deviation_pct": max(r["lgs"]["max_group_deviation_pct"] for r in runs),
        "uniform_coverage_mean": sum(r["uniform"]["coverage"] for r in runs) / len(runs),
        "accept": {
            "lgs_coverage_ge_99pct": all(r["lgs"]["coverage"] >= 0.99 for r in runs),
            "groups_within_10pct": all(r["lgs"]["max_group_deviation_pct"] <= 10 for r in runs),
        },
        "thesis": {"lgs_coverage": 0.99, "uniform_coverage": 0.502},
        "host": {"python": platform.python_version(), "cpus": os.cpu_count()},
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return 0 if all(result["accept"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
