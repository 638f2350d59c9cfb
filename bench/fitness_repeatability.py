"""How well does the search's fitness rank architectures against an independent re-measurement?

The fitness a search optimises (and an accuracy predictor learns) is max-F on ``--val-images``
validation images after BN recalibration. This script evaluates the same architectures on two
disjoint validation subsets of that size (images 0..K-1 and K..2K-1, same calibration images) and
reports Kendall tau between the two: the ceiling for any predictor's tau against one subset's
values, since the metric itself agrees with a re-measurement only that well.

    python bench/fitness_repeatability.py --supernet S.pt --lut L.parquet --data VAL --calib TRAIN --resolution 64 --n 60
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hwnas.search.evolution import atomic_write_text, latency_range  # noqa: E402
from hwnas.search.predictor import kendall_tau  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="inas-tiny")
    ap.add_argument("--supernet", required=True)
    ap.add_argument("--lut", required=True, help="latency table (architectures are drawn by LGS over its range)")
    ap.add_argument("--data", required=True, help="validation folder with at least 2 x --val-images pairs")
    ap.add_argument("--calib", required=True)
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--val-images", type=int, default=32)
    ap.add_argument("--calib-batches", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--n", type=int, default=60, help="architectures (LGS-sampled over the whole latency range)")
    ap.add_argument("--groups", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default="bench/results/fitness_repeatability.json")
    args = ap.parse_args()

    import torch

    from hwnas.checkpoint import load_supernet
    from hwnas.data import SODFolder
    from hwnas.search.fitness import LutLatency, SupernetFitness, _batches, file_digest
    from hwnas.search.sampling import LatencyGroupSampler, group_edges
    from hwnas.space import create

    torch.set_num_threads(1)
    space = create(args.space)
    latency = LutLatency.from_file(args.lut, space, calibrated=False)
    lo, hi = latency_range(space, latency, args.resolution)
    archs = [a for a, _ in LatencyGroupSampler(space, latency, args.resolution).population(
        random.Random(args.seed), args.n, group_edges(lo, hi, args.groups))]
    net = load_supernet(args.supernet, space)
    val = SODFolder(args.data, size=args.resolution)
    k = args.val_images
    if len(val) < 2 * k:
        sys.exit(f"{args.data} has {len(val)} pairs; need {2 * k}")
    calib_set = SODFolder(args.calib, size=args.resolution)
    n_cal = min(len(calib_set), args.calib_batches * args.batch_size)
    calib = _batches(calib_set, sorted(random.Random(args.seed).sample(range(len(calib_set)), n_cal)), args.batch_size, False)
    subsets = {"a": list(range(k)), "b": list(range(k, 2 * k))}
    fits = {name: SupernetFitness(net, _batches(val, idx, args.batch_size, True), calib) for name, idx in subsets.items()}
    t0 = time.perf_counter()
    values = {name: [f(a) for a in archs] for name, f in fits.items()}
    tau = kendall_tau(values["a"], values["b"])
    result = {"space": space.name, "resolution": args.resolution, "n": len(archs), "val_images_each": k,
              "subsets": {"a": f"images 0..{k - 1}", "b": f"images {k}..{2 * k - 1}"},
              "kendall_tau_a_vs_b": tau, "values": values, "supernet_sha256": file_digest(args.supernet),
              "seconds": round(time.perf_counter() - t0, 1), "host": {"cpus": os.cpu_count(), "load_average": os.getloadavg()}}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out, json.dumps(result, indent=2) + "\n")
    print(f"{len(archs)} architectures, max-F on two disjoint sets of {k} validation images: Kendall tau {tau:.3f}; wrote {out}",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
