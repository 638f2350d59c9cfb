"""Which nodes does a whole model run that its blocks' context graphs do not charge? Counted per op type.

The context model charges each block the nodes of its context graph that are not its neighbours'
(``lut.context.attribute``). If the whole model runs more nodes of some type than the blocks'
charged nodes add up to (a layout conversion at a boundary where two real blocks disagree on the
layout, a copy the exporter inserts), the prediction misses them whatever the timing. Node counts
are exact (no timing); the profiled kernel times, from ORT's own profiler in one process, give
their weight (ORT's profiler adds a few microseconds per node, the same for both sides).

For ``--archs`` sampled architectures: the whole model as ``hwnas export`` writes it (dynamo ONNX)
and every block's context graph as a table build exports it (torchscript ONNX), each profiled
(1 thread); per op type, the whole model's node count and kernel time against the blocks' charged
ones. A diagnostic on ``--seed`` archs, not a validation.

    .venv/bin/python bench/context_ops.py --archs 4 --seed 37
    → bench/results/context_ops_<space>_<res>_s<seed>.{json,md}
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import build_and_model_profilers, write_result  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="inas-tiny")
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--archs", type=int, default=4)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--seed", type=int, default=37)
    args = ap.parse_args(argv)

    import torch
    from tqdm import tqdm

    from hwnas.model import SODNet, for_export
    from hwnas.space import create
    from hwnas.cli.lut import _reference_for
    from lut.context import attribute, in_context
    from lut.measure import NODE_PROFILE_RUNS
    from lut.reference import call_model, reference_model

    torch.set_num_threads(1)
    block_prof, model_prof = build_and_model_profilers()
    space = create(args.space)
    res = args.resolution
    rng = random.Random(args.seed)
    archs = [space.sample(rng, resolution=res) for _ in range(args.archs)]
    t0 = time.time()
    per_arch = []
    sfx = block_prof.artifact_suffix
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)

        def art(prof, module, inputs, stem):
            return prof.export(module, tuple(inputs), d / f"{stem}{sfx}"), [tuple(t.shape) for t in inputs]

        ref = art(block_prof, *reference_model(_reference_for(space, [res])), "ref")
        got = block_prof.measure_together({"call": art(block_prof, *call_model(), "call"), "ref": ref}, seed=args.seed)
        call_rel = got["call"].median_ms / got["ref"].median_ms  # every wall time below in reference units

        def wall(a, seed):  # (its median, the reference's median in the same window), ms
            got = block_prof.measure_together({"x": a, "ref": ref}, seed=seed)
            return got["x"].median_ms, got["ref"].median_ms

        for i, arch in enumerate(tqdm(archs, desc="archs", unit="arch")):
            x = torch.randn(1, 3, res, res, generator=torch.Generator().manual_seed(0))
            whole = model_prof.export(for_export(SODNet(space, arch)), (x,), d / f"w{i}.onnx")
            prof = model_prof.node_profile(whole, [tuple(x.shape)], runs=args.runs)
            w_ms, w_ref_ms = wall((whole, [tuple(x.shape)]), seed=1000 * i)
            kernel_rel = signed_rel = call_rel  # predictions in reference units: the build's, and signed
            per_node = []
            w_n, w_us = Counter(), Counter()
            for n in prof.nodes:
                w_n[n.op_type] += 1
                w_us[n.op_type] += n.kernel_us
            b_n, b_us = Counter(), Counter()
            for j, b in enumerate(space.blocks(arch)):
                module, inputs = in_context(b)
                with torch.no_grad():
                    y = module(*inputs)
                n_out = len(y) if isinstance(y, (tuple, list)) else 1
                path = block_prof.export(module, tuple(inputs), d / f"c{i}_{j}.onnx")
                shapes = [tuple(t.shape) for t in inputs]
                x_ms, ref_ms = wall((path, shapes), seed=1000 * i + j + 1)
                runs_n = int(min(200, max(NODE_PROFILE_RUNS, 0.05 / max(x_ms * 1e-3, 1e-6))))  # as the build
                att = attribute(block_prof.node_profile(path, shapes, runs=runs_n), not b.model_input,
                                not b.model_output, n_inputs=len(shapes), n_outputs=n_out)
                run_us, call_us = x_ms * 1e3, call_rel * ref_ms * 1e3
                body_us = max(run_us - call_us, 0.0)
                kernel_rel += body_us * att.share_with_dispatch(run_us, call_us) / (ref_ms * 1e3)  # the build's
                # signed: (run − call − kernels) / nodes per node, negative where ORT's profiler adds more
                # per node than the runtime's own step from node to node costs; the build clamps it at 0
                nodes = len(att.block_ops) + len(att.neighbour_ops)
                per_node_us = (body_us - att.block_us - att.neighbour_us) / max(nodes, 1)
                own_us = min(max(att.block_us + len(att.block_ops) * per_node_us, 0.0), body_us)
                signed_rel += own_us / (ref_ms * 1e3)
                per_node.append(per_node_us)
                b_n.update(att.block_ops)
                for op, us in att.block_us_by_op.items():
                    b_us[op] += us
            whole_rel = w_ms / w_ref_ms
            per_arch.append({"arch": str(arch), "whole_rel": whole_rel, "build_bias_pct": 100 * (kernel_rel / whole_rel - 1),
                             "signed_bias_pct": 100 * (signed_rel / whole_rel - 1),
                             "per_node_us_median": float(sorted(per_node)[len(per_node) // 2]), "whole_count": dict(w_n), "whole_us": dict(w_us),
                             "blocks_count": dict(b_n), "blocks_us": dict(b_us)})
    ops = sorted({op for a in per_arch for op in (*a["whole_count"], *a["blocks_count"])})
    total = {op: {k: sum(a[k].get(op, 0) for a in per_arch) for k in ("whole_count", "blocks_count", "whole_us", "blocks_us")}
             for op in ops}
    w_all = sum(v["whole_us"] for v in total.values())
    b_all = sum(v["blocks_us"] for v in total.values())
    result = {"args": vars(args), "minutes": (time.time() - t0) / 60, "per_arch": per_arch, "total": total,
              "whole_us": w_all, "blocks_us": b_all}
    stem = Path(__file__).resolve().parent / "results" / f"context_ops_{args.space}_{res}_s{args.seed}"
    write_result(f"{stem}.json", result)
    lines = [f"# Nodes a whole model runs against those its blocks are charged: {args.space} at {res} px, ONNX Runtime 1 thread", "",
             f"`python bench/context_ops.py --space {args.space} --resolution {res} --archs {args.archs} --runs {args.runs} "
             f"--seed {args.seed}`; {result['minutes']:.1f} min. Sums over the {args.archs} archs; kernel times from ORT's "
             f"profiler (trimmed mean of {args.runs} runs).", "",
             f"Profiled kernels: whole models {w_all:.0f} us, blocks' charged nodes {b_all:.0f} us "
             f"(blocks / whole {b_all / w_all:.3f}).", "",
             "| op type | whole: nodes | blocks: nodes | whole: us | blocks: us | blocks − whole us | share of the whole's us |",
             "|---|---|---|---|---|---|---|"]
    for op in sorted(ops, key=lambda o: -abs(total[o]["blocks_us"] - total[o]["whole_us"])):
        v = total[op]
        lines.append(f"| {op} | {v['whole_count']} | {v['blocks_count']} | {v['whole_us']:.0f} | {v['blocks_us']:.0f} | "
                     f"{v['blocks_us'] - v['whole_us']:+.0f} | {100 * v['whole_us'] / w_all:.1f} % |")
    lines += ["", "Wall-clock predictions in one run (each artifact timed interleaved with the table's reference, "
              "in reference units; call + blocks' context costs) against the whole model:", "",
              "| arch | whole (ref units) | the build's split | signed per-node split | per-node term, median us |",
              "|---|---|---|---|---|"]
    for a in per_arch:
        lines.append(f"| `{a['arch'][:40]}…` | {a['whole_rel']:.3f} | {a['build_bias_pct']:+.1f} % | "
                     f"{a['signed_bias_pct']:+.1f} % | {a['per_node_us_median']:+.2f} |")
    Path(f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
