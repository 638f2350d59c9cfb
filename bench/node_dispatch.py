"""What does one more node cost ONNX Runtime, unprofiled, and does its profiler keep kernel times honest?

Issue 12: on this host an inas-tiny table at 64 px predicts fresh whole models ~26 % low against
their drift-compensated times (``bench/lut_accuracy.py``), and ``bench/context_dispatch.py`` found
that ORT's profiled runs of such sub-ms models take 2.5-4.2x their unprofiled wall, with profiled
kernels alone above the unprofiled wall, so a build's dispatch term (wall - call - kernels) is 0
for every block. This script measures the per-node cost without the profiler, differentially:

* chains of k ``Relu`` nodes on 8 numbers (k in ``--chain``), timed interleaved with the whole
  models in ``--rounds`` windows: the slope over k is one node's unprofiled cost (its dispatch plus
  a kernel of next to nothing), the intercept the call;
* whole models of sampled architectures: their unprofiled wall (same windows), their optimized
  graph's node count and profiled kernel sum (ORT's profiler, as a build profiles context graphs);

and reports, per model, wall − call − nodes × slope (what the kernels can take at most, if every
node pays the chain's per-node cost) beside the profiled kernel sum: where the profiled kernels are
larger, the profiler inflates them and a split by profiled kernel time over-weights the nodes with
the largest kernels; and the profiled per-node time of the chain's ``Relu`` beside its slope.

    python bench/node_dispatch.py --space inas-tiny --resolution 64 --archs 3 --seed 21
    → bench/results/node_dispatch_<space>_<res>.json and .md
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import write_result  # noqa: E402  (bench/ is on the path of a script run from it)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--space", default="inas-tiny")
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--archs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--chain", default="1,2,4,8,16,32,64")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--profile-runs", type=int, default=50)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    import profilers
    from hwnas.model import SODNet, for_export
    from hwnas.space import create
    from hwnas.cli.lut import BUILD_PROTOCOL  # the protocol a table build times with
    from profilers.stats import Protocol

    torch.set_num_threads(1)
    space = create(args.space)
    rng = random.Random(args.seed)
    archs = [space.sample(rng, resolution=args.resolution) for _ in range(args.archs)]
    chain = [int(k) for k in args.chain.split(",")]
    prof = profilers.get("onnxruntime-cpu", threads=1, protocol=Protocol(**BUILD_PROTOCOL), exporter="torchscript")
    out = Path(args.out or Path(__file__).parent / "results" / f"node_dispatch_{args.space}_{args.resolution}.json")
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hwnas-dispatch-") as d:
        d = Path(d)
        arts = {}
        for k in chain:
            m = torch.nn.Sequential(*[torch.nn.ReLU() for _ in range(k)]).eval()
            arts[f"chain{k}"] = (prof.export(m, (torch.zeros(1, 8, 1, 1),), d / f"chain{k}.onnx"), [(1, 8, 1, 1)])
        r = args.resolution
        for i, a in enumerate(archs):
            x = torch.randn(1, 3, r, r, generator=torch.Generator().manual_seed(0))
            arts[f"model{i}"] = (prof.export(for_export(SODNet(space, a)).eval(), (x,), d / f"model{i}.onnx"), [tuple(x.shape)])
        rounds = [prof.measure_together(arts, seed=args.seed * 100 + j) for j in range(args.rounds)]
        med_ms = {n: statistics.median(rd[n].median_ms for rd in rounds) for n in arts}
        slope_ms, icpt_ms = np.polyfit(np.array(chain, float), np.array([med_ms[f"chain{k}"] for k in chain]), 1)
        longest = f"chain{max(chain)}"
        cprof = prof.node_profile(*arts[longest], runs=args.profile_runs)
        relu_us = [n.kernel_us for n in cprof.nodes if n.op_type == "Relu"]
        models = []
        for i, a in enumerate(archs):
            wall_us = med_ms[f"model{i}"] * 1e3
            # each model profiled --rounds times, each right after a profile of the longest chain: the
            # chain's Relu (a kernel of next to nothing) gives what the profiler adds per node at that
            # moment, to see whether taking it off every node leaves what the wall holds
            pairs = []
            for _ in range(args.rounds):
                c = prof.node_profile(*arts[longest], runs=args.profile_runs)
                p = prof.node_profile(*arts[f"model{i}"], runs=args.profile_runs)
                c_us = float(np.median([n.kernel_us for n in c.nodes if n.op_type == "Relu"]))
                pairs.append({"chain_relu_us": c_us, "profiled_kernels_us": p.total_us,
                              "less_overhead_us": float(sum(max(n.kernel_us - c_us, 0.0) for n in p.nodes))})
            nodes = len(p.nodes)
            room_us = wall_us - icpt_ms * 1e3 - nodes * slope_ms * 1e3
            models.append({"arch": a.to_string(), "wall_us": wall_us, "nodes": nodes, "profiled_kernels_us": p.total_us,
                           "nodes_x_slope_us": nodes * slope_ms * 1e3, "kernel_room_us": room_us,
                           "profiled_over_room": p.total_us / room_us if room_us > 0 else None, "paired_profiles": pairs,
                           "ops": {op: sum(1 for n in p.nodes if n.op_type == op) for op in sorted({n.op_type for n in p.nodes})}})
    res = {"space": args.space, "resolution": args.resolution, "seed": args.seed, "rounds": args.rounds,
           "chain": chain, "chain_median_ms": {str(k): med_ms[f"chain{k}"] for k in chain},
           "node_slope_us": slope_ms * 1e3, "call_intercept_us": icpt_ms * 1e3,
           "chain_relu_profiled_us": {"mean": float(np.mean(relu_us)), "median": float(np.median(relu_us))},
           "models": models, "minutes": (time.monotonic() - t0) / 60}
    write_result(out, res)
    lines = [f"# Per-node cost, unprofiled vs ORT's profiler: {args.space} at {args.resolution} px, ONNX Runtime 1 thread", "",
             f"Chains of k Relu (k = {args.chain}), {args.rounds} interleaved windows with the models: one node costs "
             f"**{res['node_slope_us']:.2f} us** unprofiled (slope), the call {res['call_intercept_us']:.2f} us (intercept); "
             f"the profiler reports {res['chain_relu_profiled_us']['median']:.2f} us of kernel per Relu of the "
             f"{max(chain)}-chain (median).", "",
             "| model | wall us | nodes | nodes x slope us | wall − call − nodes x slope us | profiled kernels us | profiled / that |",
             "|---|---|---|---|---|---|---|"]
    for m in models:
        lines.append(f"| `{m['arch'][:36]}…` | {m['wall_us']:.1f} | {m['nodes']} | {m['nodes_x_slope_us']:.1f} | "
                     f"{m['kernel_room_us']:.1f} | {m['profiled_kernels_us']:.1f} | "
                     + (f"{m['profiled_over_room']:.2f} |" if m["profiled_over_room"] else "— |"))
    lines += ["", "Each model profiled right after the chain, per round: the chain's Relu (µs) / the model's profiled "
              "kernels less that per node, over wall − call − nodes x slope:", ""]
    for m in models:
        lines.append(f"- `{m['arch'][:36]}…`: " + "; ".join(
            f"{q['chain_relu_us']:.2f} µs / {q['less_overhead_us'] / m['kernel_room_us']:.2f}" for q in m["paired_profiles"]))
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
