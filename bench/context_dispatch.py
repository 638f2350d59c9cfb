"""Where outside the kernels does a table's prediction exceed the whole model? (ORT, per node)

A context cost is (context wall − call) x the block's share, the share counting its kernels and a
dispatch cost per node (``lut.context.Attribution.share_with_dispatch``): so a prediction is
call + Σ block kernels + Σ block nodes x the context run's dispatch per node. A whole model is
call + its kernels + its nodes x its own dispatch per node. ``bench/context_kernels.py`` showed the
kernel terms agree (blocks in context after the build's cache flush within 1 % of the whole model's
kernels) while ``bench/reference_bias.py`` found the predictions ~2 % high: the rest must be the
dispatch term. This script measures both sides in one process, for sampled architectures: every
artifact timed interleaved with the reference (wall medians, as a build times them), then profiled
with ONNX Runtime's own profiler (per-node kernel time, and the session's ``model_run`` time, which
excludes the Python call), the block context graphs both after the build's cache flush and warm.

The wall-based terms compare a wall median with a profile taken at another moment: on a host whose
speed jumps between states for seconds at a time (``bench/machine_drift.py``) they are meaningless,
so the report leads with the same-run form: time outside kernels over kernel time within the
profiled runs themselves, where the host's speed cancels.

    python bench/context_dispatch.py --archs 3 --seed 21
    → bench/results/context_dispatch_<space>_s<seed>.json and .md
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import build_and_model_profilers, write_result  # noqa: E402  (bench/ is on the path of a script run from it)


def trace_profile(prof, path, shapes, runs: int, flush_bytes: int, ref_run=None) -> dict:
    """Kernel µs per run, node count and median ``model_run`` µs of ``path`` (ORT's profiler); with
    ``ref_run``, the reference timed after every profiled run (median ms), so the profiled runs can
    be set against the unprofiled ones of another moment in reference units."""
    from profilers.cache import CacheFlush

    flush = CacheFlush(flush_bytes)
    ref_ms = []
    with tempfile.TemporaryDirectory(prefix="hwnas-dispatch-") as d:
        sess = prof.session(Path(path), profile_dir=d)
        run = prof._bound_run(sess, Path(path), shapes)
        warm = max(3, runs // 4)
        for i in range(warm + runs):
            flush()
            run()
            if ref_run is not None and i >= warm:
                t = time.perf_counter()
                ref_run()
                ref_ms.append((time.perf_counter() - t) * 1e3)
        trace = json.loads(Path(sess.end_profiling()).read_text())
    skip = warm + 1  # the binding's first run and the warm-up
    run_events = [e for e in trace if e.get("cat") == "Session" and e.get("name") == "model_run"][skip:]
    kernels = [e for e in trace if e.get("cat") == "Node" and str(e.get("name", "")).endswith("_kernel_time")]
    per_run = []
    for r in run_events:
        lo, hi = r["ts"], r["ts"] + r["dur"]
        per_run.append(sum(e["dur"] for e in kernels if lo <= e["ts"] < hi))
    names = {e["name"] for e in kernels}
    return {"kernels_us": statistics.median(per_run), "model_run_us": statistics.median(r["dur"] for r in run_events),
            "nodes": len(names), "outside_us": statistics.median(r["dur"] - k for r, k in zip(run_events, per_run)),
            "ref_ms": statistics.median(ref_ms) if ref_ms else None,
            # per run, so that a speed change within the profile cancels too
            "model_run_over_ref": statistics.median(r["dur"] / 1e3 / m for r, m in zip(run_events, ref_ms)) if ref_ms else None}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="inas-sod")
    ap.add_argument("--resolution", type=int, default=320)
    ap.add_argument("--archs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=21)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--report", default=None, help="re-render the .md of a saved result JSON, measure nothing")
    args = ap.parse_args(argv)
    if args.report:
        return report(json.loads(Path(args.report).read_text()), str(Path(args.report).with_suffix("")))

    import torch
    from tqdm import tqdm

    from hwnas.cli.lut import _cold_context_plan
    from hwnas.model import SODNet, for_export
    from hwnas.space import create
    from lut.context import attribute, in_context
    from lut.reference import REFERENCE_NAME, call_model, reference_model

    torch.set_num_threads(1)
    block_prof, model_prof = build_and_model_profilers()
    space = create(args.space)
    res = args.resolution
    model_bytes, _ = _cold_context_plan(space, [res])
    rng = random.Random(args.seed)
    archs = [space.sample(rng, resolution=res) for _ in range(args.archs)]
    sfx = block_prof.artifact_suffix
    t0 = time.time()
    out = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)

        def export(prof, module, inputs, stem):
            return prof.export(module, tuple(inputs), d / f"{stem}{sfx}"), [tuple(t.shape) for t in inputs]

        ref = export(block_prof, *reference_model(REFERENCE_NAME), "ref")
        ref_run = block_prof.prepare(Path(ref[0]), ref[1])
        call = export(block_prof, *call_model(), "call")
        for i, a in enumerate(tqdm(archs, desc="archs", unit="arch")):
            r = a.resolution
            whole = export(model_prof, for_export(SODNet(space, a)),
                           (torch.randn(1, 3, r, r, generator=torch.Generator().manual_seed(0)),), f"w{i}")
            got = model_prof.measure_together({"model": whole, "ref": ref, "call": call},
                                              seed=zlib.crc32(f"{args.seed}|w{i}".encode()))
            w = trace_profile(model_prof, *whole, args.runs, 0, ref_run)
            row = {"arch": i, "whole_wall_ms": got["model"].median_ms, "ref_ms": got["ref"].median_ms,
                   "call_ms": got["call"].median_ms, "whole": w, "blocks": []}
            for j, b in enumerate(space.blocks(a)):
                module, inputs = in_context(b)
                with torch.no_grad():
                    y = module(*inputs)
                n_out = len(y) if isinstance(y, (tuple, list)) else 1
                ctx, shapes = export(block_prof, module, inputs, f"c{i}_{j}")
                flush = int(model_bytes.get(b.key, 0))
                got = block_prof.measure_together(
                    {"flushed": (ctx, shapes), "warm": (ctx, shapes), "ref": ref, "call": call},
                    seed=zlib.crc32(f"{args.seed}|{i}|{j}".encode()), flush_bytes={"flushed": flush} if flush else None)
                entry = {"kind": b.kind, "flush": flush, "ref_ms": got["ref"].median_ms, "call_ms": got["call"].median_ms}
                for state, fb in (("flushed", flush), ("warm", 0)):
                    nodeprof = block_prof.node_profile(ctx, shapes, runs=args.runs, flush_bytes=fb)
                    split = attribute(nodeprof, not b.model_input, not b.model_output, n_inputs=len(shapes),
                                      n_outputs=n_out)
                    tr = trace_profile(block_prof, ctx, shapes, args.runs, fb, ref_run)
                    entry[state] = {"wall_ms": got[state].median_ms, "block_us": split.block_us,
                                    "neighbour_us": split.neighbour_us, "block_nodes": len(split.block_ops),
                                    "nodes": len(split.block_ops) + len(split.neighbour_ops), "trace": tr}
                row["blocks"].append(entry)
            out.append(row)

    result = {"args": vars(args), "host": {"cpus": os.cpu_count(), "fingerprint": block_prof.device_info()},
              "archs": out, "minutes": (time.time() - t0) / 60}
    stem = f"bench/results/context_dispatch_{args.space}_s{args.seed}"
    write_result(f"{stem}.json", result)
    return report(result, stem)


def report(result: dict, stem: str) -> int:
    """Write ``stem``.md from a result (also: ``--report JSON`` re-renders a saved run)."""
    args = result["args"]

    def charged(row, state, wall: bool):
        """Σ over blocks of what the table charges outside kernels: block nodes x the context run's
        time outside kernels per node; from the unprofiled wall (``wall``, as a build does) or from
        the profiled runs themselves (``model_run`` − kernels of the same runs)."""
        total = 0.0
        for e in row["blocks"]:
            s = e[state]
            if wall:
                outside_us = max(s["wall_ms"] * 1e3 - e["call_ms"] * 1e3 - s["block_us"] - s["neighbour_us"], 0.0)
                total += s["block_nodes"] * outside_us / s["nodes"] / 1e3
            else:  # in units of the run's own kernel time, then of the block's kernels: speed-state free
                tr = s["trace"]
                total += s["block_nodes"] / s["nodes"] * tr["outside_us"] / tr["kernels_us"] * s["block_us"] / 1e3
        return total

    def biases(row, state):
        """(prediction from the unprofiled walls, as a build makes it; prediction from the profiled runs
        themselves) over the whole model, −1, in %: both in units of the reference timed beside them."""
        w = row["whole"]
        pred_wall = row["call_ms"] / row["ref_ms"]
        pred_prof = 0.0  # model_run excludes the Python call
        for e in row["blocks"]:
            s, tr = e[state], e[state]["trace"]
            k_us = s["block_us"] + s["neighbour_us"]
            d_us = max(s["wall_ms"] * 1e3 - e["call_ms"] * 1e3 - k_us, 0.0) / s["nodes"]
            share = (s["block_us"] + s["block_nodes"] * d_us) / (k_us + s["nodes"] * d_us)
            pred_wall += max(s["wall_ms"] - e["call_ms"], 0.0) * share / e["ref_ms"]
            if tr.get("model_run_over_ref") is None:
                pred_prof = math.nan
                continue
            kernels_t = tr["kernels_us"] * s["block_us"] / k_us  # the block's part of the traced kernels
            share_p = (kernels_t + s["block_nodes"] * tr["outside_us"] / s["nodes"]) / (tr["kernels_us"] + tr["outside_us"])
            pred_prof += tr["model_run_over_ref"] * share_p
        bias_wall = 100 * (pred_wall / (row["whole_wall_ms"] / row["ref_ms"]) - 1)
        bias_prof = 100 * (pred_prof / w["model_run_over_ref"] - 1) if w.get("model_run_over_ref") else math.nan
        return bias_wall, bias_prof

    lines = [f"# Prediction terms outside kernels: whole model vs its blocks in context ({args['space']} "
             f"{args['resolution']} px, onnxruntime-cpu 1 thread, {args['archs']} archs from seed {args['seed']})", "",
             "Time outside kernels as a share of kernel time. *Same runs*: ONNX Runtime's profiled runs, "
             "`model_run` − Σ kernel times, over Σ kernel times (one moment, so the host's speed cancels); for the "
             "blocks, each context run's outside time spread over its nodes, the block's nodes' part, over the "
             "block's kernels, summed as the table sums them. *Wall*: as a build computes it, the unprofiled wall "
             "median − call − profiled kernels, which compares two moments (valid only on a steady host: check "
             "the reference column).", "",
             "Bias: the prediction (call + Σ context costs) over the whole model, in units of the reference timed "
             "beside each: *walls* as a build computes it (unprofiled wall medians, interleaved with the reference); "
             "*profiled runs* the same split applied to the profiled runs' `model_run` times, each over the reference "
             "timed right after it.", "",
             "| arch | bias from walls (flushed) | bias from profiled runs (flushed) | from walls (warm) | "
             "from profiled runs (warm) | whole: unprofiled wall / profiled model_run |", "|---|---|---|---|---|---|"]
    bias_rows = []
    for row in result["archs"]:
        b = {st: biases(row, st) for st in ("flushed", "warm")}
        row["bias_pct"] = {st: {"walls": v[0], "profiled_runs": v[1]} for st, v in b.items()}
        w = row["whole"]
        ratio = (row["whole_wall_ms"] / row["ref_ms"]) / w["model_run_over_ref"] if w.get("model_run_over_ref") else math.nan
        pct = lambda v: "—" if v != v else f"{v:+.2f} %"  # noqa: E731  (NaN: a run made before the reference was profiled too)
        bias_rows.append(f"| {row['arch']} | {pct(b['flushed'][0])} | {pct(b['flushed'][1])} | {pct(b['warm'][0])} | "
                         f"{pct(b['warm'][1])} | {'—' if ratio != ratio else f'{ratio:.3f}'} |")
    lines += bias_rows + ["",
             "| arch | nodes whole / blocks | whole: same runs | blocks flushed: same runs | blocks warm: same runs | "
             "whole: wall | blocks flushed: wall | blocks warm: wall | reference ms min–max over the windows |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in result["archs"]:
        w = row["whole"]
        kb = {st: sum(e[st]["block_us"] for e in row["blocks"]) / 1e3 for st in ("flushed", "warm")}
        same = {st: 100 * charged(row, st, False) / kb[st] for st in kb}
        wall = {st: 100 * charged(row, st, True) / kb[st] for st in kb}
        whole_wall = 100 * (row["whole_wall_ms"] - row["call_ms"] - w["kernels_us"] / 1e3) / (w["kernels_us"] / 1e3)
        refs = [row["ref_ms"]] + [e["ref_ms"] for e in row["blocks"]]
        row.update({"same_runs_pct": {"whole": 100 * w["outside_us"] / w["kernels_us"], **same},
                    "wall_pct": {"whole": whole_wall, **wall}})
        bn = sum(e["flushed"]["block_nodes"] for e in row["blocks"])
        lines.append(f"| {row['arch']} | {w['nodes']} / {bn} | {row['same_runs_pct']['whole']:.2f} % | {same['flushed']:.2f} % | "
                     f"{same['warm']:.2f} % | {whole_wall:+.1f} % | {wall['flushed']:+.1f} % | {wall['warm']:+.1f} % | "
                     f"{min(refs):.3f}–{max(refs):.3f} |")
    Path(f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
