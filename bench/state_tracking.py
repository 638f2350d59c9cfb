"""Do a table's blocks slow down with the drift reference as much as a whole model does?

A table stores each block's in-context cost as a ratio to the reference timed in the same window,
and ``lut validate`` scores a whole model by its ratio to the same reference. That cancels the
machine's slow spells only if every artifact slows by the reference's factor. On the Intel host
the reference ran in three states (~1.05, ~1.4, ~1.9 ms for inas-tiny's own model on XNNPACK),
and both ORT and XNNPACK tables predicted whole models ~8-9 % low after compensation. If small
blocks slow *less* than the reference in its slow states, a block timed in a slow window gets a low
ratio, and a table built mostly in slow windows predicts low: a bias no block cost explains.

One process, the table's runtime and thread count: the reference, one sampled whole model (exported
as ``hwnas export`` does) and ``--blocks`` of its blocks' context graphs (as a build exports them)
are timed in alternating bursts of ``--burst`` runs for ``--seconds``, each artifact's burst
followed by a reference burst. Per artifact: the slope of log(its burst median) on log(the next
reference burst's median) (1.0: it tracks the reference exactly), and its ratio to the reference in
the reference's slow bursts over its fast ones (both cut at fixed multiples of the reference's
5th percentile, set before any run: fast <= 1.15x, slow >= 1.5x).

    .venv/bin/python bench/state_tracking.py --backend executorch-xnnpack --seconds 240
    → bench/results/state_tracking_<backend><threads>_<space>_<res>.{json,md}
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import build_and_model_profilers, write_result  # noqa: E402

FAST, SLOW = 1.15, 1.5  # reference states, as multiples of its 5th-percentile burst (fixed before any run)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="executorch-xnnpack")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--space", default="inas-tiny")
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--blocks", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=240.0)
    ap.add_argument("--burst", type=int, default=20)
    ap.add_argument("--seed", type=int, default=35)
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    from tqdm import tqdm

    from hwnas.cli.lut import _reference_for
    from hwnas.model import SODNet, for_export
    from hwnas.space import create
    from lut.context import in_context
    from lut.reference import reference_model

    torch.set_num_threads(1)
    block_prof, model_prof = build_and_model_profilers(args.backend, args.threads)
    space = create(args.space)
    res = args.resolution
    ref_name = _reference_for(space, [res])
    arch = space.sample(random.Random(args.seed), resolution=res)
    blocks = list(space.blocks(arch))
    picks = sorted({round(i * (len(blocks) - 1) / max(args.blocks - 1, 1)) for i in range(args.blocks)})
    sfx = block_prof.artifact_suffix
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)

        def export(prof, module, inputs, stem):
            path = prof.export(module, tuple(inputs), d / f"{stem}{sfx}")
            return prof.prepare(path, [tuple(t.shape) for t in inputs])

        runs = {"reference": export(block_prof, *reference_model(ref_name), "ref")}
        x = torch.randn(1, 3, res, res, generator=torch.Generator().manual_seed(0))
        runs["whole model"] = export(model_prof, for_export(SODNet(space, arch)), (x,), "whole")
        for j in tqdm(picks, desc="exporting blocks", unit="block"):
            module, inputs = in_context(blocks[j])
            runs[f"{blocks[j].kind} {j}: {blocks[j].key}"] = export(block_prof, module, inputs, f"c{j}")

        def burst(fn, n):
            ts = []
            for _ in range(n):
                t = time.perf_counter()
                fn()
                ts.append(time.perf_counter() - t)
            return float(np.median(ts)) * 1e3

        names = [k for k in runs if k != "reference"]
        for _ in range(50):  # warm every artifact
            for fn in runs.values():
                fn()
        samples = {k: [] for k in names}
        order_rng = random.Random(args.seed)  # the artifacts' order in each cycle
        t0 = time.perf_counter()
        with tqdm(total=int(args.seconds), desc="timing", unit="s") as bar:
            while (el := time.perf_counter() - t0) < args.seconds:
                order = names[:]
                order_rng.shuffle(order)
                for k in order:
                    ms = burst(runs[k], args.burst)
                    samples[k].append((time.perf_counter() - t0, ms, burst(runs["reference"], args.burst)))
                bar.update(int(el) - bar.n)
    ref_all = np.array([r for v in samples.values() for _, _, r in v])
    p5 = float(np.percentile(ref_all, 5))
    rows = {}
    for k, v in samples.items():
        a = np.array(v)
        ms, ref = a[:, 1], a[:, 2]
        ratio = ms / ref
        fast, slow = ref <= FAST * p5, ref >= SLOW * p5
        slope = float(np.polyfit(np.log(ref), np.log(ms), 1)[0]) if np.ptp(np.log(ref)) > 0 else float("nan")
        rows[k] = {"bursts": len(a), "median_ms": float(np.median(ms)), "slope": slope,
                   "ratio_fast": float(np.median(ratio[fast])) if fast.any() else None,
                   "ratio_slow": float(np.median(ratio[slow])) if slow.any() else None,
                   "fast_bursts": int(fast.sum()), "slow_bursts": int(slow.sum())}
        if rows[k]["ratio_fast"] and rows[k]["ratio_slow"]:
            rows[k]["slow_over_fast"] = rows[k]["ratio_slow"] / rows[k]["ratio_fast"]
    result = {"backend": args.backend, "threads": args.threads, "space": args.space, "resolution": res,
              "reference": ref_name, "arch": str(arch), "seed": args.seed, "seconds": args.seconds,
              "burst": args.burst, "reference_p5_ms": p5, "fast_cut": FAST, "slow_cut": SLOW,
              "reference_ms": {"p5": p5, "median": float(np.median(ref_all)), "p95": float(np.percentile(ref_all, 95))},
              "host": {"cpus": os.cpu_count(), "load_before": load_before, "load_after": os.getloadavg(),
                       "device": block_prof.device_info().get("cpu_model")},
              "artifacts": rows}
    stem = f"state_tracking_{args.backend}{args.threads}_{args.space}_{res}"
    out = Path(__file__).resolve().parent / "results" / f"{stem}.json"
    write_result(out, result)
    import pandas as pd  # every burst, for plots and other cuts: (artifact, seconds, ms, reference ms)

    pd.DataFrame([(k, t, ms, r) for k, v in samples.items() for t, ms, r in v],
                 columns=["artifact", "t_s", "ms", "reference_ms"]).to_csv(out.with_name(f"{stem}_bursts.csv.gz"), index=False)
    lines = [f"# Do blocks slow down with the reference? {args.space} at {res} px, {args.backend} {args.threads} thread(s)", "",
             f"`python bench/state_tracking.py --backend {args.backend} --threads {args.threads} --space {args.space} "
             f"--resolution {res} --blocks {args.blocks} --seconds {args.seconds:g} --burst {args.burst} --seed {args.seed}`; "
             f"{result['host']['device']}, {os.cpu_count()} CPUs, load {load_before[0]:.2f} before.", "",
             f"Reference `{ref_name}`: burst medians p5 {p5:.4f} ms, median {np.median(ref_all):.4f}, "
             f"p95 {np.percentile(ref_all, 95):.4f} ms; fast bursts <= {FAST}x p5, slow >= {SLOW}x p5.", "",
             "| artifact | median ms | bursts (fast / slow) | slope of log ms on log reference | ratio fast | ratio slow | slow / fast |",
             "|---|---|---|---|---|---|---|"]
    for k, r in rows.items():
        f = lambda v, p=4: "–" if v is None else f"{v:.{p}f}"  # noqa: E731
        lines.append(f"| {k} | {r['median_ms']:.4f} | {r['bursts']} ({r['fast_bursts']} / {r['slow_bursts']}) | "
                     f"{r['slope']:.2f} | {f(r['ratio_fast'])} | {f(r['ratio_slow'])} | {f(r.get('slow_over_fast'), 3)} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
