"""What one candidate evaluation costs, and what the default search therefore costs (issue 16).

A candidate evaluation = the subnet's BN statistics re-estimated on ``--calib-batches`` x
``--batch-size`` training images, then the metric on ``--val-images`` validation images (the
``hwnas search`` defaults: 2 x 16 and 32). This script times it for ``inas-tiny`` at 64 px and
``inas-sod`` at 320 px on randomly drawn subnets (layer-wise uniform), on this CPU with one torch
thread per process (what ``hwnas search --workers`` runs) and on CUDA when present, and projects
the default search (N=1000 + 20 iterations x k=100 = 3000 evaluations) from it.

Weights do not change the cost, so a freshly initialised supernet is timed unless ``--supernet``
names a trained one; images come from ``--data`` (a folder with images/ + masks/, resized to the
resolution) or are random tensors.

    python bench/search_cost.py --data /tmp/h16/data/val --evals 8
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import write_result  # noqa: E402  (bench/ is on the path of a script run from it)

from hwnas.search.evolution import SearchConfig  # noqa: E402
from profilers.fingerprint import cpu_model  # noqa: E402

SETTINGS = [("inas-tiny", 64), ("inas-sod", 320)]


def _batches(data: str | None, resolution: int, n_val: int, n_calib: int, batch_size: int, device: str):
    import torch

    if data:
        from hwnas.search.fitness import _batches as folder_batches
        from hwnas.data import SODFolder

        ds = SODFolder(data, size=resolution)
        val = folder_batches(ds, [i % len(ds) for i in range(n_val)], batch_size, with_masks=True)
        calib = folder_batches(ds, [(i + n_val) % len(ds) for i in range(n_calib)], batch_size, with_masks=False)
    else:
        g = torch.Generator().manual_seed(0)
        val = [(torch.rand(min(batch_size, n_val - s), 3, resolution, resolution, generator=g),
                (torch.rand(min(batch_size, n_val - s), 1, resolution, resolution, generator=g) > 0.5).float())
               for s in range(0, n_val, batch_size)]
        calib = [torch.rand(min(batch_size, n_calib - s), 3, resolution, resolution, generator=g) for s in range(0, n_calib, batch_size)]
    return val, calib


def time_setting(space_name: str, resolution: int, device: str, args) -> dict:
    import torch

    from hwnas.search.fitness import SupernetFitness
    from hwnas.space import create

    space = create(space_name)
    if args.supernet and space_name == args.supernet_space:
        from hwnas.checkpoint import load_supernet

        net = load_supernet(args.supernet, space)
    else:
        from hwnas.supernet import Supernet

        net = Supernet(space)
    net = net.to(device).eval()
    val, calib = _batches(args.data, resolution, args.val_images, args.calib_batches * args.batch_size, args.batch_size, device)
    fitness = SupernetFitness(net, val, calib)
    rng = random.Random(0)
    archs = [space.sample(rng, resolution=resolution) for _ in range(args.evals + 1)]
    fitness(archs[0])  # warm-up (allocator, first-call overheads)
    seconds, cpu_seconds = [], []
    for arch in archs[1:]:
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        t0, c0 = time.perf_counter(), time.process_time()
        fitness(arch)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - t0)
        cpu_seconds.append(time.process_time() - c0)
    mean_s = statistics.fmean(seconds)
    default = SearchConfig(resolution=resolution)
    evaluations = default.population + default.iterations * default.keep
    per_hour = 3600 / mean_s
    row = {"space": space_name, "resolution": resolution, "device": device, "threads": torch.get_num_threads(),
           "evals_timed": len(seconds), "mean_s": round(mean_s, 4), "median_s": round(statistics.median(seconds), 4),
           "min_s": round(min(seconds), 4), "max_s": round(max(seconds), 4),
           # CPU time of this (one-thread) process: what the wall time would be on an idle core
           "mean_cpu_s": round(statistics.fmean(cpu_seconds), 4),
           "idle_core_default_search_projected_hours": round(evaluations * statistics.fmean(cpu_seconds) / 3600
                                                             / (args.workers if device == "cpu" else 1), 3),
           "evals_per_hour_per_process": round(per_hour),
           "default_search_evaluations": evaluations}
    if device == "cpu":
        procs = args.workers
        row["workers"] = procs
        row["evals_per_hour"] = round(per_hour * procs)  # assumes one free core per worker
        row["default_search_projected_hours"] = round(evaluations / (per_hour * procs), 3)
    else:
        row["evals_per_hour"] = round(per_hour)
        row["default_search_projected_hours"] = round(evaluations / per_hour, 3)
    return row


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--evals", type=int, default=8, help="timed evaluations per setting (after one warm-up)")
    ap.add_argument("--data", default=None, help="SOD folder (images/ + masks/); default: random tensors")
    ap.add_argument("--supernet", default=None, help="a trained supernet checkpoint (else fresh weights)")
    ap.add_argument("--supernet-space", default="inas-tiny", help="the space --supernet belongs to")
    ap.add_argument("--val-images", type=int, default=32)
    ap.add_argument("--calib-batches", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1), help="CPU processes the projection assumes")
    ap.add_argument("--devices", default="cpu,cuda", help="cpu and/or cuda (cuda skipped when absent)")
    ap.add_argument("--settings", default=",".join(f"{s}@{r}" for s, r in SETTINGS))
    ap.add_argument("--out", default="bench/results/search_cost.json")
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)  # one thread per process, as hwnas search's workers
    rows, skipped = [], []
    for spec in args.settings.split(","):
        space_name, res = spec.split("@")
        for device in args.devices.split(","):
            if device == "cuda" and not torch.cuda.is_available():
                skipped.append(f"{spec} on cuda: no CUDA device here")
                continue
            row = time_setting(space_name, int(res), device, args)
            rows.append(row)
            print(f"{space_name}@{res}px on {device}: {row['mean_s'] * 1000:.0f} ms per evaluation, "
                  f"{row['evals_per_hour']} evaluations/hour ({row.get('workers', 1)} process(es)); default search "
                  f"({row['default_search_evaluations']} evaluations): {row['default_search_projected_hours'] * 60:.1f} min "
                  f"(CPU time {row['mean_cpu_s'] * 1000:.0f} ms per evaluation: "
                  f"{row['idle_core_default_search_projected_hours'] * 60:.1f} min on idle cores)",
                  file=sys.stderr)
    result = {"rows": rows, "skipped": skipped,
              "settings": {"val_images": args.val_images, "calib_batches": args.calib_batches, "batch_size": args.batch_size,
                           "data": args.data or "random tensors", "supernet": args.supernet or "fresh weights"},
              "host": {"cpu": cpu_model(), "cpus": os.cpu_count(),
                       "load_average": os.getloadavg(), "torch": torch.__version__}}
    write_result(args.out, result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
