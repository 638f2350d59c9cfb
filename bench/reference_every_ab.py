"""Does the reference's cadence (``Protocol.reference_every``) move a validation's targets? A/B in one run.

A table's prediction is scored against each whole model's drift-compensated time: the model's median
over the reference's median in the same window, times the table's reference speed. Where the
reference takes a turn every other cycle (recording two turns' runs there) instead of every cycle,
its recorded runs sit later after a switch from the model; if that reads the reference at another
speed beside whole models, every target moves by that factor and so does the bias of a table.

For ``--rounds`` rounds, every model (those of a validation report, ``--report``, or ``--n`` sampled
from the table's space with ``--seed``) is measured in two windows back to back, one per cadence, in a
random order: the machine's state is shared by the pair, so their ratio is the cadence's effect alone.
Reports, per cadence, the table's prediction against the targets (MAPE, bias) and, per model, the
ratio of the two cadences' targets.

    python bench/reference_every_ab.py --lut runs/s46/sod-ort1.parquet --report \\
        bench/results/lut_accuracy_sod-ort1-s46/report.json --n 20 --name sod-ort1-s46
    → bench/results/reference_every_ab_<name>.{json,md}
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import random
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import write_result  # noqa: E402  (bench/ is on the path of a script run from it)

CADENCES = (1, 2)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lut", required=True)
    ap.add_argument("--report", default=None, help="a validation's report.json: its models (default: sample --n)")
    ap.add_argument("--n", type=int, default=20, help="models (spread over the report's latency range)")
    ap.add_argument("--resolution", type=int, default=320, help="input size of sampled models (without --report)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--runs", type=int, default=30, help="timed runs per whole model (as bench/lut_accuracy.py)")
    ap.add_argument("--name", required=True)
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    from tqdm import tqdm

    from hwnas.arch import Arch
    from hwnas.model import SODNet, for_export
    from hwnas.space import create
    from lut.reference import reference_model
    from lut.table import LatencyTable
    from lut.validate import spread, table_profiler

    table = LatencyTable.read(args.lut)
    space = create(table.space["name"])
    rng = random.Random(args.seed)
    if args.report:
        names = [m["name"] for m in json.loads(Path(args.report).read_text())["models"]]
        archs = [Arch.from_string(n) for n in names]
    else:
        archs = [space.sample(rng, resolution=args.resolution) for _ in range(4 * args.n)]
    keys = [[b.key for b in space.blocks(a)] for a in archs]
    predicted = [table.model_ms(k) for k in keys]
    chosen = spread(predicted, min(args.n, len(archs)))
    base = table_profiler(table, runs=args.runs, artifacts={"exporter": "dynamo"})  # as `hwnas lut validate`
    profs = {}
    for every in CADENCES:  # the same profiler but for the reference's cadence
        profs[every] = copy.copy(base)
        profs[every].protocol = dataclasses.replace(base.protocol, reference_every=every)
    t0 = time.time()
    rows = []
    with tempfile.TemporaryDirectory(prefix="hwnas-every-ab-") as d:
        d = Path(d)
        ref_module, ref_inputs = reference_model(table.reference_name)
        ref = (base.exporting_as(table.backend.get("artifacts")).export(ref_module, ref_inputs, d / f"ref{base.artifact_suffix}"),
               [tuple(t.shape) for t in ref_inputs])
        models = {}
        for i in tqdm(chosen, desc="exporting whole models", unit="model"):
            a = archs[i]
            x = torch.randn(1, 3, a.resolution, a.resolution, generator=torch.Generator().manual_seed(0))
            models[i] = (base.export(for_export(SODNet(space, a)).eval(), (x,), d / f"model{i}{base.artifact_suffix}"),
                         [tuple(x.shape)])
        todo = [(r, i) for r in range(args.rounds) for i in rng.sample(chosen, len(chosen))]
        for r, i in tqdm(todo, desc=f"models x {args.rounds} rounds, both cadences", unit="pair"):
            for every in rng.sample(CADENCES, len(CADENCES)):
                got = profs[every].measure_together({"model": models[i], "ref": ref}, reference="ref",
                                                     seed=zlib.crc32(f"{args.seed}|{i}|{r}|{every}".encode()))
                rows.append({"model": i, "round": r, "every": every, "model_ms": got["model"].median_ms,
                             "ref_ms": got["ref"].median_ms})

    out = {"argv": sys.argv[1:], "lut": args.lut, "device": base.device_info().get("cpu_model"),
           "minutes": (time.time() - t0) / 60, "rows": rows, "reference_ms": table.reference_ms, "cadences": {}}
    target = {}
    for every in CADENCES:
        target[every] = {i: float(np.median([r["model_ms"] / r["ref_ms"] for r in rows if r["model"] == i and r["every"] == every]))
                         * table.reference_ms for i in chosen}
        err = np.array([predicted[i] / target[every][i] - 1 for i in chosen]) * 100
        ref_med = float(np.median([r["ref_ms"] for r in rows if r["every"] == every]))
        out["cadences"][every] = {"mape_pct": float(np.mean(np.abs(err))), "bias_pct": float(np.mean(err)),
                                  "within_5_pct": float(np.mean(np.abs(err) <= 5) * 100), "reference_median_ms": ref_med}
    lr = np.log([target[2][i] / target[1][i] for i in chosen])
    boot = np.random.default_rng(args.seed).choice(lr, (2000, lr.size))
    lo, hi = np.percentile(np.median(boot, axis=1), [2.5, 97.5])
    pair = [np.log(a["ref_ms"] / b["ref_ms"]) for a, b in zip(
        sorted((r for r in rows if r["every"] == 2), key=lambda r: (r["model"], r["round"])),
        sorted((r for r in rows if r["every"] == 1), key=lambda r: (r["model"], r["round"])))]
    out["target_ratio_every2_over_1"] = {"median": float(np.exp(np.median(lr))), "ci95": [float(np.exp(lo)), float(np.exp(hi))],
                                         "n": int(lr.size)}
    out["reference_ratio_every2_over_1"] = float(np.exp(np.median(pair)))
    stem = f"reference_every_ab_{args.name}"
    write_result(Path(__file__).resolve().parent / "results" / f"{stem}.json", out)
    t = out["target_ratio_every2_over_1"]
    lines = [f"# Reference cadence A/B on a validation: `{args.lut}`", "",
             f"`python bench/reference_every_ab.py {' '.join(sys.argv[1:])}`; {out['minutes']:.1f} min; {out['device']}; "
             f"{len(chosen)} models x {args.rounds} rounds, each measured with both cadences back to back in a random order.", "",
             "| reference turn | prediction MAPE | bias | within ±5 % | reference median |", "|---|---|---|---|---|"]
    for every, v in out["cadences"].items():
        lines.append(f"| every {'cycle' if every == 1 else f'{every} cycles'} | {v['mape_pct']:.2f} % | {v['bias_pct']:+.2f} % "
                     f"| {v['within_5_pct']:.0f} % | {v['reference_median_ms']:.4f} ms |")
    lines += ["", f"Per model, target with the reference every 2 cycles over every cycle: **{t['median']:.4f}** "
                  f"(95 % CI {t['ci95'][0]:.4f}–{t['ci95'][1]:.4f}, n {t['n']}); the reference's median, paired windows: "
                  f"{out['reference_ratio_every2_over_1']:.4f}."]
    (Path(__file__).resolve().parent / "results" / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
