"""Cell-search methods vs random genotypes on scikit-learn's digits, under one fixed protocol.

For each method (darts, dots, eoinas, msdarts) and search seed: search a genotype, then train it
from scratch under the training protocol below and record the test accuracy. The baseline is the
mean over ``--random`` uniformly random genotypes trained under the same protocol. Optionally
(``--kendall``) the DOTS claim at small scale: for one node of the normal cell, train the cell
once per edge pair (the rest of the DOTS genotype fixed) and compare the stand-alone accuracies
with DOTS's topology weights and with DARTS's edge importance by Kendall τ (thesis: 0.73 vs 0.06).

Every search and training result is cached under ``--work`` (searches resume), so a rerun after a
kill continues. Results go to ``--out`` (JSON) and a markdown table on stdout.

    python bench/cells_digits.py --device cuda --jobs 6 --kendall
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from deploy.fileio import atomic_write_json

METHODS = ["darts", "dots", "eoinas", "msdarts"]


def _search_job(method: str, seed: int, a: dict, work: str) -> dict:
    import torch

    torch.set_num_threads(1)
    from hwnas.cells.cell_search import CellSearchConfig, run_search

    cfg = CellSearchConfig(method=method, data="digits", image_size=a["image_size"], epochs=a["search_epochs"],
                       batch_size=64, channels=a["channels"], layers=a["layers"], seed=seed, arch_lr=a["arch_lr"],
                       device=a["device"])
    r = run_search(cfg, Path(work) / "search" / f"{method}-s{seed}", progress=False)
    return {"method": method, "seed": seed, "genotype": r.genotype.to_dict(), "search_seconds": round(r.seconds, 2)}


def _train_job(name: str, genotype: dict, train_seed: int, a: dict, work: str) -> dict:
    path = Path(work) / "train" / f"{name}-t{train_seed}.json"
    if path.exists():
        return json.loads(path.read_text())
    import torch

    torch.set_num_threads(1)
    from hwnas.cells.classification_data import load_data
    from hwnas.cells.genotype import Genotype
    from hwnas.cells.genotype_training import GenotypeTrainConfig, train_genotype

    data = load_data("digits", a["image_size"])
    cfg = GenotypeTrainConfig(epochs=a["train_epochs"], channels=a["channels"], layers=a["layers"], lr=0.05,
                      seed=train_seed, device=a["device"])
    r = train_genotype(Genotype.from_dict(genotype), data, cfg)
    r["name"] = name
    atomic_write_json(path, r)
    return r


def _mean_std(xs: list[float]) -> dict:
    return {"mean": statistics.fmean(xs), "std": statistics.stdev(xs) if len(xs) > 1 else 0.0, "n": len(xs),
            "values": xs}


def _pair_genotype(base: dict, node: int, pair: tuple[int, int], ops_for: dict) -> dict:
    g = json.loads(json.dumps(base))
    g["normal"][node] = [[ops_for[s], s] for s in pair]
    return g


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cpu")
    p.add_argument("--jobs", type=int, default=1)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--train-seeds", type=int, nargs="+", default=[0], help="training seeds per genotype (averaged)")
    p.add_argument("--methods", nargs="+", choices=METHODS, default=METHODS)
    p.add_argument("--random", type=int, default=5, help="random genotypes in the baseline (0: none)")
    p.add_argument("--search-epochs", type=int, default=10)
    p.add_argument("--train-epochs", type=int, default=15)
    p.add_argument("--image-size", type=int, default=16)
    p.add_argument("--channels", type=int, default=8)
    p.add_argument("--layers", type=int, default=5)
    p.add_argument("--arch-lr", type=float, default=3e-3)
    p.add_argument("--kendall", action="store_true", help="also the DOTS topology-ranking check (node --kendall-node)")
    p.add_argument("--kendall-node", type=int, default=2, help="normal-cell node whose edge pairs are ranked")
    p.add_argument("--genotypes-from", default=None,
                   help="results JSON of an earlier run: reuse its searched genotypes, only retrain")
    p.add_argument("--work", default="runs/bench_cells_digits")
    p.add_argument("--out", default="bench/results/cells_digits.json")
    args = p.parse_args(argv)
    if args.genotypes_from and args.kendall:
        p.error("--kendall needs the search checkpoints; it cannot be combined with --genotypes-from")
    if args.kendall and not {"dots", "darts"} <= set(args.methods):
        p.error("--kendall compares dots with darts: keep both in --methods")
    a = {k: getattr(args, k) for k in ("device", "search_epochs", "train_epochs", "image_size", "channels", "layers", "arch_lr")}
    work = str(Path(args.work).resolve())
    t0 = time.perf_counter()
    ctx = get_context("spawn")  # CUDA cannot be forked
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=ctx) as pool:
        if args.genotypes_from:  # retrain earlier searches' genotypes under this run's training protocol
            prev = json.loads(Path(args.genotypes_from).read_text())
            searches = [{"method": m, "seed": s, "genotype": prev["methods"][m]["genotypes"][f"s{s}"],
                         "search_seconds": prev["methods"][m]["search_seconds_mean"]}
                        for m in args.methods for s in args.seeds]
        else:
            searches = list(pool.map(_search_job, *zip(*[(m, s, a, work) for m in args.methods for s in args.seeds])))
        print(f"searches done in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        from hwnas.cells.genotype import random_genotype

        randoms = [random_genotype(1000 + i).to_dict() for i in range(args.random)]
        jobs = [(f"{r['method']}-s{r['seed']}", r["genotype"]) for r in searches]
        jobs += [(f"random-{i}", g) for i, g in enumerate(randoms)]
        kendall_jobs = []
        if args.kendall:
            import itertools

            from hwnas.cells.darts_space import NUM_INPUTS

            dots0 = next(r for r in searches if r["method"] == "dots" and r["seed"] == args.seeds[0])
            node = args.kendall_node
            pairs = list(itertools.combinations(range(NUM_INPUTS + node), 2))
            ops_for = _kendall_ops(work, dots0, node)
            for pair in pairs:
                kendall_jobs.append((f"kendall-n{node}-{pair[0]}{pair[1]}", _pair_genotype(dots0["genotype"], node, pair, ops_for)))
        all_jobs = [(n, g, ts, a, work) for n, g in jobs + kendall_jobs for ts in args.train_seeds]
        trained = list(pool.map(_train_job, *zip(*all_jobs)))
    acc = {}
    for r in trained:
        acc.setdefault(r["name"], []).append(r["test_accuracy"])
    acc = {k: statistics.fmean(v) for k, v in acc.items()}

    baseline = _mean_std([acc[f"random-{i}"] for i in range(args.random)]) if args.random else None
    methods = {}
    for m in args.methods:
        vals = [acc[f"{m}-s{s}"] for s in args.seeds]
        secs = [r["search_seconds"] for r in searches if r["method"] == m]
        methods[m] = {"test_accuracy": _mean_std(vals), "search_seconds_mean": statistics.fmean(secs),
                      "minus_random_mean": statistics.fmean(vals) - baseline["mean"] if baseline else None,
                      "seeds_above_random_mean": sum(v > baseline["mean"] for v in vals) if baseline else None,
                      "genotypes": {f"s{r['seed']}": r["genotype"] for r in searches if r["method"] == m}}
    result = {
        "protocol": {
            "data": "scikit-learn digits, 1438 train / 359 test (seeded split), bilinear upsampled, 3 channels",
            "search": ({"genotypes_and_search_seconds_from": args.genotypes_from, "seeds": args.seeds}
                       if args.genotypes_from else
                       {"epochs": args.search_epochs, "batch_size": 64, "channels": args.channels, "layers": args.layers,
                        "image_size": args.image_size, "arch_lr": args.arch_lr, "w_lr": 0.025,
                        "split": "training set halved: weights / architecture", "seeds": args.seeds}),
            "train": {"epochs": args.train_epochs, "batch_size": 64, "channels": args.channels, "layers": args.layers,
                      "image_size": args.image_size,
                      "lr": 0.05, "optimizer": "SGD momentum 0.9 wd 3e-4 cosine", "train_seeds": args.train_seeds},
            "random_genotypes": args.random,
            "device": args.device,
        },
        "random": baseline,
        "methods": methods,
        "wall_seconds": round(time.perf_counter() - t0, 1),
    }
    if args.kendall:
        result["kendall"] = _kendall(work, dots0, args.kendall_node, acc, args.seeds[0])
    out = Path(args.out)
    atomic_write_json(out, result)

    print(f"| method | test acc (mean ± std over {len(args.seeds)} search seeds) | − random mean | seeds > random | search s |")
    print("|---|---|---|---|---|")
    for m, r in methods.items():
        t = r["test_accuracy"]
        vs = f"{r['minus_random_mean']:+.4f} | {r['seeds_above_random_mean']}/{len(args.seeds)}" if baseline else "– | –"
        print(f"| {m} | {t['mean']:.4f} ± {t['std']:.4f} | {vs} | {r['search_seconds_mean']:.1f} |")
    if baseline:
        print(f"| random ({args.random}) | {baseline['mean']:.4f} ± {baseline['std']:.4f} | | | |")
    if args.kendall:
        k = result["kendall"]
        print(f"\nKendall τ over {k['pairs']} edge pairs of normal node {k['node']}: "
              f"DOTS β {k['tau_dots']:+.3f}, DARTS edge importance {k['tau_darts']:+.3f}")
    print(f"\nwrote {out} ({result['wall_seconds']} s)")
    return 0


def _load_method(work: str, method: str, seed: int):
    """Rebuild a finished search's method object from its checkpoint (to read β or α)."""
    import torch

    from hwnas.cells.cell_search import CellSearchConfig, create_method
    from hwnas.cells.darts_space import SearchNetwork

    run = Path(work) / "search" / f"{method}-s{seed}"
    cfg = CellSearchConfig(**json.loads((run / "config.json").read_text()))
    state = torch.load(run / "checkpoint.pt", weights_only=True, map_location="cpu")
    net = SearchNetwork(cfg.channels, 10, cfg.layers, cfg.steps)
    m = create_method(method, net, cfg, steps_per_epoch=1)
    m.load_state_dict(state["method"])
    m.begin_epoch(cfg.epochs - 1)
    return m


