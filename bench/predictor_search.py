"""Predictor-assisted LGS vs plain LGS vs uniform sampling, at an equal number of true evaluations (issue 16).

Two measurements, on disjoint data so the choice is not made on the reported figures:

1. **Choice** (``--selection-seed``, default 100): one plain LGS search; every predictor is fitted on
   random halves of its evaluated candidates and scored by Kendall tau on the other halves (mean of
   ``--splits``). The predictor with the highest mean tau is *chosen*.
2. **Report** (``--seeds``, default 0,1,2), each seed: uniform, plain LGS, and LGS + each predictor
   (``--predictors``). Predictor quality on held-out candidates: fitted on the seed's plain-LGS
   initial population, scored on that search's offspring (which no predictor picked), globally and
   within each latency group (what the screening ranks), plus the online tau the assisted searches
   record each iteration. Beside them, the metric's own test-retest (where ``--data`` holds 2 x
   ``--val-images`` pairs): the same held-out candidates scored again on the next ``--val-images``
   images, and Kendall tau between the two scores: how well one noisy score ranks another; and
   each predictor's tau against the mean of the two scores, a truer metric (half the noise
   variance of one score) that the predictors never see. Fronts over the first E evaluations
   (E = the smallest total of the seed) are compared by hypervolume (latency scaled to the range,
   reference fitness = the lowest evaluated in that seed) and, for each tenth of the latency
   range, by whether uniform's front rises above the other's there.

A fitness value depends only on the architecture (same supernet weights, same calibration and
validation images), so every search of a run shares one memo: a candidate two searches both
evaluate is computed once; each search still counts it as one of its evaluations.

    # real: the quickstart's inas-tiny setting (trained supernet, a LUT of this CPU, synthetic SOD data)
    python bench/predictor_search.py --lut L.parquet --supernet S.pt --data VAL --calib TRAIN --resolution 64
    # synthetic latency and fitness (engine check, seconds)
    python bench/predictor_search.py --out bench/results/predictor_search_synthetic.json
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

import numpy as np  # noqa: E402

from deploy.fileio import Journal  # noqa: E402
from hwnas.arch import Arch  # noqa: E402
from hwnas.search.evolution import SearchConfig, atomic_write_text, latency_range, normalized_hypervolume, search  # noqa: E402
from hwnas.search.pareto import pareto_front  # noqa: E402
from hwnas.search.predictor import ArchEncoder, kendall_tau, make_predictor  # noqa: E402
from hwnas.search.sampling import Genome, group_edges, group_of  # noqa: E402
from hwnas.space import create  # noqa: E402

from _common import latency_source, write_result  # noqa: E402  (bench/ is on the path of a script run from it)


class Memo:
    """One fitness memo shared by every search of the run (values depend on the architecture only).

    With ``path``, values are also appended to a JSONL file and read back by a rerun (the file
    starts with the identity of what the values depend on; another identity is refused).
    """

    def __init__(self, inner, path: Path | None = None, identity: dict | None = None):
        self.inner = inner
        self.values: dict[str, float] = {}
        self.computed = 0
        self.file = None
        if path is not None:  # refused when written with another setting, or by a second process now
            self.file = Journal(path, identity, what=f"fitness memo {path}", header_key="identity",
                                required=("arch", "fitness"), lost="one memoised fitness (computed again)").open()
            import atexit

            atexit.register(self.file.close)  # releases the lock (a killed run's is taken over with a warning)
            for rec in self.file.rows:
                self.values[rec["arch"]] = float(rec["fitness"])

    def map(self, archs: list[Arch]):
        todo = list({a.to_string(): a for a in archs if a.to_string() not in self.values}.values())
        if todo:
            fresh = self.inner.map(todo) if hasattr(self.inner, "map") else (self.inner(a) for a in todo)
            for a, v in zip(todo, fresh):
                self.values[a.to_string()] = float(v)
                self.computed += 1
                if self.file is not None:
                    self.file.append({"arch": a.to_string(), "fitness": float(v)})
        return [self.values[a.to_string()] for a in archs]

    def __call__(self, arch: Arch) -> float:
        return self.map([arch])[0]


def front_at(front: list[tuple[float, float]], x: float) -> float:
    """Best fitness of a front among points with latency <= x (-inf when none)."""
    best = -np.inf
    for lat, fit in front:
        if lat <= x:
            best = max(best, fit)
    return best


def tenths_above(mine: list[tuple[float, float]], theirs: list[tuple[float, float]], lo: float, hi: float) -> dict:
    """For each tenth of [lo, hi]: the largest amount by which ``theirs``' front rises above ``mine``
    at ``theirs``' own points in that tenth (0 when never above)."""
    gaps = [0.0] * 10
    for lat, fit in theirs:
        b = min(9, max(0, int((lat - lo) / (hi - lo) * 10)))
        gaps[b] = max(gaps[b], fit - front_at(mine, lat))
    return {"tenths_where_uniform_above": [b + 1 for b, g in enumerate(gaps) if g > 0],
            "max_gap_per_tenth": [round(g, 5) for g in gaps]}


