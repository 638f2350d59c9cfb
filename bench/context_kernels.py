"""Where does a whole model spend more kernel time than its blocks? (the runtime's own profiler)

For sampled architectures, profiles (ONNX Runtime ``enable_profiling``, ExecuTorch ETDump or OpenVINO
``PERF_COUNT``, 1 thread) the whole model and each of its blocks alone and in context
(``lut.context``), in one process, the whole model before and after the blocks, and sums kernel
time per op type: the whole model's, the blocks' in context (their share, as the latency table
charges it; warm, after a cache flush sized by a typical model's bytes, and — on a runtime that
generates code per node — after an untimed run of the space's smallest model) and the blocks'
alone. Kernel times only: no call overhead, no drift compensation, so compare within an
architecture.

    python bench/context_kernels.py --space inas-sod --resolution 320 --archs 2
    python bench/context_kernels.py --backend openvino-cpu --space inas-tiny --resolution 64 --archs 2 --seed 5 --runs 200
    → bench/results/context_kernels_<space>[_<backend>].json and .md
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
    from profilers.cache import flush_bytes as build_flush_bytes

    # the flush a table build runs before each context run: a typical model's bytes (capped, profilers.cache)
    flush_bytes = build_flush_bytes(space.model_bytes(res))
    # where the runtime generates code per node, a table build runs the space's smallest model before
    # each context run instead (lut.measure.BlockMeter): profiled here too
    code_per_node = bool(getattr(prof, "context_after_model_run", False))
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        between = None
        if code_per_node:
            between = (prof.export(for_export(SODNet(space, space.smallest(res))), (torch.randn(1, 3, res, res),),
                                   d / f"smallest{prof.artifact_suffix}"), [(1, 3, res, res)])
        for i in range(args.archs):
            arch = space.sample(rng, resolution=res)
            sfx = prof.artifact_suffix
            whole_path = prof.export(for_export(SODNet(space, arch)), (torch.randn(1, 3, res, res),), d / f"w{i}{sfx}")

            def whole_by_op() -> dict:
                by = collections.Counter()
                for n in prof.node_profile(whole_path, [(1, 3, res, res)], runs=args.runs).nodes:
                    by[n.op_type] += n.kernel_us
                return by

            before = whole_by_op()
            ctx, ctx_flushed, iso = collections.Counter(), collections.Counter(), collections.Counter()
            ctx_between = collections.Counter()
            for j, b in enumerate(space.blocks(arch)):
                shapes = list(b.input_shapes)
                module, inputs = in_context(b)
                p = prof.export(module, inputs, d / f"c{i}_{j}{sfx}")
                for counter, flush in ((ctx, 0), (ctx_flushed, flush_bytes)):
                    a = attribute(prof.node_profile(p, shapes, runs=args.runs, flush_bytes=flush), not b.model_input,
                                  not b.model_output, len(shapes), module.n_outputs)
                    counter.update(a.block_us_by_op)
                if between:
                    a = attribute(prof.node_profile(p, shapes, runs=args.runs, between=between), not b.model_input,
                                  not b.model_output, len(shapes), module.n_outputs)
                    ctx_between.update(a.block_us_by_op)
                p = prof.export(b.build(), b.example_inputs(), d / f"b{i}_{j}{sfx}")
                for n in prof.node_profile(p, shapes, runs=args.runs).nodes:
                    iso[n.op_type] += n.kernel_us
            after = whole_by_op()
            whole = {k: (before[k] + after[k]) / 2 for k in set(before) | set(after)}
            ops = sorted(set(whole) | set(ctx) | set(iso), key=lambda k: -whole.get(k, 0))
            row = {"arch": arch.to_string(), "whole_ms": sum(whole.values()) / 1e3,
                   "whole_before_after_ms": [sum(before.values()) / 1e3, sum(after.values()) / 1e3],
                   "context_ms": sum(ctx.values()) / 1e3, "context_flushed_ms": sum(ctx_flushed.values()) / 1e3,
                   "isolated_ms": sum(iso.values()) / 1e3,
                   "context_after_model_ms": sum(ctx_between.values()) / 1e3 if between else None,
                   "by_op_ms": {k: {"whole": whole.get(k, 0) / 1e3, "context": ctx.get(k, 0) / 1e3,
                                    "context_flushed": ctx_flushed.get(k, 0) / 1e3,
                                    "context_after_model": ctx_between.get(k, 0) / 1e3 if between else None,
                                    "isolated": iso.get(k, 0) / 1e3} for k in ops}}
            rows.append(row)
            print(f"arch {i}: kernel time whole {row['whole_ms']:.3f} ms (before/after {row['whole_before_after_ms'][0]:.3f}/"
                  f"{row['whole_before_after_ms'][1]:.3f}), blocks in context {row['context_ms']:.3f} "
                  f"(cache flushed: {row['context_flushed_ms']:.3f}"
                  + (f"; after a model run: {row['context_after_model_ms']:.3f}" if between else "")
                  + f"), alone {row['isolated_ms']:.3f}", flush=True)
    result = {"space": args.space, "resolution": res, "host": {"cpus": os.cpu_count(), "load_average": os.getloadavg()},
              "flush_bytes": flush_bytes, "archs": rows}
    tag = "" if args.backend == "onnxruntime-cpu" else f"_{args.backend}"
    out = Path(__file__).resolve().parent / "results" / f"context_kernels_{args.space}{tag}.json"
    write_result(out, result)
    lines = [f"# Kernel time per op type: whole model vs its blocks ({args.space}, {res} px, {args.backend} 1 thread)", "",
             f"Blocks in context also profiled after a cache flush of {flush_bytes / 2**20:.1f} MiB before each run "
             "(a typical model's bytes, capped at 2x the last-level cache: `profilers.cache`; 0: the model fits)"
             + (", and after an untimed run of the space's smallest model (this runtime generates code per node)"
                if code_per_node else "") + ".", "",
             "| arch | op | whole (ms) | blocks in context (ms) | in context, cache flushed (ms) | "
             + ("in context, after a model run (ms) | " if code_per_node else "") + "blocks alone (ms) |",
             "|---|---|---|---|---|---|" + ("---|" if code_per_node else "")]

    def cells(v: dict) -> str:
        after = f"{v['context_after_model']:.3f} | " if code_per_node else ""
        return f"{v['whole']:.3f} | {v['context']:.3f} | {v['context_flushed']:.3f} | {after}{v['isolated']:.3f} |"

    for i, r in enumerate(rows):
        lines.append(f"| {i} | **all** | " + cells({"whole": r["whole_ms"], "context": r["context_ms"],
                                                   "context_flushed": r["context_flushed_ms"],
                                                   "context_after_model": r["context_after_model_ms"],
                                                   "isolated": r["isolated_ms"]}))
        for k, v in list(r["by_op_ms"].items())[:8]:
            lines.append(f"| {i} | {k} | " + cells(v))
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