def _kendall_ops(work: str, dots_run: dict, node: int) -> dict:
    """The op DOTS would put on each incoming edge of ``node`` (its kept op with the larger α)."""
    from hwnas.cells.darts_space import PRIMITIVES, node_edges

    m = _load_method(work, "dots", dots_run["seed"])
    kept = m.kept_ops(m.alpha_normal)
    a = m.alpha_normal.detach()
    return {s: PRIMITIVES[max(kept[e], key=lambda k: a[e, k].item())] for s, e in enumerate(node_edges(node))}


def _kendall(work: str, dots_run: dict, node: int, acc: dict, seed: int) -> dict:
    import itertools

    from scipy.stats import kendalltau

    from hwnas.cells.darts_space import NUM_INPUTS

    dots = _load_method(work, "dots", seed)
    darts = _load_method(work, "darts", seed)
    pairs = list(itertools.combinations(range(NUM_INPUTS + node), 2))
    standalone = [acc[f"kendall-n{node}-{i}{j}"] for i, j in pairs]
    beta = dots.topology_weights("normal", node).tolist()  # in the order of topology_combinations = pairs
    importance = darts.edge_importance("normal")
    from hwnas.cells.darts_space import node_edges

    edges = node_edges(node)
    darts_score = [importance[edges[i]].item() + importance[edges[j]].item() for i, j in pairs]
    tau_dots = kendalltau(beta, standalone).statistic
    tau_darts = kendalltau(darts_score, standalone).statistic
    return {"node": node, "pairs": len(pairs), "pair_list": pairs, "standalone_test_accuracy": standalone,
            "dots_topology_weight": beta, "darts_pair_score": darts_score,
            "tau_dots": float(tau_dots), "tau_darts": float(tau_darts),
            "note": "DARTS pair score = sum of the two edges' largest non-none op weights (seed "
                    f"{seed}); stand-alone = the DOTS genotype with that node's pair replaced, trained once per train seed"}


if __name__ == "__main__":
    sys.exit(main())