def features(cands, encoder: ArchEncoder) -> tuple[np.ndarray, np.ndarray]:
    X = np.stack([encoder.encode(Arch.from_string(c.arch), c.latency_ms) for c in cands])
    return X, np.array([c.fitness for c in cands])


def tau_scores(name: str, train, test, encoder, edges, seed: int = 0, again=None) -> dict:
    """Global and mean within-group Kendall tau of ``name`` fitted on ``train``, scored on ``test``.
    With ``again`` (the test candidates' scores on the next images), also the tau against the mean
    of both scores: an estimate of the true metric with half the noise variance of one score."""
    Xtr, ytr = features(train, encoder)
    Xte, yte = features(test, encoder)
    t0 = time.perf_counter()
    pred = make_predictor(name, seed=seed).fit(Xtr, ytr).predict(Xte)
    fit_s = time.perf_counter() - t0
    extra = {} if again is None else {"tau_vs_two_halves": kendall_tau(pred, (yte + np.asarray(again)) / 2)}
    by_group: dict[int, list[int]] = {}
    for i, c in enumerate(test):
        by_group.setdefault(group_of(c.latency_ms, edges), []).append(i)
    within = [kendall_tau(pred[idx], yte[idx]) for idx in by_group.values() if len(idx) >= 5]
    within = [t for t in within if t == t]
    return {"tau": kendall_tau(pred, yte), "tau_within_group": float(np.mean(within)) if within else None,
            "n_train": len(train), "n_test": len(test), "fit_seconds": round(fit_s, 3), **extra}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="inas-tiny")
    ap.add_argument("--lut", default=None, help="latency table (default: LUT-like MACs model)")
    ap.add_argument("--uncalibrated-lut", action="store_true")
    ap.add_argument("--supernet", default=None, help="trained supernet (default: synthetic fitness)")
    ap.add_argument("--data", default=None)
    ap.add_argument("--calib", default=None)
    ap.add_argument("--val-images", type=int, default=32)
    ap.add_argument("--calib-batches", type=int, default=2)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--resolution", type=int, default=None)
    # the quickstart's search settings
    ap.add_argument("--population", type=int, default=100)
    ap.add_argument("--groups", type=int, default=5)
    ap.add_argument("--keep", type=int, default=20)
    ap.add_argument("--iterations", type=int, default=4)
    ap.add_argument("--screen-factor", type=int, default=5)
    ap.add_argument("--explore", type=float, default=0.2)
    ap.add_argument("--screen-init", type=float, default=0.0,
                    help="share of the initial population the predictor picks (default 0: offspring only, as in the "
                         "twelfth and thirteenth sessions' runs)")
    ap.add_argument("--predictors", default="gbt,mlp,ridge,gp")
    ap.add_argument("--tau-predictors", default="",
                    help="more predictors scored only by held-out tau (choice and report), without an assisted search "
                         "of their own: tau needs the plain LGS search alone, each assisted search ~180 evaluations")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--selection-seed", type=int, default=100)
    ap.add_argument("--splits", type=int, default=5)
    ap.add_argument("--out", default="bench/results/predictor_search.json")
    ap.add_argument("--memo", default=None, help="JSONL fitness memo (with --supernet): a rerun reuses its values")
    ap.add_argument("--dump", default=None, help="write every search's candidates (arch, latency, fitness) to this JSON")
    args = ap.parse_args()

    t_start = time.perf_counter()
    space = create(args.space)
    latency, lat_source, res = latency_source(space, args.lut, args.resolution, calibrated=not args.uncalibrated_lut)
    pool = None
    retest = None  # the same candidates on the next --val-images images (the metric's test-retest)
    if args.supernet:
        if not (args.data and args.calib):
            ap.error("--supernet needs --data and --calib")
        from hwnas.search.fitness import PoolFitness, file_digest, load_fitness

        kw = dict(supernet=args.supernet, space=space, val_dir=args.data, calib_dir=args.calib, resolution=res,
                  val_images=args.val_images, calib_batches=args.calib_batches)
        inner = PoolFitness(args.workers, **kw) if args.workers > 1 else load_fitness(**kw)
        pool = inner if args.workers > 1 else None
        from hwnas.data import find_pairs

        if len(find_pairs(args.data)) >= 2 * args.val_images:
            retest = (PoolFitness(args.workers, **kw, val_skip=args.val_images) if args.workers > 1
                      else load_fitness(**kw, val_skip=args.val_images))
        else:
            print(f"no metric retest: {args.data} has fewer than 2 x {args.val_images} pairs", file=sys.stderr)
        memo = Memo(inner, Path(args.memo) if args.memo else None,
                    {"supernet": file_digest(args.supernet), "data": str(Path(args.data).resolve()), "resolution": res,
                     "val_images": args.val_images, "calib_batches": args.calib_batches})
        fitness_for = lambda seed: memo  # noqa: E731  (one problem: the supernet's)
        fit_source = {"kind": "supernet max_f after BN recalibration", "supernet": args.supernet,
                      "sha256": file_digest(args.supernet), "data": args.data, "val_images": args.val_images,
                      "calib_batches": args.calib_batches}
    else:
        from hwnas.search.synthetic import SyntheticFitness

        memos: dict[int, Memo] = {}

        def fitness_for(seed):  # the synthetic problem's hidden bonuses are drawn per seed
            return memos.setdefault(seed, Memo(SyntheticFitness(space, res, seed=seed)))

        fit_source = {"kind": "synthetic SyntheticFitness (not measured)"}

    lo, hi = latency_range(space, latency, res)
    edges = group_edges(lo, hi, args.groups)
    encoder = ArchEncoder(Genome(space, res), lo, hi)
    predictors = [p for p in args.predictors.split(",") if p]
    scored = predictors + [p for p in args.tau_predictors.split(",") if p and p not in predictors]  # held-out tau

    dumped: dict[str, list] = {}

    def run(seed: int, sampler: str, predictor: str = "none"):
        cfg = SearchConfig(resolution=res, population=args.population, groups=args.groups, keep=args.keep,
                           iterations=args.iterations, seed=seed, sampler=sampler, predictor=predictor,
                           screen_factor=args.screen_factor, explore=args.explore,
                           screen_init=args.screen_init)
        t0 = time.perf_counter()
        r = search(space, latency, fitness_for(seed), cfg, progress=False)
        dumped[f"{sampler}-{predictor}-seed{seed}"] = [[c.arch, c.latency_ms, c.fitness, c.origin, c.iteration] for c in r.candidates]
        if args.dump:
            atomic_write_text(Path(args.dump), json.dumps(dumped))
        return r, time.perf_counter() - t0

    try:
        # 1. choice, on a search of its own
        sel, _ = run(args.selection_seed, "lgs")
        choice: dict[str, dict] = {}
        for name in scored:
            rows = []
            for split in range(args.splits):
                cands = list(sel.candidates)
                random.Random(split).shuffle(cands)
                half = len(cands) // 2
                rows.append(tau_scores(name, cands[:half], cands[half:], encoder, edges, seed=split))
            choice[name] = {"tau_mean": float(np.mean([r["tau"] for r in rows])),
                            "tau_within_group_mean": float(np.mean([r["tau_within_group"] for r in rows if r["tau_within_group"] is not None]))}
            print(f"choice data: {name} tau {choice[name]['tau_mean']:.3f} (within group {choice[name]['tau_within_group_mean']:.3f})",
                  file=sys.stderr)
        chosen = max(scored, key=lambda n: choice[n]["tau_mean"])
        print(f"chosen predictor: {chosen}", file=sys.stderr)

        # 2. report
        runs = []
        for seed in (int(s) for s in args.seeds.split(",")):
            results, seconds = {}, {}
            for key, sampler, pred in [("uniform", "uniform", "none"), ("lgs", "lgs", "none")] + [(f"lgs+{p}", "lgs", p) for p in predictors]:
                results[key], seconds[key] = run(seed, sampler, pred)
            budget = min(len(r.candidates) for r in results.values())
            capped = {k: [c for c in r.candidates if c.index < budget] for k, r in results.items()}
            fronts = {k: [cs[i] for i in pareto_front([(c.latency_ms, c.fitness) for c in cs])] for k, cs in capped.items()}
            f_ref = min(c.fitness for cs in capped.values() for c in cs)
            row: dict = {"seed": seed, "evaluated_each": budget, "fitness_ref": f_ref, "seconds": {k: round(v, 1) for k, v in seconds.items()}}
            row["hypervolume"] = {k: normalized_hypervolume(f, lo, hi, fitness_ref=f_ref) for k, f in fronts.items()}
            row["predicted"] = {k: r.predicted for k, r in results.items()}
            uni = [(c.latency_ms, c.fitness) for c in fronts["uniform"]]
            row["vs_uniform_by_tenth"] = {k: tenths_above([(c.latency_ms, c.fitness) for c in f], uni, lo, hi)
                                          for k, f in fronts.items() if k != "uniform"}
            lgs = results["lgs"]
            init = [c for c in lgs.candidates if c.origin == "init"]
            offspring = [c for c in lgs.candidates if c.origin == "offspring"]
            again = None if retest is None else list(retest.map([Arch.from_string(c.arch) for c in offspring]))
            row["predictor_tau_heldout"] = {p: tau_scores(p, init, offspring, encoder, edges, seed=seed, again=again)
                                            for p in scored}
            if retest is not None:
                row["metric_retest"] = {"n": len(offspring), "images": f"{args.val_images}..{2 * args.val_images - 1}",
                                        "tau": kendall_tau([c.fitness for c in offspring], again)}
            row["predictor_tau_online"] = {p: [h.get("predictor_tau") for h in results[f"lgs+{p}"].history[1:]] for p in predictors}
            runs.append(row)
            hv = row["hypervolume"]
            print(f"seed {seed}: {budget} evaluations each; hypervolume " + ", ".join(f"{k} {v:.4f}" for k, v in hv.items())
                  + "; held-out tau " + ", ".join(f"{p} {row['predictor_tau_heldout'][p]['tau']:.3f}" for p in scored)
                  + (f"; metric retest tau {row['metric_retest']['tau']:.3f}" if "metric_retest" in row else ""),
                  file=sys.stderr)
    finally:
        for p in (pool, retest):
            if hasattr(p, "close"):
                p.close()

    keys = list(runs[0]["hypervolume"])
    summary = {
        "hypervolume_mean": {k: float(np.mean([r["hypervolume"][k] for r in runs])) for k in keys},
        "tau_heldout_mean": {p: float(np.mean([r["predictor_tau_heldout"][p]["tau"] for r in runs])) for p in scored},
        "tau_within_group_heldout_mean": {p: float(np.mean([r["predictor_tau_heldout"][p]["tau_within_group"] for r in runs
                                                            if r["predictor_tau_heldout"][p]["tau_within_group"] is not None]))
                                          for p in scored},
        "chosen_on_selection_data": chosen,
    }
    if retest is not None:
        summary["metric_retest_tau_mean"] = float(np.mean([r["metric_retest"]["tau"] for r in runs]))
        summary["tau_vs_two_halves_mean"] = {p: float(np.mean([r["predictor_tau_heldout"][p]["tau_vs_two_halves"] for r in runs]))
                                             for p in scored}
    accept = {}
    for p in predictors:
        k = f"lgs+{p}"
        accept[k] = {
            "tau_ge_0.7": summary["tau_heldout_mean"][p] >= 0.7,
            "hv_ge_lgs_all_seeds": all(r["hypervolume"][k] >= r["hypervolume"]["lgs"] for r in runs),
            "no_tenth_where_uniform_above_all_seeds": all(not r["vs_uniform_by_tenth"][k]["tenths_where_uniform_above"] for r in runs),
        }
    accept["lgs_hv_ge_uniform_all_seeds"] = all(r["hypervolume"]["lgs"] >= r["hypervolume"]["uniform"] for r in runs)
    computed = (memo.computed if args.supernet else sum(m.computed for m in memos.values()))
    result = {
        "space": space.name, "resolution": res, "lat_min_ms": lo, "lat_max_ms": hi,
        "latency_source": lat_source, "fitness_source": fit_source,
        "settings": {"population": args.population, "groups": args.groups, "keep": args.keep, "iterations": args.iterations,
                     "screen_factor": args.screen_factor, "explore": args.explore, "screen_init": args.screen_init, "selection_seed": args.selection_seed,
                     "splits": args.splits, "assisted_searches": predictors, "tau_only": scored[len(predictors):]},
        "choice": choice, "summary": summary, "accept": accept, "runs": runs,
        "fitness_computed": computed, "wall_seconds": round(time.perf_counter() - t_start, 1),
        "host": {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg()},
    }
    write_result(args.out, result)
    print(f"({computed} fitness evaluations computed, {result['wall_seconds']:.0f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
