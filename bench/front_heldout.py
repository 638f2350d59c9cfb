"""Are the tenths where uniform's front rises above LGS's real, or the selection images' noise? (issue 16)

``bench/predictor_search.py`` compares fronts by the fitness the searches selected on (max-F on the
first ``--val-images`` validation images). A front's members were chosen *because* they scored high
on those images, so a gap of 0.001 max-F between two fronts in one tenth of the latency range may be
the images' noise rather than a better architecture. This script takes that run's ``--dump`` and
``--out`` JSON, re-scores every front member (first E evaluations of each search, E as there) on
the *next* ``--val-images`` images, which no search saw, and recounts the tenths where uniform's
front is above each other's, on the selection images and on the held-out ones, side by side.

    python bench/front_heldout.py --run bench/results/predictor_search_val240_s14_init50.json \
        --dump runs/ps14/dump50.json --supernet S.pt --data VAL --calib TRAIN
    → --out (default: the run's name + _heldout.json)
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from hwnas.arch import Arch  # noqa: E402
from hwnas.search.pareto import pareto_front  # noqa: E402

from _common import write_result  # noqa: E402  (bench/ is on the path of a script run from it)
from predictor_search import tenths_above  # noqa: E402


def fronts_of(dumped: dict, seed: int, budget: int) -> dict[str, list[tuple[str, float, float]]]:
    """Search name -> its Pareto front over its first ``budget`` candidates, as (arch, latency, fitness)."""
    out = {}
    for key, cands in dumped.items():
        if not key.endswith(f"-seed{seed}"):
            continue
        sampler, pred = key[: -len(f"-seed{seed}")].split("-", 1)
        name = sampler if pred == "none" else f"{sampler}+{pred}"
        cs = [(a, float(lat), float(fit)) for a, lat, fit, *_ in cands[:budget]]
        out[name] = [cs[i] for i in pareto_front([(lat, fit) for _, lat, fit in cs])]
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", required=True, help="predictor_search.py --out JSON")
    ap.add_argument("--dump", required=True, help="predictor_search.py --dump JSON of the same run")
    ap.add_argument("--supernet", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--calib", required=True)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    from hwnas.search.fitness import PoolFitness, file_digest, load_fitness
    from hwnas.space import create

    run = json.loads(Path(args.run).read_text())
    dumped = json.loads(Path(args.dump).read_text())
    fs = run["fitness_source"]
    if fs.get("sha256") and fs["sha256"] != file_digest(args.supernet):
        sys.exit(f"error: {args.supernet} is not the supernet {args.run} was run with (sha256 differs)")
    val_images = int(fs["val_images"])
    space = create(run["space"])
    kw = dict(supernet=args.supernet, space=space, val_dir=args.data, calib_dir=args.calib, resolution=int(run["resolution"]),
              val_images=val_images, calib_batches=int(fs.get("calib_batches", 2)), val_skip=val_images)
    held = PoolFitness(args.workers, **kw) if args.workers > 1 else load_fitness(**kw)
    lo, hi = float(run["lat_min_ms"]), float(run["lat_max_ms"])
    t0 = time.perf_counter()
    rows = []
    for r in run["runs"]:
        seed, budget = int(r["seed"]), int(r["evaluated_each"])
        fronts = fronts_of(dumped, seed, budget)
        archs = sorted({a for f in fronts.values() for a, _, _ in f})
        scores = dict(zip(archs, held.map([Arch.from_string(a) for a in archs]) if hasattr(held, "map")
                          else (held(Arch.from_string(a)) for a in archs)))
        row = {"seed": seed, "front_members_rescored": len(archs), "selection": {}, "heldout": {}}
        uni_sel = [(lat, fit) for _, lat, fit in fronts["uniform"]]
        uni_held = [(lat, scores[a]) for a, lat, _ in fronts["uniform"]]
        for name, f in fronts.items():
            if name == "uniform":
                continue
            row["selection"][name] = tenths_above([(lat, fit) for _, lat, fit in f], uni_sel, lo, hi)
            row["heldout"][name] = tenths_above([(lat, scores[a]) for a, lat, _ in f], uni_held, lo, hi)
        # the same re-scoring, turned round: where does each front rise above uniform's?
        row["heldout_reverse"] = {name: tenths_above(uni_held, [(lat, scores[a]) for a, lat, _ in f], lo, hi)
                                  for name, f in fronts.items() if name != "uniform"}
        rows.append(row)
        print(f"seed {seed}: " + "; ".join(
            f"{n} uniform above in tenths {row['selection'][n]['tenths_where_uniform_above']} (selection) vs "
            f"{row['heldout'][n]['tenths_where_uniform_above']} (held out), it above uniform in "
            f"{row['heldout_reverse'][n]['tenths_where_uniform_above']} (held out)" for n in row["selection"]), file=sys.stderr)
    if hasattr(held, "close"):
        held.close()
    names = list(rows[0]["selection"]) if rows else []
    result = {"run": args.run, "dump": args.dump, "heldout_images": f"{val_images}..{2 * val_images - 1}",
              "lat_min_ms": lo, "lat_max_ms": hi, "seeds": rows,
              "summary": {n: {"tenths_uniform_above_selection": sum(len(r["selection"][n]["tenths_where_uniform_above"]) for r in rows),
                              "tenths_uniform_above_heldout": sum(len(r["heldout"][n]["tenths_where_uniform_above"]) for r in rows),
                              "tenths_it_above_uniform_heldout": sum(len(r["heldout_reverse"][n]["tenths_where_uniform_above"]) for r in rows)}
                          for n in names},
              "wall_seconds": round(time.perf_counter() - t0, 1)}
    out = Path(args.out) if args.out else Path(args.run).with_name(Path(args.run).stem + "_heldout.json")
    write_result(out, result)
    print(json.dumps(result["summary"], indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
