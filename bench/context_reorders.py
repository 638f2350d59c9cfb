"""Do blocks in context pay the layout conversions their whole model pays? (ONNX Runtime, no timing)

For sampled architectures, counts the NCHWc ``ReorderInput`` / ``ReorderOutput`` nodes of ONNX
Runtime's optimized graphs three ways: summed over the isolated blocks (what the plain sum pays),
summed over the blocks' shares of their context graphs (what the latency model charges,
``lut.context``), and in the whole model's optimized graph (what the model pays). The context
count should match the whole model's; the isolated count is the plain sum's excess.

    python bench/context_reorders.py --space inas-sod --resolution 320 --archs 3
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def _reorders(ops) -> int:
    return sum(op.startswith("Reorder") for op in ops)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="inas-sod")
    ap.add_argument("--resolution", type=int, default=320)
    ap.add_argument("--archs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=None, help="JSON file for the counts")
    args = ap.parse_args(argv)

    import torch

    import profilers
    from hwnas.model import SODNet, for_export
    from hwnas.space import create
    from lut.context import attribute, in_context

    prof = profilers.get("onnxruntime-cpu", threads=args.threads, exporter="torchscript")
    space = create(args.space)
    rng = random.Random(args.seed)
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        for i in range(args.archs):
            arch = space.sample(rng, resolution=args.resolution)
            iso = ctx = 0
            for j, b in enumerate(space.blocks(arch)):
                shapes = list(b.input_shapes)
                p = prof.export(b.build(), b.example_inputs(), d / f"b{i}_{j}.onnx")
                iso += _reorders(n.op_type for n in prof.node_profile(p, shapes, runs=1).nodes)
                module, inputs = in_context(b)
                p = prof.export(module, inputs, d / f"c{i}_{j}.onnx")
                ctx += _reorders(attribute(prof.node_profile(p, shapes, runs=1), not b.model_input, not b.model_output).block_ops)
            whole = for_export(SODNet(space, arch))
            p = prof.export(whole, (torch.randn(1, 3, arch.resolution, arch.resolution),), d / f"w{i}.onnx")
            w = _reorders(n.op_type for n in prof.node_profile(p, [(1, 3, arch.resolution, arch.resolution)], runs=1).nodes)
            row = {"arch": arch.to_string(), "blocks": len(space.blocks(arch)), "isolated_reorders": iso,
                   "context_reorders": ctx, "whole_model_reorders": w}
            rows.append(row)
            print(json.dumps(row), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
