"""Does the drift reference run at one speed in a build's windows and in a validation's? A/B in one run.

A table states each block's cost as its ratio to the reference timed in the same window, times the
reference's speed over the build; ``lut validate`` divides a whole model by the reference timed in
the model's window. If the reference runs slower beside a block (the build's window: the isolated
block, the block in context after its cache flush or model run) than beside a whole model (the
validation's window), every ratio of the build is low by that factor and so is every prediction: a
bias no block cost explains, and the same on every build.

For ``--cycles`` cycles, in a fresh random order each: one build window (``lut.measure.BlockMeter``
exactly as ``hwnas lut build`` makes it: reference, cold-context plan, I/O model) of a random block of
``--blocks``; the same block's window without its flush or model run (what the cold context adds);
and one validation window (``profilers.Profiler.measure_together`` of a whole model as ``hwnas
export`` writes it and the same reference file) of a random model of ``--models``. Per cycle, the
reference's median in each build window over the one in the validation window: the machine's state
is shared by the three windows of a cycle, so their ratio is the neighbours' effect alone.

    python bench/reference_windows.py --space inas-tiny --resolution 64 --cycles 60 --seed 42
    → bench/results/reference_windows_<backend><threads>_<space>_<res>.{json,md}
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import build_and_model_profilers, write_result  # noqa: E402  (bench/ is on the path of a script run from it)

KINDS = ("build", "build_warm", "validation")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="onnxruntime-cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--space", default="inas-tiny")
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--blocks", type=int, default=16, help="blocks drawn from the space at --resolution")
    ap.add_argument("--models", type=int, default=6, help="whole models (sampled archs)")
    ap.add_argument("--cycles", type=int, default=60)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--settle-ms", type=float, default=None, help="Protocol.settle_ms (default: the build's)")
    ap.add_argument("--flush-threads", type=int, default=None, help="Protocol.flush_threads (default: the build's; 0: the runtime's threads)")
    ap.add_argument("--reference-settle-runs", type=int, default=None,
                    help="Protocol.reference_settle_runs (default: the build's)")
    ap.add_argument("--reference-every", type=int, default=None, help="Protocol.reference_every (default: the build's)")
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    from tqdm import tqdm

    from hwnas.cli.lut import BUILD_PROTOCOL, _cold_context_plan, _reference_for
    from hwnas.model import SODNet, for_export
    from hwnas.space import create
    from lut.measure import BlockMeter

    torch.set_num_threads(args.threads)
    settle = {} if args.settle_ms is None else {"settle_ms": args.settle_ms}
    if args.reference_settle_runs is not None:
        settle["reference_settle_runs"] = args.reference_settle_runs
    if args.flush_threads is not None:
        settle["flush_threads"] = args.flush_threads
    if args.reference_every is not None:
        settle["reference_every"] = args.reference_every
    ref_settle_runs = settle.get("reference_settle_runs", BUILD_PROTOCOL.get("reference_settle_runs", 0))
    block_prof, model_prof = build_and_model_profilers(args.backend, args.threads, **settle)
    space = create(args.space)
    res = [args.resolution]
    rng = random.Random(args.seed)
    blocks = rng.sample(space.all_blocks(res), args.blocks)
    archs = [space.sample(rng, resolution=args.resolution) for _ in range(args.models)]
    reference = _reference_for(space, res)
    model_bytes, model_between = _cold_context_plan(space, res, profiler=block_prof)
    t0 = time.time()
    rows = []
    with tempfile.TemporaryDirectory(prefix="hwnas-refwin-") as d:
        d = Path(d)
        meter = BlockMeter(block_prof, d / "work", seed=args.seed, model_bytes=model_bytes,
                           model_between=model_between, reference=reference)
        meter.measure_io(blocks)
        arts = meter.export_ahead(blocks, d / "blocks")
        ref = (meter.ref_path, meter.ref_shapes)  # one reference file for every window
        x = torch.randn(1, 3, args.resolution, args.resolution, generator=torch.Generator().manual_seed(0))
        models = [(model_prof.export(for_export(SODNet(space, a)).eval(), (x,), d / f"model{i}{model_prof.artifact_suffix}"),
                   [tuple(x.shape)]) for i, a in enumerate(archs)]

        def window(kind: str, c: int) -> tuple[str, float]:
            seed = args.seed * 100_003 + c * 7 + KINDS.index(kind)
            if kind == "validation":
                i = rng.randrange(len(models))
                got = model_prof.measure_together({"model": models[i], "ref": ref}, seed=seed, reference="ref")
                return f"model {i}", got["ref"].median_ms
            b = rng.choice(blocks)
            a = arts[b.key]
            if kind == "build":
                return b.key, meter.measure(b, a, window=c)[1]["ref_ms"]
            together = {"block": (a.isolated, list(b.input_shapes)), "ref": ref}
            if a.context is not None:
                together["context"] = (a.context, list(b.input_shapes))
            return b.key, block_prof.measure_together(together, seed=seed, reference="ref")["ref"].median_ms

        for c in tqdm(range(args.cycles), desc="cycles", unit="cycle"):
            order = list(KINDS)
            rng.shuffle(order)
            for pos, kind in enumerate(order):
                what, ref_ms = window(kind, c)
                rows.append({"cycle": c, "position": pos, "kind": kind, "what": what, "ref_ms": ref_ms})

    by = {(r["cycle"], r["kind"]): r["ref_ms"] for r in rows}
    out = {"argv": sys.argv[1:], "device": block_prof.device_info().get("cpu_model"), "reference": reference,
           "minutes": (time.time() - t0) / 60, "rows": rows, "ratios": {}}
    for kind in ("build", "build_warm"):
        lr = np.log([by[(c, kind)] / by[(c, "validation")] for c in range(args.cycles)])
        boot = np.random.default_rng(args.seed).choice(lr, (2000, lr.size))
        lo, hi = np.percentile(np.median(boot, axis=1), [2.5, 97.5])
        out["ratios"][kind] = {"median": float(np.exp(np.median(lr))), "ci95": [float(np.exp(lo)), float(np.exp(hi))],
                               "p10": float(np.exp(np.percentile(lr, 10))), "p90": float(np.exp(np.percentile(lr, 90))),
                               "above_1": int((lr > 0).sum()), "n": int(lr.size)}
    refs = {k: float(np.median([r["ref_ms"] for r in rows if r["kind"] == k])) for k in KINDS}
    out["reference_median_ms"] = refs
    name = f"reference_windows_{args.backend}{args.threads}_{args.space}_{args.resolution}"
    if args.settle_ms is not None:
        name += f"_settle{args.settle_ms:g}"
    if ref_settle_runs:  # results before the field existed carry no suffix
        name += f"_refsettle{ref_settle_runs}"
    if block_prof.flush_threads > 1:  # the flush split over threads (0: the runtime's)
        name += f"_flush{block_prof.flush_threads}t"
    if block_prof.protocol.reference_every > 1:  # results before the field existed carry no suffix
        name += f"_every{block_prof.protocol.reference_every}"
    path = Path(__file__).resolve().parent / "results" / f"{name}.json"
    write_result(path, out)
    lines = [f"# The drift reference in build windows vs validation windows: {args.space} at {args.resolution} px, "
             f"{args.backend} {args.threads} thread(s)", "",
             f"`python bench/reference_windows.py {' '.join(sys.argv[1:])}`; {out['minutes']:.1f} min; "
             f"{out['device']}; reference `{reference}`.", "",
             "Per cycle (the three windows in a random order, back to back): the reference's median in a build "
             "window over its median in the validation window of the same cycle.", "",
             "| build window | median ratio | 95 % CI (bootstrap) | p10 | p90 | cycles above 1 |", "|---|---|---|---|---|---|"]
    labels = {"build": "as `hwnas lut build` (BlockMeter.measure: cold context)",
              "build_warm": "the same block, no flush or model run before its context runs"}
    for kind, v in out["ratios"].items():
        lines.append(f"| {labels[kind]} | **{v['median']:.4f}** | {v['ci95'][0]:.4f}–{v['ci95'][1]:.4f} "
                     f"| {v['p10']:.4f} | {v['p90']:.4f} | {v['above_1']} / {v['n']} |")
    lines += ["", "Reference medians over all windows: " + ", ".join(f"{k} {v:.4f} ms" for k, v in refs.items()) + "."]
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
