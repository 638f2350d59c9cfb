"""hwnas search — latency-group-sampling evolutionary search (iNAS Algorithm 1) on a trained supernet.

Defaults are the thesis' evolution settings (N=1000, G=10, k=100, p_c=p_m=0.2, 20 iterations) with
cheap candidate evaluation so a search of the inas-tiny supernet fits in minutes on two CPU cores:
32 validation images and BN recalibration on 2 batches of 16 training images (thesis: 200
batches), at the smallest resolution the LUT covers, split over 2 worker processes of one thread each.
"""

from __future__ import annotations

import sys
import time
from hwnas.cli.argtypes import device, non_negative_float, non_negative_int, positive_float, positive_int, probability

EXAMPLE = (
    "Example: hwnas search --supernet runs/sod/supernet.pt --lut luts/xeon-ort1.parquet "
    "--data data/synth/val --calib data/synth/train --max-latency-ms 3 --out runs/search-xeon"
)


def register(sub) -> None:
    from hwnas.search.predictor import PREDICTORS

    p = sub.add_parser(
        "search",
        help="search device-specific SOD models: LGS evolution over a supernet with a device LUT",
        description="Latency-group-sampling evolutionary search (iNAS Algorithm 1). " + EXAMPLE,
    )
    p.add_argument("--space", default=None, help="search space name or YAML (default: the supernet checkpoint's)")
    p.add_argument("--supernet", default=None, help="supernet checkpoint (hwnas supernet train); required")
    p.add_argument("--lut", default=None, help="latency table of the target device (hwnas lut build); required")
    p.add_argument("--data", default=None, help="validation folder (images + masks) the fitness is measured on; required")
    p.add_argument("--calib", default=None, help="training folder whose images re-estimate BN statistics; required")
    p.add_argument("--out", required=True, help="run directory (a rerun with the same settings resumes)")
    p.add_argument("--max-latency-ms", type=positive_float, default=None, help="latency cap; groups span [LAT_min, min(LAT_max, cap)]")
    p.add_argument("--resolution", type=positive_int, default=None, help="input side searched at (default: the smallest the LUT covers)")
    p.add_argument("--population", type=positive_int, default=1000, help="initial population N (default 1000)")
    p.add_argument("--groups", type=positive_int, default=10, help="latency groups G (default 10)")
    p.add_argument("--keep", type=positive_int, default=100, help="parents kept per iteration k (default 100)")
    p.add_argument("--iterations", type=non_negative_int, default=20, help="evolution iterations (default 20)")
    p.add_argument("--crossover-prob", type=probability, default=0.2, help="p_c (default 0.2)")
    p.add_argument("--mutation-prob", type=probability, default=0.2, help="p_m per field (default 0.2)")
    p.add_argument("--sampler", choices=["lgs", "uniform"], default="lgs", help="initial sampling and grouped selection (default lgs)")
    p.add_argument("--population-update", choices=["front", "all"], default="front",
                   help="after each iteration keep the Pareto front (thesis, default) or all (authors' code)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--metric", choices=["max_f", "s_measure", "max_e", "mae"], default="max_f", help="fitness metric (default max_f)")
    p.add_argument("--val-images", type=non_negative_int, default=32, help="validation images used (default 32; 0 = all)")
    p.add_argument("--calib-batches", type=positive_int, default=2, help="BN recalibration batches (default 2)")
    p.add_argument("--batch-size", type=positive_int, default=16, help="images per batch (default 16)")
    p.add_argument("--predictor", choices=PREDICTORS, default="none",
                   help="accuracy predictor fitted on the evaluated candidates: breed --screen-factor x more offspring "
                        "and evaluate the ones it ranks best in each latency group (default none)")
    p.add_argument("--screen-factor", type=positive_int, default=5, help="with --predictor: offspring bred per offspring evaluated (default 5)")
    p.add_argument("--explore", type=probability, default=0.2,
                   help="with --predictor: share of each group's evaluations given to random offspring (default 0.2)")
    p.add_argument("--screen-init", type=probability, default=0.0,
                   help="with --predictor: share of the initial population the predictor picks, fitted on the rest, "
                        "from --screen-factor x as many samples (default 0: the whole population is sampled)")
    p.add_argument("--workers", type=positive_int, default=None,
                   help="evaluation processes, one torch thread each (default: min(2, CPUs); 1 per rank under torchrun)")
    p.add_argument("--device", type=device, default="cpu", help="where candidates are evaluated: auto, cpu, cuda, cuda:N "
                                                                "(under torchrun, cuda = cuda:LOCAL_RANK; default cpu)")
    p.add_argument("--synthetic", action="store_true",
                   help="LUT-like latency and synthetic fitness instead of --supernet/--lut/--data/--calib "
                        "(rehearse a search or a torchrun setup; nothing is measured)")
    p.add_argument("--synthetic-eval-ms", type=non_negative_float, default=0.0,
                   help="with --synthetic: time each evaluation takes (default 0)")
    p.add_argument("--uncalibrated-lut", action="store_true", help="plain sum of LUT entries, without the table's calibration")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_search)


