"""Where does the time outside the operators go: a whole model against its blocks' context runs?

Issue 12: on the Intel host an ExecuTorch XNNPACK table of inas-tiny at 64 px predicts whole models
~10-12 % low (τ 0.995: a uniform bias), while ETDump's operator times of the blocks in context sum
*above* the whole model's (``bench/context_kernels.py``). A block's context cost, as
``lut.measure.BlockMeter`` charges it, is exactly its profiled kernels + its nodes x the per-node
time outside the kernels of its context run (``Attribution.share_with_dispatch``) + the I/O of its
sides that face the model's. A whole model is one call + its I/O + its kernels + its nodes x its own
per-node outside time. This script measures both sides of that identity in one process, each term
in units of the reference timed in the same window, so a bias can be pinned on one term: kernels
(in context vs in the model), node counts, or the outside time per node.

Every block of each sampled architecture is measured by the build's own ``BlockMeter`` (default
build protocol and reference, the space's cache plan); each whole model is the artifact
``hwnas export`` makes, timed interleaved with the same reference and profiled the same way, before
and after its blocks (the mean of the two; their difference is the retest).

    python bench/context_outside.py --backend executorch-xnnpack --space inas-tiny --resolution 64 --archs 3 --seed 73
    → bench/results/context_outside_<space>_<res>_<backend>_s<seed>_a<archs>.json and .md
"""

from __future__ import annotations

import argparse
import functools
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import build_and_model_profilers, write_result  # noqa: E402  (bench/ is on the path of a script run from it)
from profilers.fingerprint import cpu_signature  # noqa: E402


