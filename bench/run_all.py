"""Run every benchmark, then write bench/results/SUMMARY.md from the JSON they left.

    python bench/run_all.py                 # every benchmark with its defaults (hours on 2 cores)
    python bench/run_all.py --only reparam_speedup,lgs_coverage
    python bench/run_all.py --summary-only  # just rebuild SUMMARY.md from bench/results/*.json

Timings on shared machines are noisy: each script measures its comparisons side by side in one
run and records the machine and its load average; the summary repeats those next to each figure.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / "results"

# name -> argv after `python bench/<name>.py`; the order puts the cheap ones first
# (lut_accuracy and lgs_device_awareness need a table / a trained supernet: run them by hand, see their docstrings)
BENCHMARKS: dict[str, list[str]] = {
    "machine_drift": [],
    "lgs_coverage": [],
    "reparam_speedup": [],
    "train_throughput": [],
    "train_tiny": ["--minutes", "10"],
    "lut_build": [],
    "lgs_vs_uniform": [],
    "cells_digits": [],
}


def _load(name: str):
    p = RESULTS / f"{name}.json"
    return json.loads(p.read_text()) if p.is_file() else None


def _fmt(x, digits=3) -> str:
    return "—" if x is None else (f"{x:.{digits}f}" if isinstance(x, float) else str(x))


def summarise() -> str:
    out = ["# Benchmark results", "",
           "Every number below is read from `bench/results/*.json`, written by the script named in each section "
           "(rerun with `python bench/run_all.py`). Machines and load averages are the ones those files record.", ""]

    d = _load("reparam_speedup")
    if d:
        dev = d.get("device", {})
        out += ["## Re-parameterization speed-up (`bench/reparam_speedup.py`)", "",
                f"{d.get('space')} at {d.get('resolution')} px; CPU: {dev.get('cpu')} ({dev.get('logical_cpus')} logical), "
                f"torch {dev.get('torch')}, onnxruntime {dev.get('onnxruntime')}. {d.get('note', '')}", "",
                "| model / runtime / threads | training ÷ deploy median latency |", "|---|---|"]
        out += [f"| {k} | {v:.2f}x |" for k, v in d.get("speedup_training_over_deploy", {}).items()]
        out.append("")

    d = _load("lgs_coverage")
    if d:
        out += ["## Latency-range coverage of initial populations (`bench/lgs_coverage.py`)", "",
                "```", json.dumps({k: v for k, v in d.items() if k in ("space", "resolution", "latency_source", "summary",
                                                                             "population", "groups", "bins")}, indent=1)[:3000], "```", ""]

    d = _load("lgs_vs_uniform")
    if d:
        out += ["## LGS vs uniform search at equal evaluations (`bench/lgs_vs_uniform.py`)", "",
                f"space {d.get('space')} at {d.get('resolution')} px; LGS hypervolume ≥ uniform on every seed: "
                f"**{d.get('lgs_ge_uniform_all_seeds')}**", "",
                "| seed | evaluated each | LGS hypervolume | uniform hypervolume | LGS front | uniform front |", "|---|---|---|---|---|---|"]
        for run in d.get("runs", []):
            out.append(f"| {run.get('seed')} | {run.get('evaluated_each')} | {_fmt(run.get('lgs_hypervolume'), 5)} | "
                       f"{_fmt(run.get('uniform_hypervolume'), 5)} | {run.get('lgs_front_size')} | {run.get('uniform_front_size')} |")
        out.append("")

    d = _load("train_tiny")
    if d:
        acc = d.get("acceptance", {})
        out += ["## inas-tiny supernet on synthetic SOD data (`bench/train_tiny.py`)", "",
                f"command: `{d.get('command')}`; training wall time {_fmt(d.get('train', {}).get('elapsed_s'), 0)} s, "
                f"1-min load average during training {d.get('loadavg_1m_during_train_mean')}", "",
                "| model | max-F | MAE | S-measure |", "|---|---|---|---|"]
        for key, label in (("largest_val", "largest subnet"), ("smallest_val", "smallest subnet"),
                           ("ft_baseline_val", "frequency-tuned baseline"), ("untrained_largest_val", "untrained largest")):
            m = d.get(key) or {}
            out.append(f"| {label} | {_fmt(m.get('max_f'))} | {_fmt(m.get('mae'))} | {_fmt(m.get('s_measure'))} |")
        out += ["", "acceptance: " + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in acc.items()), ""]

    d = _load("train_throughput")
    if d:
        out += ["## Sandwich-rule training throughput (`bench/train_throughput.py`)", "",
                "| where | space | device | batch | threads | median s/step | load |", "|---|---|---|---|---|---|---|"]
        for where, block in d.items():
            if not isinstance(block, dict) or "results" not in block:
                continue
            load = block.get("env", {}).get("loadavg")
            for r in block["results"]:
                out.append(f"| {where} | {r.get('space')} | {r.get('device')} | {r.get('batch_size')} | {r.get('threads')} | "
                           f"{_fmt(r.get('median_step_s'))} | {_fmt(load[0] if load else None, 1)} |")
        out.append("")

    mds = [RESULTS / "machine_drift.md", *sorted(RESULTS.glob("lut_*.md")), RESULTS / "lgs_device_awareness.md",
           *sorted(RESULTS.glob("cells_*.md"))]
    for md in (m for m in mds if m.is_file()):
        out += [f"## {md.stem} (from `{md.name}`)", "", md.read_text().strip(), ""]
    return "\n".join(out) + "\n"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", default=None, help="comma-separated benchmark names")
    ap.add_argument("--summary-only", action="store_true")
    args = ap.parse_args()
    names = list(BENCHMARKS) if not args.only else [n.strip() for n in args.only.split(",")]
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        print(f"unknown benchmark(s) {unknown}; available: {', '.join(BENCHMARKS)}", file=sys.stderr)
        return 2
    failed = []
    if not args.summary_only:
        for name in names:
            argv = [sys.executable, str(BENCH / f"{name}.py"), *BENCHMARKS[name]]
            print(f"\n=== {name}: {' '.join(argv[1:])}", flush=True)
            t0 = time.perf_counter()
            rc = subprocess.run(argv).returncode
            print(f"=== {name}: exit {rc} after {time.perf_counter() - t0:.0f} s", flush=True)
            if rc:
                failed.append(name)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "SUMMARY.md").write_text(summarise())
    print(f"wrote {RESULTS / 'SUMMARY.md'}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
