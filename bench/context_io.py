"""Does a context run's I/O explain a table's bias? Whole models against their blocks, both ways.

For sampled architectures, measures every block as a table build does (``lut.measure.BlockMeter``:
isolated, in context after the build's cache flush, against the reference, the runtime's per-node
profile) and the whole models against the same reference (two rounds), then predicts each model
from the *same* block windows two ways:

* **I/O spread** (the latency model before ``IOCost``): the context run's time outside its
  operators, less one call's overhead, spread over its nodes as dispatch;
* **I/O sized** (``lut.measure``): the I/O the run's inputs and outputs cost by their size taken out
  first, the block keeping only the I/O of the boundaries that face the model's own.

Both are stated at the reference's median speed and compared with the drift-compensated whole
models; the plain sum of isolated medians stands beside them. Nothing is fitted.

    python bench/context_io.py --backend executorch-xnnpack --space inas-sod --resolution 320 --archs 4 --seed 5
    → bench/results/context_io_<space>_<backend>.json and .md
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

from _common import write_result  # noqa: E402  (bench/ is on the path of a script run from it)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="executorch-xnnpack", help="a backend with a per-node profiler")
    ap.add_argument("--space", default="inas-sod")
    ap.add_argument("--resolution", type=int, default=320)
    ap.add_argument("--archs", type=int, default=4)
    ap.add_argument("--seed", type=int, default=5)
    args = ap.parse_args(argv)

    import profilers
    from hwnas.cli.lut import BUILD_PROTOCOL, _cold_context_plan, _whole_model
    from hwnas.space import create
    from lut.measure import BlockMeter
    from lut.validate import ModelCase, measure_cases

    t0 = time.perf_counter()
    load_before = os.getloadavg()
    prof = profilers.get(args.backend, threads=1, protocol=profilers.Protocol(**BUILD_PROTOCOL))
    space = create(args.space)
    res = args.resolution
    rng = random.Random(args.seed)
    archs = [space.sample(rng, resolution=res) for _ in range(args.archs)]
    blocks = {b.key: b for a in archs for b in space.blocks(a)}
    model_bytes, model_between = _cold_context_plan(space, [res], profiler=prof)  # as a build decides
    per_block: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="hwnas-context-io-") as d:
        meter = BlockMeter(prof, Path(d), seed=args.seed, model_bytes={k: model_bytes[k] for k in blocks},
                           model_between={k: model_between[k] for k in blocks if k in model_between})
        meter.measure_io(list(blocks.values()))
        arts = meter.export_ahead(list(blocks.values()), Path(d) / "blocks")
        order = sorted(blocks)
        random.Random(args.seed).shuffle(order)
        for i, key in enumerate(order):
            m, extra = meter.measure(blocks[key], arts[key])
            last = meter.last
            a = last["attribution"]
            spread_ms = max(last["run_ms"] - last["call_ms"], 0.0) * a.share_with_dispatch(last["run_ms"] * 1e3,
                                                                                          last["call_ms"] * 1e3)
            per_block[key] = {"kind": blocks[key].kind, "isolated_ms": m.median_ms, "ref_ms": extra["ref_ms"],
                              "sized_ms": extra["context_ms"], "spread_ms": spread_ms, "run_ms": last["run_ms"],
                              "io_ms": last["io_ms"], "facing_io_ms": last["facing_io_ms"],
                              "kernels_ms": a.block_us / 1e3, "nodes": [len(a.block_ops), len(a.neighbour_ops)]}
            print(f"block {i + 1}/{len(order)} {blocks[key].kind}: run {last['run_ms']:.3f} ms, I/O {last['io_ms']:.3f}, "
                  f"spread {spread_ms:.3f} -> sized {extra['context_ms']:.3f}", flush=True)
        cases = [ModelCase(a.to_string(), [b.key for b in space.blocks(a)], functools.partial(_whole_model, space, a))
                 for a in archs]
        measured = measure_cases(cases, prof, seed=args.seed, rounds=2)
    ref_med = statistics.median(r["ref_ms"] for r in per_block.values())
    call_ms = meter.call_ms / meter.call_ref_ms * ref_med

    def at_ref(key: str, col: str) -> float:
        return per_block[key][col] / per_block[key]["ref_ms"] * ref_med

    rows = []
    for c in cases:
        meas = statistics.median(measured[c.name]["round_ratios"]) * ref_med
        r1, r2 = measured[c.name]["round_ratios"]
        row = {"arch": c.name, "measured_ms": meas, "retest_pct": 100 * abs(r1 - r2) / min(r1, r2),
               "raw_sum_ms": sum(per_block[k]["isolated_ms"] for k in c.keys),
               "spread_ms": call_ms + sum(at_ref(k, "spread_ms") for k in c.keys),
               "sized_ms": call_ms + sum(at_ref(k, "sized_ms") for k in c.keys),
               "io_ms": sum(at_ref(k, "io_ms") for k in c.keys), "facing_io_ms": sum(at_ref(k, "facing_io_ms") for k in c.keys)}
        for col in ("raw_sum", "spread", "sized"):
            row[f"{col}_err_pct"] = 100 * (row[f"{col}_ms"] / meas - 1)
        rows.append(row)
        print(f"{c.name[:40]}: measured {meas:.2f} ms (retest {row['retest_pct']:.1f} %), plain sum {row['raw_sum_err_pct']:+.1f} %, "
              f"I/O spread {row['spread_err_pct']:+.1f} %, I/O sized {row['sized_err_pct']:+.1f} %", flush=True)
    io_cost = meter.describe().get("io_cost", {})
    result = {"backend": args.backend, "space": args.space, "resolution": res, "seed": args.seed,
              "host": {"cpus": os.cpu_count(), "load_before": load_before, "load_after": os.getloadavg()},
              "wall_s": time.perf_counter() - t0, "reference_ms": ref_med, "call_ms": call_ms, "io_cost": io_cost,
              "models": rows, "blocks": per_block}
    out = Path(__file__).resolve().parent / "results" / f"context_io_{args.space}_{args.backend}.json"
    write_result(out, result)
    lines = [f"# Context I/O: whole models vs their blocks ({args.space}, {res} px, {args.backend} 1 thread)", "",
             f"`python bench/context_io.py --backend {args.backend} --space {args.space} --resolution {res} "
             f"--archs {args.archs} --seed {args.seed}`; {os.cpu_count()} CPUs, load {load_before[0]:.2f} before, "
             f"{result['wall_s'] / 60:.1f} min. Predictions from the same block windows, at the reference's median speed; "
             "measured: whole models drift-compensated, median of 2 rounds. Nothing fitted.", "",
             "| arch | measured (ms) | retest | plain sum | I/O spread (before) | I/O sized (now) | context I/O taken out (ms) |",
             "|---|---|---|---|---|---|---|"]
    for i, r in enumerate(rows):
        lines.append(f"| {i} | {r['measured_ms']:.2f} | {r['retest_pct']:.1f} % | {r['raw_sum_err_pct']:+.1f} % | "
                     f"{r['spread_err_pct']:+.1f} % | {r['sized_err_pct']:+.1f} % | {r['io_ms'] - r['facing_io_ms']:.2f} |")
    lines += ["", "I/O cost of a call (ms at the reference's median speed) by bytes in + out, per cache flush before the run:", ""]
    for flush, c in io_cost.items():
        pts = ", ".join(f"{b / 2**20:.2f} MiB: {r * ref_med:.3f}" for b, r in zip(c["total_bytes"], c["ratio"]))
        lines.append(f"- flush of a model's {int(flush) / 2**20:.0f} MiB (capped at 2x the last-level cache: profilers.cache): {pts}")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
