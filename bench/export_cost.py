"""What ExecuTorch's export of a table's blocks costs, with and without the composite-op cache.

Issue 12 asks for an inas-tiny table build within 5 min on 2 cores; with ExecuTorch XNNPACK the
build is export-bound (a block and its context graph are lowered separately). ``deploy.cia_cache``
answers torch.export's walk over CompositeImplicitAutograd ops from a cache. This script exports
``--blocks`` sampled blocks of the space (each block and its context graph, as a build does), each
once with the cache and once without, in one process and one torch thread, alternating which goes
first, and reports the per-block seconds of each and their median ratio; then it exports the same
blocks once more (cached) under ``cProfile`` and reports where that time goes, stage by stage
(inclusive seconds of the functions in ``STAGES``; the profiler's own overhead inflates the total).

    python bench/export_cost.py --space inas-tiny --resolution 64 --blocks 12 --seed 0
    → bench/results/export_cost_<space>_<res>.json and .md
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import write_result  # noqa: E402  (bench/ is on the path of a script run from it)


def _export_pair(block, folder: Path, cached: bool) -> float:
    """Seconds to export ``block`` and its context graph as a build does."""
    import contextlib

    import torch._export.utils as export_utils

    from deploy.executorch_export import export_pte
    from lut.context import in_context

    original = export_utils._collect_all_valid_cia_ops
    uncached = None
    if not cached:  # a function cached_cia_ops leaves alone: torch's own walk on every call
        def uncached():
            return original()
        uncached._hwnas_cached = True
    scope = contextlib.nullcontext() if cached else _patched(uncached)
    t = time.perf_counter()
    with scope:
        export_pte(block.build(), block.example_inputs(), folder / "block.pte")
        module, inputs = in_context(block)
        export_pte(module, inputs, folder / "context.pte")
    return time.perf_counter() - t


# (label, file the function lives in, function name): the stages of an export, inclusive time each
STAGES = (
    ("torch.export.export (tracing)", "torch/export/__init__.py", "export"),
    ("to_edge_transform_and_lower, all", "exir/program/_program.py", "to_edge_transform_and_lower"),
    ("in it: run_decompositions (3 per artifact)", "torch/export/exported_program.py", "run_decompositions"),
    ("in those: registering the decomposition table's composite ops",
     "torch/export/exported_program.py", "_override_composite_implicit_decomp"),
    ("in it: XNNPACK preprocess (passes + serialize)", "backends/xnnpack/xnnpack_preprocess.py", "preprocess"),
    ("to_executorch (memory planning, emit)", "exir/program/_program.py", "to_executorch"),
)


def _stage_seconds(stats) -> dict[str, float]:
    """Inclusive seconds of each of ``STAGES`` in a ``pstats.Stats`` (0 where none ran)."""
    out = {label: 0.0 for label, _, _ in STAGES}
    for (filename, _line, name), (_cc, _nc, _tt, cumulative, callers) in stats.stats.items():
        for label, file_suffix, func in STAGES:
            if name == func and filename.replace("\\", "/").endswith(file_suffix):
                # inclusive time of the outermost calls only: skip calls made from inside the same function
                outer = sum(v[3] for (f, _l, n), v in callers.items() if not (n == func and f == filename))
                out[label] += outer if callers else cumulative
    return out


def _patched(fn):
    import contextlib

    import torch._export.utils as export_utils
    import torch.export.exported_program as exported_program

    @contextlib.contextmanager
    def scope():
        saved = [(m, m._collect_all_valid_cia_ops) for m in (export_utils, exported_program)]
        for m, _ in saved:
            m._collect_all_valid_cia_ops = fn
        try:
            yield
        finally:
            for m, f in saved:
                m._collect_all_valid_cia_ops = f

    return scope()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="inas-tiny")
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--blocks", type=int, default=12)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)

    import torch

    torch.set_num_threads(1)  # as in a build's export workers (lut.export_pool)
    from hwnas.space import create
    from profilers.fingerprint import cpu_model

    load_at_start = round(os.getloadavg()[0], 2)  # export times are CPU-bound: what else ran matters
    space = create(args.space)
    blocks = space.all_blocks([args.resolution])
    picked = random.Random(args.seed).sample(blocks, min(args.blocks + 1, len(blocks)))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _export_pair(picked[0], folder, cached=True)  # imports and first-call costs, not timed
        for i, block in enumerate(picked[1:]):
            order = (True, False) if i % 2 == 0 else (False, True)
            got = {cached: _export_pair(block, folder, cached) for cached in order}
            rows.append({"block": block.key, "cached_s": got[True], "uncached_s": got[False],
                         "cached_first": order[0]})
            print(f"{block.key:60s} uncached {got[False]:.2f} s  cached {got[True]:.2f} s", file=sys.stderr)
        import cProfile
        import pstats

        profile = cProfile.Profile()
        t = time.perf_counter()
        profile.enable()
        for block in picked[1:]:
            _export_pair(block, folder, cached=True)
        profile.disable()
        profiled_s = (time.perf_counter() - t) / len(rows)
        stages = {k: v / len(rows) for k, v in _stage_seconds(pstats.Stats(profile)).items()}
    med_c = statistics.median(r["cached_s"] for r in rows)
    med_u = statistics.median(r["uncached_s"] for r in rows)
    ratio = statistics.median(r["cached_s"] / r["uncached_s"] for r in rows)
    result = {"space": space.name, "resolution": args.resolution, "blocks": len(rows), "seed": args.seed,
              "machine": cpu_model(), "load_average_at_start": load_at_start, "torch_threads": 1,
              "median_uncached_s": med_u, "median_cached_s": med_c,
              "median_ratio_cached_over_uncached": ratio, "rows": rows,
              "profiled_s_per_block": profiled_s, "stage_s_per_block": stages}
    stem = args.out or str(Path(__file__).parent / "results" / f"export_cost_{space.name}_{args.resolution}")
    write_result(stem + ".json", result)
    md = [f"# ExecuTorch export of a table's blocks, {space.name} at {args.resolution} px",
          "", f"Machine: {cpu_model()} (load {load_at_start} at start), one torch thread, one process; "
          f"{len(rows)} blocks (`--seed {args.seed}`), "
          "each block and its context graph, once with and once without `deploy.cia_cache`, order alternating.", "",
          "| | median s per block (2 artifacts) |", "|---|---|",
          f"| torch's walk on every call | {med_u:.2f} |", f"| cached walk | {med_c:.2f} |",
          f"| median ratio cached / uncached | {ratio:.3f} |", "",
          f"Where the cached export's time goes (the same blocks again under cProfile: {profiled_s:.2f} s per block, "
          "profiler included; inclusive seconds per block):", "",
          "| stage | s per block | share |", "|---|---|---|",
          *(f"| {label} | {sec:.2f} | {sec / profiled_s:.0%} |" for label, sec in stages.items())]
    Path(stem + ".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
