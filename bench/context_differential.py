"""A block's in-model cost without ORT's profiler: its context graph less what its neighbours cost.

Issue 12: on this host an inas-tiny table at 64 px predicts whole models ~26 % low, and
``bench/node_dispatch.py`` found the cause in the split of each context run: ONNX Runtime's
profiler adds ~7.5 µs to every node's kernel time while one node costs ~0.6 µs unprofiled, so
shares by profiled kernel time weight nodes by the profiler's overhead, not by their work.

This script tries a split that needs no profiler. A context graph is ``1x1 conv -> block -> 1x1
conv`` (``lut.context``): its unprofiled wall is one call, the graph's edges (the input copied in
and reordered to NCHWc, the output reordered back and copied out), the neighbours' convolutions,
and the block. For every tensor shape ``s`` at a block's boundary, chains of 1 and 3 ``1x1 conv``
on ``s`` (timed unprofiled, interleaved with the reference and the call model) give

* ``conv(s)`` = (chain3 − chain1) / 2: one neighbour's cost inside a graph;
* ``edge(s)`` = (chain1 − call − conv(s)) / 2: one edge on ``s`` (its copy and its reorder),
  taking the input edge and the output edge of a shape to cost alike;

and a block's differential cost is ``context wall − call − Σ over its sides that have a neighbour
(edge + conv)``; a side facing the model's own input or output has no neighbour and keeps its edge,
which the model pays too. A prediction is one call plus the blocks' differential costs. Every term
is a ratio to the reference timed in the same window, so the host's speed cancels. Beside it, in
the same windows, the build's present split (``lut.measure.BlockMeter``: profiled share) and the
plain sum of the isolated blocks; the whole models (the ONNX ``hwnas export`` writes) are timed
twice, at the start and at the end, for the test-retest spread.

The method was fixed before its first run (no parameter is fitted on the models it is scored on).

Result (thirty-first session, Intel Xeon with 300 MiB L3, README: Benchmark results): refuted. The
differential was −26 % where the profiled split was −10 %: a neighbour does not cost what a chain
says, since ORT's NCHWc pass lays a ``1x1 conv`` out by its channels and its neighbours (a chain on
8 or 12 channels runs ``Conv ReorderOutput`` per conv), so the chains priced blocks' neighbours at
0.6–1.9x of what the context run's own profile leaves them. The per-shape chain ops are printed.

    python bench/context_differential.py --archs 10 --seed 40
    → bench/results/context_differential_<space>_<res>_s<seed>.json and .md
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import write_result  # noqa: E402  (bench/ is on the path of a script run from it)


def _conv_chain(channels: int, k: int):
    import torch.nn as nn

    return nn.Sequential(*[nn.Conv2d(channels, channels, 1) for _ in range(k)]).eval()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="inas-tiny")
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--archs", type=int, default=10)
    ap.add_argument("--seed", type=int, default=40)
    ap.add_argument("--edge-rounds", type=int, default=3, help="interleaved windows of the edge chains")
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    from tqdm import tqdm

    import profilers
    from hwnas.cli.lut import BUILD_PROTOCOL, _cold_context_plan, _reference_for, _whole_model
    from hwnas.space import create
    from lut.measure import BlockMeter
    from lut.reference import call_model

    torch.set_num_threads(1)
    protocol = profilers.Protocol(**BUILD_PROTOCOL)
    ident = {"name": "onnxruntime-cpu", "options": {}}
    prof = profilers.from_identity(ident, threads=1, precision="fp32", protocol=protocol, artifacts={"exporter": "torchscript"})
    model_prof = profilers.from_identity(ident, threads=1, precision="fp32", protocol=protocol, artifacts={"exporter": "dynamo"})
    space = create(args.space)
    res = args.resolution
    rng = random.Random(args.seed)
    archs = [space.sample(rng, resolution=res) for _ in range(args.archs)]
    blocks = {}
    for a in archs:
        for b in space.blocks(a):
            blocks.setdefault(b.key, b)
    model_bytes, model_between = _cold_context_plan(space, [res], profiler=prof)
    t0 = time.monotonic()
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="hwnas-differential-") as d:
        d = Path(d)
        meter = BlockMeter(prof, d, seed=args.seed, model_bytes=model_bytes, model_between=model_between,
                           reference=_reference_for(space, [res]))
        ref = (meter.ref_path, meter.ref_shapes)
        cm, ci = call_model()
        call = (prof.export(cm, ci, d / "call.onnx"), [tuple(t.shape) for t in ci])
        wholes = {}
        for i, a in enumerate(archs):
            m, x = _whole_model(space, a)
            wholes[f"w{i}"] = (model_prof.export(m, x, d / f"w{i}.onnx"), [tuple(t.shape) for t in x])

        def time_wholes(tag):
            got = model_prof.measure_together({**wholes, "ref": ref, "call": call}, seed=zlib.crc32(f"{args.seed}|{tag}".encode()))
            return {n: got[n].median_ms / got["ref"].median_ms for n in wholes}, got["call"].median_ms / got["ref"].median_ms

        whole_a, call_a = time_wholes("a")
        meter.measure_io(list(blocks.values()))
        arts = meter.export_ahead(list(blocks.values()), d / "blocks")
        # every boundary shape of every block, and the block's output shapes
        out_shapes = {}
        for key, b in blocks.items():
            module = b.build().eval()
            with torch.no_grad():
                y = module(*b.example_inputs())
            ys = tuple(y) if isinstance(y, (tuple, list)) else (y,)
            out_shapes[key] = [tuple(t.shape) for t in ys]
        shapes = sorted({s for b in blocks.values() for s in b.input_shapes} | {s for v in out_shapes.values() for s in v})
        flushes = {meter._flush(b) for b in blocks.values()}
        if len(flushes) != 1 or next(iter(flushes))[1] is not None:
            raise SystemExit(f"edge chains follow one cache flush, no model run; this build uses {flushes}")
        flush = next(iter(flushes))[0]
        edge_rows = {s: [] for s in shapes}
        for s in tqdm(shapes, desc="edge chains", unit="shape"):
            x = (torch.randn(s),)
            c1 = (prof.export(_conv_chain(s[1], 1), x, d / f"c1_{'x'.join(map(str, s))}.onnx"), [s])
            c3 = (prof.export(_conv_chain(s[1], 3), x, d / f"c3_{'x'.join(map(str, s))}.onnx"), [s])
            for r in range(args.edge_rounds):
                got = prof.measure_together({"c1": c1, "c3": c3, "ref": ref, "call": call},
                                            seed=zlib.crc32(f"{args.seed}|{s}|{r}".encode()),
                                            flush_bytes={"c1": flush, "c3": flush} if flush else None)
                edge_rows[s].append({n: got[n].median_ms / got["ref"].median_ms for n in ("c1", "c3", "call")})
        # why a chain may not stand for a neighbour: the ops ORT runs for the chain of 3 (NCHWc
        # reorders between convs where the channels do not fill its SIMD block), read after timing
        chain_ops = {}
        for s in shapes:
            got = prof.node_profile(d / f"c3_{'x'.join(map(str, s))}.onnx", [s], runs=5)
            chain_ops[s] = [n.op_type for n in got.nodes] if got is not None else None
        edges = {}
        for s, rows in edge_rows.items():
            c1 = statistics.median(r["c1"] for r in rows)
            c3 = statistics.median(r["c3"] for r in rows)
            cl = statistics.median(r["call"] for r in rows)
            conv = (c3 - c1) / 2
            edges[s] = {"c1": c1, "c3": c3, "call": cl, "conv": conv, "edge": (c1 - cl - conv) / 2,
                        "chain3_ops": chain_ops[s]}
        per_block = {}
        for key, b in tqdm(blocks.items(), desc="blocks", unit="block"):
            iso, extra = meter.measure(b, arts[key])
            ref_ms = extra["ref_ms"]
            run = meter.last["run_ms"] / ref_ms
            call_r = meter.last["call_ms"] / ref_ms
            neighbours = (0 if b.model_input else sum(edges[s]["edge"] + edges[s]["conv"] for s in b.input_shapes)) \
                + (0 if b.model_output else sum(edges[s]["edge"] + edges[s]["conv"] for s in out_shapes[key]))
            per_block[key] = {"kind": b.kind, "isolated": iso.median_ms / ref_ms, "profiled_split": extra["context_ms"] / ref_ms,
                              "context_run": run, "call": call_r, "neighbours": neighbours,
                              # what the context run's own profile leaves to the neighbours (and edges)
                              "neighbours_profiled": (run - call_r) * (1 - extra["context_share"]),
                              "differential": run - call_r - neighbours, "share": extra["context_share"]}
        whole_b, call_b = time_wholes("b")
    call_r = statistics.median([call_a, call_b] + [p["call"] for p in per_block.values()])
    models = []
    for i, a in enumerate(archs):
        keys = [b.key for b in space.blocks(a)]
        w = (whole_a[f"w{i}"] + whole_b[f"w{i}"]) / 2
        row = {"arch": a.to_string(), "whole_a": whole_a[f"w{i}"], "whole_b": whole_b[f"w{i}"], "whole": w,
               "plain_sum": sum(per_block[k]["isolated"] for k in keys),
               "profiled_split": call_r + sum(per_block[k]["profiled_split"] for k in keys),
               "differential": call_r + sum(per_block[k]["differential"] for k in keys)}
        models.append(row)

    def summary(col):
        err = np.array([100 * (m[col] / m["whole"] - 1) for m in models])
        from scipy.stats import kendalltau

        tau = kendalltau([m[col] for m in models], [m["whole"] for m in models]).statistic
        return {"mape": float(np.mean(np.abs(err))), "bias": float(np.mean(err)), "max_abs": float(np.max(np.abs(err))),
                "within10": float(np.mean(np.abs(err) <= 10) * 100), "tau": float(tau)}

    retest = [100 * abs(m["whole_a"] / m["whole_b"] - 1) for m in models]
    result = {"args": vars(args), "host": {"cpus": os.cpu_count(), "fingerprint": prof.device_info(),
                                           "load_before": load_before},
              "edges": {"x".join(map(str, s)): e for s, e in edges.items()}, "blocks": per_block, "models": models,
              "summary": {c: summary(c) for c in ("plain_sum", "profiled_split", "differential")},
              "retest_median_pct": statistics.median(retest), "retest_max_pct": max(retest),
              "minutes": (time.monotonic() - t0) / 60}
    stem = Path(__file__).parent / "results" / f"context_differential_{args.space}_{res}_s{args.seed}"
    write_result(stem.with_suffix(".json"), result)
    lines = [f"# Context cost without the profiler: {args.space} at {res} px, ONNX Runtime 1 thread, {args.archs} archs (seed {args.seed})", "",
             f"`python bench/context_differential.py --archs {args.archs} --seed {args.seed}`; {len(blocks)} distinct blocks, "
             f"{len(shapes)} boundary shapes; {result['minutes']:.1f} min, load {load_before[0]:.2f} before. "
             "Costs are ratios to the reference timed in the same window; whole models are the mean of two timings "
             f"(start, end): test-retest median {result['retest_median_pct']:.2f} %, max {result['retest_max_pct']:.2f} %.", "",
             "| prediction | MAPE | bias | max abs | within ±10 % | τ |", "|---|---|---|---|---|---|"]
    names = {"plain_sum": "plain sum of isolated blocks", "profiled_split": "context run split by ORT's profiler (the build's)",
             "differential": "context run less neighbours (unprofiled)"}
    for c, s in result["summary"].items():
        lines.append(f"| {names[c]} | {s['mape']:.2f} % | {s['bias']:+.2f} % | {s['max_abs']:.2f} % | {s['within10']:.0f} % | {s['tau']:.3f} |")
    lines += ["", "| model | whole (a / b) | plain sum | profiled split | differential |", "|---|---|---|---|---|"]
    for m in models:
        lines.append(f"| `{m['arch'][:32]}…` | {m['whole_a']:.3f} / {m['whole_b']:.3f} | {m['plain_sum']:.3f} | "
                     f"{m['profiled_split']:.3f} | {m['differential']:.3f} |")
    with_nb = [p for p in per_block.values() if p["neighbours"] > 0 and p["neighbours_profiled"] > 0]
    nb_ratio = [p["neighbours"] / p["neighbours_profiled"] for p in with_nb]
    result["neighbours_chain_over_profiled"] = {"median": statistics.median(nb_ratio), "min": min(nb_ratio),
                                                "max": max(nb_ratio), "blocks": len(nb_ratio)} if nb_ratio else None
    write_result(stem.with_suffix(".json"), result)
    if nb_ratio:
        lines += ["", f"Neighbours as the chains price them, over what the context run's own profile leaves them "
                  f"((run − call) × (1 − share)), {len(nb_ratio)} blocks with neighbours: median "
                  f"{statistics.median(nb_ratio):.2f}x (min {min(nb_ratio):.2f}, max {max(nb_ratio):.2f})."]
    lines += ["", "Edge chains (reference units): shape, chain of 1 / 3 convs, conv, edge; ops ORT runs for the chain of 3", ""]
    for s, e in edges.items():
        ops = " ".join(e["chain3_ops"]) if e["chain3_ops"] else "?"
        lines.append(f"- {'x'.join(map(str, s))}: {e['c1']:.3f} / {e['c3']:.3f}, conv {e['conv']:.4f}, edge {e['edge']:.4f}; `{ops}`")
    neg = [k for k, p in per_block.items() if p["differential"] < 0]
    lines += ["", f"Blocks whose differential cost is negative: {len(neg)} of {len(per_block)}"
              + (": " + ", ".join(f"`{k}` {per_block[k]['differential']:.4f}" for k in neg[:8]) if neg else ".")]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
