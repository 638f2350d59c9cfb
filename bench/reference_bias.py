"""Does the drift reference itself bias a table's predictions? Both references in every window.

A table stores each block's context cost as a ratio to the reference timed in the same window,
and ``lut validate`` scores a whole model by its ratio to the same reference in the model's window.
If the reference runs at a different speed beside blocks than beside whole models (its caches after
a neighbour, its memory traffic against a model's), every prediction moves by that factor: a bias
no block cost explains. The 256 px reference (``lut.reference``, adopted for 320 px tables for its
lower retest) came with a +4.4 % bias on the thirteenth session's ORT table, the 32 px one with
+1.3 % on the fifth's.

For sampled architectures, one process, ``--rounds`` rounds: each whole model is timed interleaved
with **both** references, and each of its blocks as a table build times it (isolated block, block in
context after the build's cache flush, interleaved run for run, then the node profile's share) with
**both** references in the same window. So per model and reference: the prediction (call + context
costs, in reference units) over the model's ratio, the two references seeing the same moments.
Also each reference's speed beside blocks against beside whole models (large over small ratio),
and the prediction in raw milliseconds against the model's. A diagnostic on ``--seed`` archs, not a
validation: a method chosen here is scored on fresh models with ``bench/lut_accuracy.py``.

    python bench/reference_bias.py --backend onnxruntime-cpu --archs 6 --rounds 2 --seed 21
    → bench/results/reference_bias_<backend><threads>_s<seed>.json and .md
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import build_and_model_profilers, write_result  # noqa: E402  (bench/ is on the path of a script run from it)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="onnxruntime-cpu", help="a backend with a per-node profiler")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--space", default="inas-sod")
    ap.add_argument("--resolution", type=int, default=320)
    ap.add_argument("--archs", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    from tqdm import tqdm

    from hwnas.cli.lut import _cold_context_plan
    from hwnas.model import SODNet, for_export
    from hwnas.space import create
    from lut.context import attribute, in_context
    from lut.reference import LARGE_REFERENCE_NAME, REFERENCE_NAME, call_model, reference_model

    torch.set_num_threads(1)
    block_prof, model_prof = build_and_model_profilers(args.backend, args.threads)
    space = create(args.space)
    res = args.resolution
    model_bytes, _ = _cold_context_plan(space, [res])
    rng = random.Random(args.seed)
    archs = [space.sample(rng, resolution=res) for _ in range(args.archs)]
    refs = {"small": REFERENCE_NAME, "large": LARGE_REFERENCE_NAME}
    sfx = block_prof.artifact_suffix
    t0 = time.time()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)

        def export(prof, module, inputs, stem):
            return prof.export(module, tuple(inputs), d / f"{stem}{sfx}"), [tuple(t.shape) for t in inputs]

        ref_art = {k: export(block_prof, *reference_model(n), f"ref_{k}") for k, n in refs.items()}
        call = export(block_prof, *call_model(), "call")
        got = block_prof.measure_together({"call": call, **ref_art}, seed=args.seed)
        call_rel = {k: got["call"].median_ms / got[k].median_ms for k in refs}
        models, blocks = [], []
        for i, a in enumerate(tqdm(archs, desc="exporting", unit="arch")):
            r = a.resolution
            whole = export(model_prof, for_export(SODNet(space, a)),
                           (torch.randn(1, 3, r, r, generator=torch.Generator().manual_seed(0)),), f"w{i}")
            models.append(whole)
            arts = []
            for j, b in enumerate(space.blocks(a)):
                module, inputs = in_context(b)
                with torch.no_grad():
                    y = module(*inputs)
                n_out = len(y) if isinstance(y, (tuple, list)) else 1
                arts.append((b, export(block_prof, b.build(), b.example_inputs(), f"b{i}_{j}")[0],
                             export(block_prof, module, inputs, f"c{i}_{j}")[0], n_out))
            blocks.append(arts)
        # shares from one node profile per block (as a build takes it), the windows per round
        shares = {}
        per_round = []
        for rnd in range(args.rounds):
            rows = []
            order = list(range(len(archs)))
            random.Random(f"{args.seed}|{rnd}").shuffle(order)
            for i in tqdm(order, desc=f"round {rnd + 1}/{args.rounds}", unit="arch"):
                got = model_prof.measure_together({"model": models[i], **ref_art},
                                                  seed=zlib.crc32(f"{args.seed}|w{i}|{rnd}".encode()))
                row = {"arch": i, "round": rnd, "model_ms": got["model"].median_ms,
                       "model_ref_ms": {k: got[k].median_ms for k in refs}, "blocks": []}
                for j, (b, iso, ctx, n_out) in enumerate(blocks[i]):
                    shapes = list(b.input_shapes)
                    flush = int(model_bytes.get(b.key, 0))
                    got = block_prof.measure_together(
                        {"block": (iso, shapes), "context": (ctx, shapes), **ref_art},
                        seed=zlib.crc32(f"{args.seed}|{i}|{j}|{rnd}".encode()),
                        flush_bytes={"context": flush} if flush else None)
                    if (i, j) not in shares:
                        prof = block_prof.node_profile(ctx, shapes, runs=20, flush_bytes=flush)
                        shares[(i, j)] = attribute(prof, not b.model_input, not b.model_output,
                                                   n_inputs=len(shapes), n_outputs=n_out)
                    row["blocks"].append({"key": b.key, "kind": b.kind, "block_ms": got["block"].median_ms,
                                          "context_ms": got["context"].median_ms,
                                          "ref_ms": {k: got[k].median_ms for k in refs}})
                rows.append(row)
            per_round.append(rows)

    def context_cost_rel(blk, share_of, k):
        """A block's context cost in units of reference ``k`` (lut.measure.BlockMeter.measure, ORT: no I/O)."""
        ref = blk["ref_ms"][k]
        call_here = call_rel[k] * ref
        share = share_of.share_with_dispatch(blk["context_ms"] * 1e3, call_here * 1e3)
        return max(blk["context_ms"] - call_here, 0.0) * share / ref

    result_models = []
    for rows in per_round:
        for row in rows:
            i = row["arch"]
            entry = {"arch": i, "round": row["round"], "n_blocks": len(row["blocks"]), "model_ms": row["model_ms"]}
            for k in refs:
                pred_rel = call_rel[k] + sum(context_cost_rel(blk, shares[(i, j)], k) for j, blk in enumerate(row["blocks"]))
                measured_rel = row["model_ms"] / row["model_ref_ms"][k]
                entry[f"bias_{k}_pct"] = 100 * (pred_rel / measured_rel - 1)
                entry[f"plain_{k}_pct"] = 100 * (sum(b["block_ms"] / b["ref_ms"][k] for b in row["blocks"]) / measured_rel - 1)
            # the prediction in this round's own milliseconds (each block's cost at its window's speed)
            pred_ms = call_rel["small"] * row["model_ref_ms"]["small"] + sum(
                context_cost_rel(blk, shares[(i, j)], "small") * blk["ref_ms"]["small"] for j, blk in enumerate(row["blocks"]))
            entry["bias_raw_pct"] = 100 * (pred_ms / row["model_ms"] - 1)
            # the large reference over the small one: beside this model, and beside its blocks (median)
            entry["large_over_small_beside_model"] = row["model_ref_ms"]["large"] / row["model_ref_ms"]["small"]
            entry["large_over_small_beside_blocks"] = float(np.median([b["ref_ms"]["large"] / b["ref_ms"]["small"]
                                                                       for b in row["blocks"]]))
            entry["small_beside_model_over_blocks"] = row["model_ref_ms"]["small"] / float(
                np.median([b["ref_ms"]["small"] for b in row["blocks"]]))
            entry["large_beside_model_over_blocks"] = row["model_ref_ms"]["large"] / float(
                np.median([b["ref_ms"]["large"] for b in row["blocks"]]))
            result_models.append(entry)

    def med(key):
        return float(np.median([m[key] for m in result_models]))

    summary = {k: med(k) for k in ("bias_small_pct", "bias_large_pct", "plain_small_pct", "plain_large_pct", "bias_raw_pct",
                                   "large_over_small_beside_model", "large_over_small_beside_blocks",
                                   "small_beside_model_over_blocks", "large_beside_model_over_blocks")}
    # test-retest of the bias per reference (round 0 vs 1 of the same arch)
    if args.rounds >= 2:
        for k in ("small", "large", "raw"):
            a = {m["arch"]: m[f"bias_{k}_pct"] for m in result_models if m["round"] == 0}
            b = {m["arch"]: m[f"bias_{k}_pct"] for m in result_models if m["round"] == 1}
            summary[f"bias_{k}_retest_pct"] = float(np.median([abs(a[x] - b[x]) for x in a]))
    result = {"args": vars(args), "host": {"cpus": os.cpu_count(), "fingerprint": block_prof.device_info()},
              "call_rel": call_rel, "summary": summary, "models": result_models,
              "minutes": (time.time() - t0) / 60}
    stem = args.out or f"bench/results/reference_bias_{args.backend}{args.threads}_s{args.seed}"
    write_result(f"{stem}.json", result)
    lines = [f"# Prediction bias per drift reference, same windows ({args.space} {res} px, {args.backend} "
             f"{args.threads} thread(s), {args.archs} archs from seed {args.seed}, {args.rounds} rounds, "
             f"{result['minutes']:.1f} min)", "",
             "| arch | round | blocks | model ms | bias vs small ref | bias vs large ref | raw ms bias | "
             "plain sum vs small | plain sum vs large | large/small beside model | beside blocks |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for m in result_models:
        lines.append(f"| {m['arch']} | {m['round']} | {m['n_blocks']} | {m['model_ms']:.2f} | {m['bias_small_pct']:+.2f} % | "
                     f"{m['bias_large_pct']:+.2f} % | {m['bias_raw_pct']:+.2f} % | {m['plain_small_pct']:+.2f} % | "
                     f"{m['plain_large_pct']:+.2f} % | {m['large_over_small_beside_model']:.4f} | "
                     f"{m['large_over_small_beside_blocks']:.4f} |")
    lines += ["", "Medians: " + ", ".join(f"{k} {v:+.3f}" if k.endswith("pct") else f"{k} {v:.4f}"
                                          for k, v in summary.items())]
    Path(f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
