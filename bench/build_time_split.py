"""Where a table build's timing phase spends its time, block by block.

Issue 12 asks for an inas-sod table within 60 min per runtime on 2 cores; an ExecuTorch XNNPACK
build at 320 px took 90 min (72.6 of them timing, 4.7 s per block). This script runs
``hwnas lut build`` itself (default settings, in this process) for ``--blocks`` blocks of a
space (the first of the build's seeded order: a random sample) into a scratch folder, and
accounts for the wall time of every block's measurement (``lut.measure.BlockMeter.measure``):

* each interleaved callable's runs (block, context, reference), timed and untimed together,
  with how many runs each made;
* the cache flushes before context runs (``profilers.cache.CacheFlush``);
* the per-node profile of the context graph (``Profiler.node_profile``, its own flushes included);
* the rest: loading the artifacts (``Profiler.prepare``), the loop, the statistics.

The export phase and the one-off set-up (cache probe, call overhead, I/O cost) are reported
apart. Nothing is changed in how the build measures: the wrappers add two clock reads per run
(~1 us against runs of 0.1-50 ms).

    python bench/build_time_split.py --space inas-sod --backend executorch-xnnpack --threads 1 \\
        --resolution 320 --blocks 16
    → bench/results/build_time_split_<backend><threads>_<space>_<res>.json and .md
"""

from __future__ import annotations

import argparse
import collections
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import write_result  # noqa: E402  (bench/ is on the path of a script run from it)

ROLES = ("block", "context", "ref")  # the names lut.measure.BlockMeter.measure gives measure_together


class Ledger:
    """Seconds and counts per (phase, role), and the per-block totals."""

    def __init__(self):
        self.s = collections.defaultdict(float)
        self.n = collections.Counter()
        self.in_block = False  # inside BlockMeter.measure: per-block accounting, else set-up
        self.per_block: list[dict] = []

    def add(self, what: str, seconds: float, count: int = 1) -> None:
        key = ("block:" if self.in_block else "setup:") + what
        self.s[key] += seconds
        self.n[key] += count