VARIANTS = ("build", "between-smallest", "between-own", "flush-<MB>")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="executorch-xnnpack", help="a backend with a per-node profiler")
    ap.add_argument("--space", default="inas-tiny")
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--archs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=73)
    ap.add_argument("--tag", default="", help="appended to the result files' names (runs of other variants or hosts)")
    ap.add_argument("--variants", default="build", help=f"how context runs are preceded, comma-separated: {', '.join(VARIANTS)}")
    args = ap.parse_args(argv)

    import torch

    from hwnas.cli.lut import _cold_context_plan, _reference_for, _whole_model
    from hwnas.space import create
    from lut.measure import NODE_PROFILE_RUNS, BlockMeter, _nbytes

    t0 = time.time()
    load_before = os.getloadavg()[0]
    space = create(args.space)
    res = args.resolution
    block_prof, model_prof = build_and_model_profilers(args.backend)
    reference = _reference_for(space, [res])
    model_bytes, model_between = _cold_context_plan(space, [res], profiler=block_prof)
    variants = [v for v in args.variants.split(",") if v]
    unknown = {v for v in variants if not v.startswith("flush-")} - set(VARIANTS)
    if unknown:
        ap.error(f"--variants: unknown {sorted(unknown)}; allowed: {', '.join(VARIANTS)}")
    rng = random.Random(args.seed)
    archs = [space.sample(rng, resolution=res) for _ in range(args.archs)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="hwnas-outside-") as d:
        d = Path(d)

        def meter_for(variant: str, arch=None) -> BlockMeter:
            keys = [b.key for b in space.all_blocks([res])] + ([b.key for b in space.blocks(arch)] if arch else [])
            if variant.startswith("flush-"):  # a data flush of that many MB before every context run, forced
                nbytes = int(float(variant[len("flush-"):]) * (1 << 20))
                return BlockMeter(block_prof, d / variant, seed=args.seed, model_bytes={k: nbytes for k in set(keys)},
                                  reference=reference)
            if variant == "build":  # what `hwnas lut build` does for this backend
                return BlockMeter(block_prof, d / variant, seed=args.seed, model_bytes=model_bytes,
                                  model_between=model_between, reference=reference)
            # an untimed run of a whole model before every context run: the space's smallest model at
            # this resolution, or (a diagnostic bound that a build cannot use) the block's own model
            builder = (functools.partial(_whole_model, space, space.smallest(res)) if variant == "between-smallest"
                       else functools.partial(_whole_model, space, arch))
            return BlockMeter(block_prof, d / f"{variant}{id(arch)}", seed=args.seed,
                              model_between={k: builder for k in set(keys)}, reference=reference)

        meters = {v: meter_for(v) for v in variants if v != "between-own"}

        first = meters.get("build") or next(iter(meters.values()), None) or meter_for("build")
        ref = (first.ref_path, first.ref_shapes)
        sfx = block_prof.artifact_suffix

        def whole_terms(path, in_shape, out_bytes) -> dict:
            got = model_prof.measure_together({"whole": (path, [in_shape]), "ref": ref}, seed=len(rows))
            ref_ms = got["ref"].median_ms
            prof = model_prof.node_profile(path, [in_shape], runs=NODE_PROFILE_RUNS * 5)
            call_ms = first.call_ms * ref_ms / first.call_ref_ms
            io_ms = first.io_cost(0).ms(_nbytes([in_shape]) + out_bytes, ref_ms)
            kernels_ms = prof.total_us / 1e3
            outside_ms = got["whole"].median_ms - call_ms - io_ms - kernels_ms
            return {"run": got["whole"].median_ms / ref_ms, "call": call_ms / ref_ms, "io": io_ms / ref_ms,
                    "kernels": kernels_ms / ref_ms, "nodes": len(prof.nodes), "outside": outside_ms / ref_ms}

        for i, arch in enumerate(archs):
            here = dict(meters)
            if "between-own" in variants:
                here["between-own"] = meter_for("between-own", arch)
            module, inputs = _whole_model(space, arch)
            with torch.no_grad():
                y = module(*inputs)
            ys = tuple(y) if isinstance(y, (tuple, list)) else (y,)
            out_bytes = _nbytes([tuple(t.shape) for t in ys])
            path = model_prof.export(module, inputs, d / f"whole{i}{sfx}")
            in_shape = tuple(inputs[0].shape)
            before = whole_terms(path, in_shape, out_bytes)
            blocks = space.blocks(arch)
            arts = first.export_ahead(blocks, d / "cache", progress=False)
            acc = {v: {"charged": 0.0, "kernels": 0.0, "nodes": 0, "outside_charged": 0.0, "facing_io": 0.0,
                       "per_node_outside": []} for v in here}
            order = random.Random(f"{args.seed}|{i}")
            for b in blocks:
                for v in order.sample(list(here), len(here)):  # variants in random order, block by block
                    meter = here[v]
                    m, extra = meter.measure(b, arts[b.key])
                    ref_ms = extra["ref_ms"]
                    last = meter.last
                    a = last["attribution"]
                    overhead_ms = last["call_ms"] + last["io_ms"]
                    outside_ms = max(last["run_ms"] - overhead_ms - (a.block_us + a.neighbour_us) / 1e3, 0.0)
                    nodes = len(a.block_ops) + len(a.neighbour_ops)
                    per_node = outside_ms / nodes if nodes else 0.0
                    s = acc[v]
                    s["per_node_outside"].append(per_node / ref_ms)
                    s["charged"] += extra["context_ms"] / ref_ms
                    s["kernels"] += a.block_us / 1e3 / ref_ms
                    s["nodes"] += len(a.block_ops)
                    s["outside_charged"] += len(a.block_ops) * per_node / ref_ms
                    s["facing_io"] += last["facing_io_ms"] / ref_ms
            after = whole_terms(path, in_shape, out_bytes)
            whole = {k: (before[k] + after[k]) / 2 for k in ("run", "call", "io", "kernels", "outside")}
            whole["nodes"] = before["nodes"]
            whole["retest"] = after["run"] / before["run"] - 1
            whole["outside_per_node"] = whole["outside"] / max(whole["nodes"], 1)
            row = {"arch": arch.to_string(), "blocks": len(blocks), "whole": whole, "variants": {}}
            for v, s in acc.items():
                s["per_node_outside_median"] = statistics.median(s.pop("per_node_outside"))
                s["predicted"] = whole["call"] + s["charged"]
                s["error"] = s["predicted"] / whole["run"] - 1
                row["variants"][v] = s
            rows.append(row)
            print(f"arch {i}: whole run {whole['run']:.3f} = call {whole['call']:.3f} + io {whole['io']:.3f} + kernels "
                  f"{whole['kernels']:.3f} ({whole['nodes']} nodes) + outside {whole['outside']:.3f} "
                  f"({whole['outside_per_node']:.4f} per node); retest {whole['retest']:+.1%}", flush=True)
            for v, s in row["variants"].items():
                print(f"    {v:17s} error {s['error']:+.1%}: kernels {s['kernels']:.3f} ({s['nodes']} nodes) + outside "
                      f"{s['outside_charged']:.3f} (context median per node {s['per_node_outside_median']:.4f}) + facing io "
                      f"{s['facing_io']:.3f}", flush=True)
    result = {"backend": args.backend, "space": args.space, "resolution": res, "seed": args.seed,
              "reference": reference, "call_ms": first.call_ms, "minutes": (time.time() - t0) / 60,
              "host": {"cpus": os.cpu_count(), "cpu": cpu_signature(), "load_before": load_before}, "archs": rows}
    stem = f"context_outside_{args.space}_{res}_{args.backend}_s{args.seed}_a{args.archs}{args.tag}"
    out = Path(__file__).resolve().parent / "results"
    write_result(out / f"{stem}.json", result)
    lines = [f"# Time outside the operators: whole model vs its blocks in context ({args.space} at {res} px, "
             f"{args.backend} 1 thread)", "",
             f"`python bench/context_outside.py --backend {args.backend} --space {args.space} --resolution {res} "
             f"--archs {args.archs} --seed {args.seed} --variants {args.variants}"
             + (f" --tag {args.tag}" if args.tag else "") + f"`; reference `{reference}`; "
             f"{result['minutes']:.1f} min on {cpu_signature()}, load {load_before:.2f} before. Every term in units of the reference timed "
             "in the same window; a variant is how the context runs were preceded (`build`: as `hwnas lut build` "
             "does for this backend).", "",
             "| arch | measured | variant | error | kernels (nodes) | outside | outside per node (context median) | "
             "facing io |", "|---|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows):
        w = r["whole"]
        lines.append(f"| {i} | whole model (retest {w['retest']:+.1%}) | | run {w['run']:.3f} = call {w['call']:.3f} "
                     f"+ io {w['io']:.3f} + … | {w['kernels']:.3f} ({w['nodes']}) | {w['outside']:.3f} | "
                     f"{w['outside_per_node']:.4f} | |")
        for v, s in r["variants"].items():
            lines.append(f"| {i} | blocks in context | {v} | {s['error']:+.1%} | {s['kernels']:.3f} ({s['nodes']}) | "
                         f"{s['outside_charged']:.3f} | {s['per_node_outside_median']:.4f} | {s['facing_io']:.3f} |")
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
