"""LGS vs uniform evolutionary search at an equal number of evaluated candidates (thesis fig. 3.10).

Both searches get the same N, G, k, p_c, p_m, iterations and seed; each spends exactly one fitness
evaluation per new architecture. Their Pareto fronts over the first E evaluations (E = the smaller
total) are compared by hypervolume in (latency scaled to [LAT_min, LAT_max], fitness), reference
(LAT_max, fitness_ref) with fitness_ref = the lowest fitness either search evaluated (and, for the
record, 0).

    # real: a trained supernet + a device LUT (fitness = max-F after BN recalibration)
    python bench/lgs_vs_uniform.py --space inas-tiny --lut L.parquet --supernet S.pt --data VAL --calib TRAIN
    # synthetic LUT-like latency and synthetic fitness (engine check at the thesis' full settings)
    python bench/lgs_vs_uniform.py --space inas-sod --population 1000 --keep 100 --iterations 20
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deploy.fileio import file_digest
from hwnas.search.evolution import SearchConfig, latency_range, normalized_hypervolume, search  # noqa: E402
from hwnas.search.pareto import pareto_front  # noqa: E402
from hwnas.space import create  # noqa: E402

from _common import latency_source, write_result  # noqa: E402  (bench/ is on the path of a script run from it)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="inas-tiny")
    ap.add_argument("--lut", default=None, help="latency table (default: LUT-like MACs model)")
    ap.add_argument("--supernet", default=None, help="trained supernet (default: synthetic fitness)")
    ap.add_argument("--data", default=None, help="validation folder (with --supernet)")
    ap.add_argument("--calib", default=None, help="training folder for BN recalibration (with --supernet)")
    ap.add_argument("--val-images", type=int, default=32)
    ap.add_argument("--calib-batches", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--resolution", type=int, default=None)
    ap.add_argument("--population", type=int, default=100)
    ap.add_argument("--groups", type=int, default=10)
    ap.add_argument("--keep", type=int, default=20)
    ap.add_argument("--iterations", type=int, default=5)
    ap.add_argument("--population-update", choices=["front", "all"], default="front")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", default="bench/results/lgs_vs_uniform.json")
    ap.add_argument("--work-dir", default=None, help="checkpoint the searches here (resumable); default: none")
    args = ap.parse_args()

    space = create(args.space)
    latency, lat_source, res = latency_source(space, args.lut, args.resolution)
    pool = None
    if args.supernet:
        if not (args.data and args.calib):
            ap.error("--supernet needs --data and --calib")
        from hwnas.search.fitness import PoolFitness, load_fitness

        kw = dict(supernet=args.supernet, space=space, val_dir=args.data, calib_dir=args.calib, resolution=res,
                  val_images=args.val_images, calib_batches=args.calib_batches)
        fitness_for = (lambda seed: pool) if args.workers > 1 else (lambda seed, f=load_fitness(**kw): f)
        if args.workers > 1:
            pool = PoolFitness(args.workers, **kw)
        fit_source = {"kind": "supernet max_f", "supernet": args.supernet, "sha256": file_digest(args.supernet)[:16],
                      "data": args.data, "val_images": args.val_images, "calib_batches": args.calib_batches}
    else:
        from hwnas.search.synthetic import SyntheticFitness

        def fitness_for(seed):
            return SyntheticFitness(space, res, seed=seed)

        fit_source = {"kind": "synthetic SyntheticFitness (capacity + hidden per-choice bonuses + noise; not measured)"}

    lo, hi = latency_range(space, latency, res)
    runs = []
    try:
        for seed in (int(s) for s in args.seeds.split(",")):
            row = {"seed": seed}
            results = {}
            for sampler in ("lgs", "uniform"):
                cfg = SearchConfig(resolution=res, population=args.population, groups=args.groups, keep=args.keep,
                                   iterations=args.iterations, seed=seed, sampler=sampler,
                                   population_update=args.population_update)
                work = Path(args.work_dir) / f"{sampler}-seed{seed}" if args.work_dir else None
                t0 = time.perf_counter()
                # the problem's seed (hidden bonuses) is shared by both samplers of a seed
                results[sampler] = search(space, latency, fitness_for(seed), cfg, out_dir=work, progress=False)
                row[f"{sampler}_seconds"] = round(time.perf_counter() - t0, 1)
            budget = min(len(r.candidates) for r in results.values())
            fronts = {}
            for name, r in results.items():
                cands = [c for c in r.candidates if c.index < budget]
                fronts[name] = [cands[i] for i in pareto_front([(c.latency_ms, c.fitness) for c in cands])]
                row[f"{name}_min_latency_ms"] = min(c.latency_ms for c in cands)
                row[f"{name}_max_latency_ms"] = max(c.latency_ms for c in cands)
                row[f"{name}_best_fitness"] = max(c.fitness for c in cands)
                row[f"{name}_front_size"] = len(fronts[name])
            f_ref = min(c.fitness for r in results.values() for c in r.candidates if c.index < budget)
            for name in results:
                row[f"{name}_hypervolume"] = normalized_hypervolume(fronts[name], lo, hi, fitness_ref=f_ref)
                row[f"{name}_hypervolume_ref0"] = normalized_hypervolume(fronts[name], lo, hi, fitness_ref=0.0)
            row["evaluated_each"] = budget
            row["fitness_ref"] = f_ref
            row["lgs_ge_uniform"] = row["lgs_hypervolume"] >= row["uniform_hypervolume"]
            runs.append(row)
            print(f"seed {seed}: {budget} evaluations each; hypervolume LGS {row['lgs_hypervolume']:.4f} vs "
                  f"uniform {row['uniform_hypervolume']:.4f}", file=sys.stderr)
    finally:
        if pool is not None:
            pool.close()

    result = {
        "space": space.name, "resolution": res, "lat_min_ms": lo, "lat_max_ms": hi,
        "latency_source": lat_source, "fitness_source": fit_source,
        "settings": {"population": args.population, "groups": args.groups, "keep": args.keep,
                     "iterations": args.iterations, "crossover_prob": 0.2, "mutation_prob": 0.2,
                     "population_update": args.population_update},
        "runs": runs,
        "lgs_ge_uniform_all_seeds": all(r["lgs_ge_uniform"] for r in runs),
        "cpus": os.cpu_count(),
    }
    write_result(args.out, result)
    return 0 if result["lgs_ge_uniform_all_seeds"] else 1


if __name__ == "__main__":
    sys.exit(main())