def _timed(fn, ledger: Ledger, what: str):
    def run(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            ledger.add(what, time.perf_counter() - t)
    return run


def instrument(ledger: Ledger) -> None:
    """Wrap the build's pieces (in this process only) so that they report to ``ledger``."""
    import lut.measure as measure
    import profilers.cache as cache
    import profilers.stats as stats

    original_interleaved = stats.time_interleaved

    def time_interleaved(runs, protocol, *a, before=None, **k):
        runs = {n: _timed(f, ledger, f"run {n if n in ROLES else 'other'}") for n, f in runs.items()}
        return original_interleaved(runs, protocol, *a, before=before, **k)

    stats.time_interleaved = time_interleaved  # measure_together imports it at call time

    flush_call = cache.CacheFlush.__call__
    cache.CacheFlush.__call__ = lambda self: _timed(flush_call, ledger, "flush")(self)

    original_measure = measure.BlockMeter.measure

    def measure_block(self, block, arts, window=0):
        prof = self.profiler
        if not getattr(prof, "_split_wrapped", False):
            prof.node_profile = _node_profile(prof.node_profile, ledger)
            prof.prepare = _timed(prof.prepare, ledger, "prepare")
            prof._split_wrapped = True
        before = dict(ledger.s)
        ledger.in_block = True
        t = time.perf_counter()
        try:
            return original_measure(self, block, arts, window)
        finally:
            total = time.perf_counter() - t
            ledger.in_block = False
            row = {k[len("block:"):]: ledger.s[k] - before.get(k, 0.0) for k in ledger.s if k.startswith("block:")}
            ledger.per_block.append(dict(row, key=block.key, kind=block.kind, total=total))

    measure.BlockMeter.measure = measure_block

    original_export = measure.BlockMeter.export_ahead

    def export_ahead(self, *a, **k):
        t = time.perf_counter()
        try:
            return original_export(self, *a, **k)
        finally:
            ledger.add("export_ahead", time.perf_counter() - t)

    measure.BlockMeter.export_ahead = export_ahead


def _node_profile(fn, ledger: Ledger):
    def profile(*a, **k):
        was, was_n = dict(ledger.s), dict(ledger.n)
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            # the profile's own flushes are part of the profile: take them back out of "flush"
            key = ("block:" if ledger.in_block else "setup:") + "flush"
            ledger.s[key] -= ledger.s[key] - was.get(key, 0.0)
            ledger.n[key] -= ledger.n[key] - was_n.get(key, 0)
            ledger.add("node_profile", time.perf_counter() - t)
    return profile


def summarise(ledger: Ledger, wall_s: float, n_space_blocks: int) -> dict:
    per = ledger.per_block
    parts = sorted({k for row in per for k in row if k not in ("key", "kind", "total")})
    total = sum(r["total"] for r in per)
    split = {p: sum(r.get(p, 0.0) for r in per) for p in parts}
    split["rest (loop, statistics)"] = total - sum(split.values())
    runs = {k[len("block:"):]: ledger.n[k] for k in ledger.n if k.startswith("block:")}
    return {
        "blocks": len(per), "wall_s": wall_s, "measure_s": total,
        "per_block_s": {"median": statistics.median(r["total"] for r in per), "mean": total / max(len(per), 1)},
        "split_s": split,
        "split_share": {p: s / total for p, s in split.items()} if total else {},
        "calls_per_block": {k: v / max(len(per), 1) for k, v in runs.items()},
        "setup_s": {k[len("setup:"):]: v for k, v in ledger.s.items() if k.startswith("setup:")},
        "projected_timing_min": total / max(len(per), 1) * n_space_blocks / 60,
        "space_blocks": n_space_blocks,
        "rows": per,
    }


def markdown(res: dict, args) -> str:
    lines = [f"# Build time split: {args.backend} {args.threads} thread(s), {args.space} at {args.resolution} px",
             "", f"`{' '.join(res['command'])}` on {res['machine']}; load before {res['load_before']}; "
             f"build protocol {res.get('build_protocol')}.", "",
             f"{res['blocks']} blocks measured in {res['measure_s']:.1f} s (median {res['per_block_s']['median']:.2f} s, "
             f"mean {res['per_block_s']['mean']:.2f} s per block): the space's {res['space_blocks']} blocks would take "
             f"**{res['projected_timing_min']:.1f} min** of timing at this rate.", "",
             "| part of a block's measurement | s per block | share |", "|---|---:|---:|"]
    for part, s in sorted(res["split_s"].items(), key=lambda kv: -kv[1]):
        lines.append(f"| {part} | {s / max(res['blocks'], 1):.3f} | {100 * res['split_share'][part]:.1f} % |")
    lines += ["", "Calls per block: " + ", ".join(f"{k} {v:.0f}" for k, v in sorted(res["calls_per_block"].items())), "",
              "Set-up and export (once per build): " + ", ".join(f"{k} {v:.1f} s" for k, v in sorted(res["setup_s"].items())),
              ""]
    return "\n".join(lines)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--space", default="inas-sod")
    ap.add_argument("--backend", default="executorch-xnnpack")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--resolution", type=int, default=320)
    ap.add_argument("--blocks", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0, help="the build's seed (which blocks come first)")
    ap.add_argument("--name", default=None, help="result file stem (default from the settings)")
    ap.add_argument("--runs", type=int, default=None,
                    help="pass `--runs N` to the build (a candidate protocol; default: the build's own default)")
    ap.add_argument("--reference-every", type=int, default=None,
                    help="Protocol.reference_every of the build (a candidate protocol; default: the build's own)")
    args = ap.parse_args(argv)
    import hwnas.cli.lut as lut_cli

    if args.reference_every is not None:  # the build reads its protocol from this dict, in this process
        lut_cli.BUILD_PROTOCOL["reference_every"] = args.reference_every

    from hwnas.cli import main as hwnas_main
    from hwnas.space import create

    ledger = Ledger()
    instrument(ledger)
    load_before = [round(x, 2) for x in os.getloadavg()]
    with tempfile.TemporaryDirectory(prefix="hwnas-split-") as tmp:
        cmd = ["lut", "build", "--space", args.space, "--backend", args.backend, "--threads", str(args.threads),
               "--resolutions", str(args.resolution), "--seed", str(args.seed), "--limit", str(args.blocks),
               *(["--runs", str(args.runs)] if args.runs else []), "-o", str(Path(tmp) / "t.parquet")]
        t = time.perf_counter()
        rc = hwnas_main(cmd)
        wall = time.perf_counter() - t
    if rc != 0:
        print(f"hwnas {' '.join(cmd)} exited {rc}", file=sys.stderr)
        return rc
    n_blocks = len({b.key for b in create(args.space).all_blocks([args.resolution])})
    res = summarise(ledger, wall, n_blocks)
    from profilers.fingerprint import cpu_model, cpu_signature

    protocol = dict(lut_cli.BUILD_PROTOCOL, **({"runs": args.runs} if args.runs else {}))  # what the build ran
    res.update(command=["hwnas", *cmd[:-2]], build_protocol=protocol, machine=f"{platform.processor() or platform.machine()} "
               f"({cpu_model()}, {cpu_signature()}, {os.cpu_count()} cores)", load_before=load_before,
               cache_env=os.environ.get("HWNAS_CACHE_BYTES"))
    stem = args.name or f"build_time_split_{args.backend}{args.threads}_{args.space}_{args.resolution}"
    out = Path(__file__).resolve().parent / "results"
    write_result(out / f"{stem}.json", res)
    (out / f"{stem}.md").write_text(markdown(res, args))
    print(markdown(res, args))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
