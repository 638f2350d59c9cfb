"""LUT build cost and repeatability: distinct blocks and wall time for inas-tiny and inas-sod.

For each space: the number of distinct blocks at the chosen resolutions, the wall time of a full
``lut.build`` with ONNX Runtime CPU (1 thread, the CLI's build protocol), and repeatability — a
second, independent measurement of a random subset of blocks (another seed, another process
state) compared block by block: relative spread ``|m1 - m2| / mean(m1, m2)``.

A build already done with ``hwnas lut build`` can be reused (``--sod-table``/``--tiny-table``):
its wall time is then the span of its rows' ``measured_at`` stamps (the build's own record).

    .venv/bin/python bench/lut_build.py --clock thread_cpu --sod-table /tmp/luts/sod-ort1-cpu.parquet
    → bench/results/lut_build.json and lut_build.md
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import tempfile
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def profiler(threads: int, clock: str):
    import profilers
    from hwnas.cli.lut import BUILD_PROTOCOL
    from profilers.stats import Protocol

    return profilers.get("onnxruntime-cpu", threads=threads, exporter="torchscript",
                         protocol=Protocol(**BUILD_PROTOCOL, clock=clock))


def cpu_s() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def span_s(table) -> float:
    stamps = sorted(dt.datetime.fromisoformat(x) for x in table.rows["measured_at"])
    return (stamps[-1] - stamps[0]).total_seconds()


def one_space(name: str, resolutions, table_path: str | None, repeat: int, threads: int, clock: str, seed: int) -> dict:
    from hwnas.space import create
    from lut.build import build
    from lut.table import LatencyTable

    space = create(name)
    blocks = space.all_blocks(resolutions)
    meta = {"name": space.name, "hash": space.hash}
    out: dict = {"space": name, "hash": space.hash, "resolutions": list(resolutions or space.resolutions),
                 "distinct_blocks": len(blocks), "load_before": loadavg()}
    if table_path:
        table = LatencyTable.read(table_path)
        table.check_compatible(space_hash=space.hash)
        out.update(table=table_path, wall_s=span_s(table), wall_source="measured_at span of the reused table")
    else:
        path = Path(tempfile.mkdtemp(prefix=f"lutbench-{name}-")) / "lut.parquet"
        t0, c0 = time.perf_counter(), cpu_s()
        table = build(blocks, profiler(threads, clock), path, meta, resolutions=resolutions, seed=seed)
        # CPU seconds: what the build would take on an idle machine (1 thread), load or not
        out.update(table=str(path), wall_s=time.perf_counter() - t0, cpu_s=cpu_s() - c0, wall_source="timed here")
    out["complete"] = all(b.key in table for b in blocks)
    out["sum_of_medians_ms"] = float(table.rows["median_ms"].sum())
    out["unstable_rows"] = int(table.rows["unstable"].sum())
    out["protocol"] = table.protocol

    if repeat:
        subset = random.Random(seed + 1).sample(blocks, min(repeat, len(blocks)))
        path2 = Path(tempfile.mkdtemp(prefix=f"lutbench-{name}-rep-")) / "lut.parquet"
        prof = profiler(int(table.device.get("threads") or threads), table.protocol.get("clock", "wall"))
        t0 = time.perf_counter()
        again = build(subset, prof, path2, meta, resolutions=resolutions, seed=seed + 1)
        rep_s = time.perf_counter() - t0
        m1 = np.array([table.median_ms(b.key) for b in subset])
        m2 = np.array([again.median_ms(b.key) for b in subset])
        rel = np.abs(m1 - m2) / ((m1 + m2) / 2)
        out["repeat"] = {"blocks": len(subset), "wall_s": rep_s, "median_rel_spread_pct": float(100 * np.median(rel)),
                         "p90_rel_spread_pct": float(100 * np.percentile(rel, 90)),
                         "max_rel_spread_pct": float(100 * rel.max()),
                         "sum_rel_diff_pct": float(100 * (m2.sum() - m1.sum()) / m1.sum())}
    out["load_after"] = loadavg()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clock", default="wall", choices=["wall", "thread_cpu"])
    ap.add_argument("--sod-resolutions", default="320")
    ap.add_argument("--sod-table", default=None, help="reuse a finished inas-sod table")
    ap.add_argument("--tiny-table", default=None, help="reuse a finished inas-tiny table")
    ap.add_argument("--repeat", type=int, default=100, help="blocks re-measured for the repeatability figure")
    ap.add_argument("--skip-sod", action="store_true")
    ap.add_argument("--skip-tiny", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()

    import torch

    torch.set_num_threads(1)
    runs = [] if args.skip_tiny else [one_space("inas-tiny", None, args.tiny_table, args.repeat, args.threads, args.clock,
                                                args.seed)]
    if not args.skip_sod:
        res = [int(r) for r in args.sod_resolutions.split(",")]
        runs.append(one_space("inas-sod", res, args.sod_table, args.repeat, args.threads, args.clock, args.seed))
    from profilers.fingerprint import host_info

    result = {"host": host_info(), "cpu_count": os.cpu_count(), "runs": runs}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "lut_build.json").write_text(json.dumps(result, indent=2))
    lines = ["# LUT build cost and repeatability (ONNX Runtime CPU)", "",
             f"CPU: {result['host']['cpu_model']}, {os.cpu_count()} cores (load averages listed: a busy machine slows every number)", "",
             "| space | resolutions | distinct blocks | wall | CPU time | repeat: blocks, median / p90 / max spread, sum diff | load before→after |",
             "|---|---|---|---|---|---|---|"]
    for r in runs:
        rep = r.get("repeat")
        rep_s = (f"{rep['blocks']}, {rep['median_rel_spread_pct']:.1f} / {rep['p90_rel_spread_pct']:.1f} / "
                 f"{rep['max_rel_spread_pct']:.1f} %, {rep['sum_rel_diff_pct']:+.2f} %") if rep else "-"
        cpu = f"{r['cpu_s'] / 60:.1f} min" if "cpu_s" in r else "-"
        lines.append(f"| {r['space']} | {r['resolutions']} | {r['distinct_blocks']} | {r['wall_s'] / 60:.1f} min | {cpu} | {rep_s} | "
                     f"{r['load_before']}→{r['load_after']} |")
    (RESULTS / "lut_build.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
