"""hwnas search — latency-group-sampling evolutionary search (iNAS Algorithm 1) on a trained supernet.

Defaults are the thesis' evolution settings (N=1000, G=10, k=100, p_c=p_m=0.2, 20 iterations) with
cheap candidate evaluation so a search of the inas-tiny supernet fits in minutes on two CPU cores:
32 validation images and BN recalibration on 2 batches of 16 training images (thesis: 200
batches), at the smallest resolution the LUT covers, split over 2 worker processes of one thread each.
"""

from __future__ import annotations

import sys
import time

EXAMPLE = (
    "Example: hwnas search --supernet runs/sod/supernet.pt --lut luts/xeon-ort1.parquet "
    "--data data/synth/val --calib data/synth/train --max-latency-ms 3 --out runs/search-xeon"
)


def register(sub) -> None:
    p = sub.add_parser(
        "search",
        help="search device-specific SOD models: LGS evolution over a supernet with a device LUT",
        description="Latency-group-sampling evolutionary search (iNAS Algorithm 1). " + EXAMPLE,
    )
    p.add_argument("--space", default=None, help="search space name or YAML (default: the supernet checkpoint's)")
    p.add_argument("--supernet", required=True, help="supernet checkpoint (hwnas supernet train)")
    p.add_argument("--lut", required=True, help="latency table of the target device (hwnas lut build)")
    p.add_argument("--data", required=True, help="validation folder (images + masks) the fitness is measured on")
    p.add_argument("--calib", required=True, help="training folder whose images re-estimate BN statistics")
    p.add_argument("--out", required=True, help="run directory (a rerun with the same settings resumes)")
    p.add_argument("--max-latency-ms", type=float, default=None, help="latency cap; groups span [LAT_min, min(LAT_max, cap)]")
    p.add_argument("--resolution", type=int, default=None, help="input side searched at (default: the smallest the LUT covers)")
    p.add_argument("--population", type=int, default=1000, help="initial population N (default 1000)")
    p.add_argument("--groups", type=int, default=10, help="latency groups G (default 10)")
    p.add_argument("--keep", type=int, default=100, help="parents kept per iteration k (default 100)")
    p.add_argument("--iterations", type=int, default=20, help="evolution iterations (default 20)")
    p.add_argument("--crossover-prob", type=float, default=0.2, help="p_c (default 0.2)")
    p.add_argument("--mutation-prob", type=float, default=0.2, help="p_m per field (default 0.2)")
    p.add_argument("--sampler", choices=["lgs", "uniform"], default="lgs", help="initial sampling and grouped selection (default lgs)")
    p.add_argument("--population-update", choices=["front", "all"], default="front",
                   help="after each iteration keep the Pareto front (thesis, default) or all (authors' code)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--metric", choices=["max_f", "s_measure", "max_e", "mae"], default="max_f", help="fitness metric (default max_f)")
    p.add_argument("--val-images", type=int, default=32, help="validation images used (default 32; 0 = all)")
    p.add_argument("--calib-batches", type=int, default=2, help="BN recalibration batches (default 2)")
    p.add_argument("--batch-size", type=int, default=16, help="images per batch (default 16)")
    p.add_argument("--workers", type=int, default=None, help="evaluation processes, one torch thread each (default: min(2, CPUs))")
    p.add_argument("--uncalibrated-lut", action="store_true", help="plain sum of LUT entries, without the table's calibration")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_search)


def _search(args) -> int:
    import os
    from pathlib import Path

    from hwnas.search.errors import SearchError
    from hwnas.search.evolution import SearchConfig, latency_range, search
    from hwnas.search.fitness import METRIC_LABELS, LutLatency, PoolFitness, describe, file_digest, load_fitness
    from hwnas.search.report import write_outputs
    from hwnas.space import create

    t0 = time.perf_counter()
    workers = args.workers if args.workers is not None else min(2, os.cpu_count() or 1)
    if workers < 1:
        raise SearchError(f"--workers must be >= 1, got {workers}")
    if args.space is not None:
        space = create(args.space)
    else:
        from hwnas.checkpoint import checkpoint_space, load_checkpoint

        space = checkpoint_space(load_checkpoint(args.supernet))
    latency = LutLatency.from_file(args.lut, space, calibrated=not args.uncalibrated_lut)
    resolution = args.resolution if args.resolution is not None else min(latency.resolutions)
    if resolution not in latency.resolutions or resolution not in space.resolutions:
        raise SearchError(f"--resolution {resolution}: the latency table covers {latency.resolutions} of space {space.name}")
    config = SearchConfig(
        resolution=resolution, population=args.population, groups=args.groups, keep=args.keep,
        crossover_prob=args.crossover_prob, mutation_prob=args.mutation_prob, iterations=args.iterations,
        seed=args.seed, sampler=args.sampler, population_update=args.population_update,
        max_latency_ms=args.max_latency_ms,
    )
    config.check()

    # everything cheap and refusable first: the LUT and the latency range, before loading data
    lat_min, lat_max = latency_range(space, latency, resolution, args.max_latency_ms)
    print(f"search: {space.name} at {resolution}px, latency range {lat_min:.3f}-{lat_max:.3f} ms "
          f"({config.sampler}, N={config.population}, G={config.groups}, k={config.keep}, {config.iterations} iterations)",
          file=sys.stderr)

    fitness_args = dict(
        supernet=args.supernet, space=space, val_dir=args.data, calib_dir=args.calib, resolution=resolution,
        metric=args.metric, val_images=args.val_images or None, calib_batches=args.calib_batches,
        batch_size=args.batch_size, seed=args.seed,
    )
    # load once here even with workers: a bad checkpoint or folder fails now, as one line
    fitness = load_fitness(**fitness_args)
    if workers > 1:
        fitness = PoolFitness(workers, **fitness_args)
    fingerprint = describe(
        supernet_sha256=file_digest(args.supernet), lut_sha256=file_digest(args.lut), lut_calibrated=not args.uncalibrated_lut,
        data=str(Path(args.data).resolve()), calib=str(Path(args.calib).resolve()), metric=args.metric,
        val_images=args.val_images, calib_batches=args.calib_batches, batch_size=args.batch_size,
    )
    try:
        result = search(space, latency, fitness, config, out_dir=args.out, fingerprint=fingerprint, progress=not args.quiet)
    finally:
        if isinstance(fitness, PoolFitness):
            fitness.close()
    label = METRIC_LABELS[args.metric]
    paths = write_outputs(result, args.out, metric=args.metric, metric_label=label, metric_of=fitness.metric_value)

    print(f"{'latency_ms':>10}  {args.metric:>9}  arch")
    for c in result.pareto:
        print(f"{c.latency_ms:10.3f}  {fitness.metric_value(c.fitness):9.4f}  {c.arch}")
    last = result.history[-1] if result.history else {}
    print(
        f"search: {len(result.candidates)} candidates evaluated ({result.fitness_calls} computed by this run, the rest from the cache), "
        f"{len(result.pareto)} on the Pareto front, hypervolume {last.get('hypervolume', 0):.4f}, "
        f"{time.perf_counter() - t0:.1f} s; wrote {paths['population']}, {paths['pareto_dir']}/, {paths.get('plot', '')}",
        file=sys.stderr,
    )
    return 0