def _search(args) -> int:
    import os

    from hwnas.search.errors import SearchError
    from hwnas.search.evolution import SearchConfig, latency_range, search
    from hwnas.search.fitness import METRIC_LABELS
    from hwnas.space import create

    t0 = time.perf_counter()
    if not args.synthetic:
        missing = [f"--{k}" for k in ("supernet", "lut", "data", "calib") if getattr(args, k) is None]
        if missing:
            raise SearchError(f"{', '.join(missing)} required (or --synthetic to rehearse without a supernet)")
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    workers = args.workers if args.workers is not None else (1 if distributed else min(2, os.cpu_count() or 1))
    if not distributed:
        from hwnas.devices import resolve_device

        args.device = str(resolve_device(args.device))
    if args.device != "cpu" and workers > 1:
        raise SearchError("--workers > 1 evaluates in CPU processes; with --device cuda run one process per GPU (torchrun)")
    if args.space is not None:
        space = create(args.space)
    elif args.synthetic:
        space = create("inas-tiny")
    else:
        from hwnas.checkpoint import checkpoint_space, load_checkpoint

        space = checkpoint_space(load_checkpoint(args.supernet))
    if args.synthetic:
        from hwnas.search.synthetic import MacsLatencyModel

        latency = MacsLatencyModel(space)
        resolution = args.resolution if args.resolution is not None else min(space.resolutions)
        if resolution not in space.resolutions:
            raise SearchError(f"--resolution {resolution} not in space {space.name}; allowed: {sorted(space.resolutions)}")
    else:
        from hwnas.search.fitness import LutLatency

        latency = LutLatency.from_file(args.lut, space, calibrated=not args.uncalibrated_lut)
        resolution = args.resolution if args.resolution is not None else min(latency.resolutions)
        if resolution not in latency.resolutions or resolution not in space.resolutions:
            raise SearchError(f"--resolution {resolution}: the latency table covers {latency.resolutions} of space {space.name}")
    config = SearchConfig(
        resolution=resolution, population=args.population, groups=args.groups, keep=args.keep,
        crossover_prob=args.crossover_prob, mutation_prob=args.mutation_prob, iterations=args.iterations,
        seed=args.seed, sampler=args.sampler, population_update=args.population_update,
        max_latency_ms=args.max_latency_ms, predictor=args.predictor, screen_factor=args.screen_factor,
        explore=args.explore, screen_init=args.screen_init,
    )
    config.check()

    # everything cheap and refusable first: the LUT and the latency range, before loading data
    lat_min, lat_max = latency_range(space, latency, resolution, args.max_latency_ms)
    from pathlib import Path

    Path(args.out).mkdir(parents=True, exist_ok=True)  # an unwritable --out fails now, as one line, before any work
    dist = None
    if distributed:  # torchrun: rank 0 searches, every rank evaluates (hwnas.search.distributed)
        from hwnas.process_group import ProcessGroup

        dist = ProcessGroup.from_env(args.device)  # checked; `cuda` = this rank's GPU, made current
        args.device = str(dist.device)
    if dist is None or dist.main:
        where = f", {dist.world_size} ranks" if dist else ""
        print(f"search: {space.name} at {resolution}px, latency range {lat_min:.3f}-{lat_max:.3f} ms "
              f"({config.sampler}, N={config.population}, G={config.groups}, k={config.keep}, {config.iterations} iterations, "
              f"predictor {config.predictor}{where})", file=sys.stderr)

    fitness, fingerprint = _fitness(args, space, resolution, workers)
    try:
        if dist is None:
            result = search(space, latency, fitness, config, out_dir=args.out, fingerprint=fingerprint, progress=not args.quiet)
        else:
            from hwnas.search.distributed import DistributedFitness

            spread = DistributedFitness(fitness, dist, per_rank=workers)
            if not dist.main:
                spread.serve()
                print(f"search rank {dist.rank}: evaluated {spread.evaluated} candidates in {spread.rounds} rounds", file=sys.stderr)
                return 0
            try:
                result = search(space, latency, spread, config, out_dir=args.out, fingerprint=fingerprint, progress=not args.quiet)
            finally:
                spread.stop()
    finally:
        if hasattr(fitness, "close"):
            fitness.close()
        if dist is not None:
            dist.close()
    from hwnas.search.report import write_outputs

    metric = "fitness" if args.synthetic else args.metric
    label = "fit" if args.synthetic else METRIC_LABELS[args.metric]
    metric_of = getattr(fitness, "metric_value", lambda f: f)
    paths = write_outputs(result, args.out, metric=metric, metric_label=label, metric_of=metric_of)

    print(f"{'latency_ms':>10}  {metric:>9}  arch")
    for c in result.pareto:
        print(f"{c.latency_ms:10.3f}  {metric_of(c.fitness):9.4f}  {c.arch}")
    last = result.history[-1] if result.history else {}
    screened = f", {result.predicted} offspring scored by the {config.predictor} predictor" if config.predictor != "none" else ""
    print(
        f"search: {len(result.candidates)} candidates evaluated ({result.fitness_calls} computed by this run, the rest from the cache)"
        f"{screened}, {len(result.pareto)} on the Pareto front, hypervolume {last.get('hypervolume', 0):.4f}, "
        f"{time.perf_counter() - t0:.1f} s; wrote {paths['population']}, {paths['pareto_dir']}/, {paths.get('plot', '')}",
        file=sys.stderr,
    )
    return 0


def _fitness(args, space, resolution: int, workers: int):
    """This process's evaluator and the run's fingerprint (what the fitness values depend on)."""
    from pathlib import Path

    from hwnas.search.fitness import PoolFitness, describe, file_digest, load_fitness

    if args.synthetic:
        from hwnas.search.synthetic import SyntheticFitness

        inner = SyntheticFitness(space, resolution, seed=args.seed)
        delay_s = args.synthetic_eval_ms / 1000

        def fitness(arch):
            if delay_s:
                time.sleep(delay_s)  # stands in for BN recalibration + validation
            return inner(arch)

        return fitness, describe(synthetic=True, synthetic_seed=args.seed)
    fitness_args = dict(
        supernet=args.supernet, space=space, val_dir=args.data, calib_dir=args.calib, resolution=resolution,
        metric=args.metric, val_images=args.val_images or None, calib_batches=args.calib_batches,
        batch_size=args.batch_size, seed=args.seed, device=args.device,
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
    return fitness, fingerprint
