"""Where does a whole model spend more kernel time than its blocks? (the runtime's own profiler)

For sampled architectures, profiles (ONNX Runtime ``enable_profiling`` or ExecuTorch ETDump, 1 thread) the whole model and each of its
blocks alone and in context (``lut.context``), in one process, the whole model before and after the
blocks, and sums kernel time per op type: the whole model's, the blocks' in context (their share,
as the latency table charges it; warm, and after a cache flush sized by a typical model's bytes)
and the blocks' alone. Kernel times only: no call overhead, no
drift compensation, so compare within an architecture.

    python bench/context_kernels.py --space inas-sod --resolution 320 --archs 2
    → bench/results/context_kernels_<space>.json and .md
"""

from __future__ import annotations

import argparse
import collections
import os
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import write_result  # noqa: E402  (bench/ is on the path of a script run from it)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="inas-sod")
    ap.add_argument("--resolution", type=int, default=320)
    ap.add_argument("--archs", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--backend", default="onnxruntime-cpu", help="a backend with a per-node profiler")
    args = ap.parse_args(argv)

    import torch

    import profilers
    from hwnas.model import SODNet, for_export
    from hwnas.space import create
    from lut.context import attribute, in_context

    prof = profilers.from_identity({"name": args.backend, "options": {}}, threads=1, precision="fp32",
                                   protocol=profilers.Protocol(), artifacts={"exporter": "torchscript"})
    space = create(args.space)
    rng = random.Random(args.seed)
    res = args.resolution
    from profilers.cache import CacheFlush

    # the flush a table build runs before each context run: a typical model's bytes (capped, profilers.cache)
    flush_bytes = CacheFlush(space.model_bytes(res)).nbytes
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        for i in range(args.archs):
            arch = space.sample(rng, resolution=res)
            sfx = prof.artifact_suffix
            whole_path = prof.export(for_export(SODNet(space, arch)), (torch.randn(1, 3, res, res),), d / f"w{i}{sfx}")

            def whole_by_op() -> dict:
                by = collections.Counter()
                for n in prof.node_profile(whole_path, [(1, 3, res, res)], runs=args.runs).nodes:
                    by[n.op_type] += n.median_us
                return by

            before = whole_by_op()
            ctx, ctx_flushed, iso = collections.Counter(), collections.Counter(), collections.Counter()
            for j, b in enumerate(space.blocks(arch)):
                shapes = list(b.input_shapes)
                module, inputs = in_context(b)
                p = prof.export(module, inputs, d / f"c{i}_{j}{sfx}")
                for counter, flush in ((ctx, 0), (ctx_flushed, flush_bytes)):
                    a = attribute(prof.node_profile(p, shapes, runs=args.runs, flush_bytes=flush), not b.model_input,
                                  not b.model_output, len(shapes), module.n_outputs)
                    counter.update(a.block_us_by_op)
                p = prof.export(b.build(), b.example_inputs(), d / f"b{i}_{j}{sfx}")
                for n in prof.node_profile(p, shapes, runs=args.runs).nodes:
                    iso[n.op_type] += n.median_us
            after = whole_by_op()
            whole = {k: (before[k] + after[k]) / 2 for k in set(before) | set(after)}
            ops = sorted(set(whole) | set(ctx) | set(iso), key=lambda k: -whole.get(k, 0))
            row = {"arch": arch.to_string(), "whole_ms": sum(whole.values()) / 1e3,
                   "whole_before_after_ms": [sum(before.values()) / 1e3, sum(after.values()) / 1e3],
                   "context_ms": sum(ctx.values()) / 1e3, "context_flushed_ms": sum(ctx_flushed.values()) / 1e3,
                   "isolated_ms": sum(iso.values()) / 1e3,
                   "by_op_ms": {k: {"whole": whole.get(k, 0) / 1e3, "context": ctx.get(k, 0) / 1e3,
                                    "context_flushed": ctx_flushed.get(k, 0) / 1e3,
                                    "isolated": iso.get(k, 0) / 1e3} for k in ops}}
            rows.append(row)
            print(f"arch {i}: kernel time whole {row['whole_ms']:.2f} ms (before/after {row['whole_before_after_ms'][0]:.2f}/"
                  f"{row['whole_before_after_ms'][1]:.2f}), blocks in context {row['context_ms']:.2f} "
                  f"(cache flushed: {row['context_flushed_ms']:.2f}), alone {row['isolated_ms']:.2f}", flush=True)
    result = {"space": args.space, "resolution": res, "host": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
              "flush_bytes": flush_bytes, "archs": rows}
    tag = "" if args.backend == "onnxruntime-cpu" else f"_{args.backend}"
    out = Path(__file__).resolve().parent / "results" / f"context_kernels_{args.space}{tag}.json"
    write_result(out, result)
    lines = [f"# Kernel time per op type: whole model vs its blocks ({args.space}, {res} px, {args.backend} 1 thread)", "",
             f"Blocks in context also profiled after a cache flush of {flush_bytes / 2**20:.1f} MiB before each run "
             "(a typical model's bytes, capped at 2x the last-level cache: `profilers.cache`).", "",
             "| arch | op | whole (ms) | blocks in context (ms) | in context, cache flushed (ms) | blocks alone (ms) |",
             "|---|---|---|---|---|---|"]
    for i, r in enumerate(rows):
        lines.append(f"| {i} | **all** | {r['whole_ms']:.2f} | {r['context_ms']:.2f} | {r['context_flushed_ms']:.2f} | "
                     f"{r['isolated_ms']:.2f} |")
        for k, v in list(r["by_op_ms"].items())[:8]:
            lines.append(f"| {i} | {k} | {v['whole']:.2f} | {v['context']:.2f} | {v['context_flushed']:.2f} | "
                         f"{v['isolated']:.2f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
