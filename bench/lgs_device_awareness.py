"""Device awareness (thesis table 3.6): one supernet, two device LUTs, two searches, every winner
measured on both runtimes.

For each ``--lut NAME=PATH`` a default ``hwnas search`` runs (thesis settings unless overridden:
N=1000, G=10, k=100, 20 iterations) on the same supernet, data and seed; its wall and CPU time
are recorded (the 15-minute goal of a default search on 2 cores). Then, at several equal-accuracy
targets ``t`` spread over the max-F range both Pareto fronts reach, each search's winner is the
fastest member of its own front (by its own LUT) with max-F >= t — the thesis compares a
device-specific model with the model searched for another device at equal accuracy. Every distinct
winner is exported in deploy form and measured end to end on every table's runtime (the table's
own backend, threads and protocol); the table reports how much faster each device's own winner is
on that device than the other device's winner. How differently the two tables rank
architectures (Kendall tau over every evaluated candidate) says how much room there was.

    .venv/bin/python bench/lgs_device_awareness.py --supernet runs/train_tiny_450/supernet.pt \\
        --data runs/bench_synth/val --calib runs/bench_synth/train \\
        --lut ort1=/tmp/luts/tiny-ort1.parquet --lut xnnpack1=/tmp/luts/tiny-xnn1.parquet --work-dir runs/device_awareness
    → bench/results/lgs_device_awareness.{json,md,png}

Resumable: searches resume from their run directories, whole-model measurements from journals.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results"


def loadavg() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def children_cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_search(name: str, lut: str, args, work: Path) -> dict:
    out = work / f"search-{name}"
    cmd = [sys.executable, "-m", "hwnas", "search", "--supernet", args.supernet, "--lut", lut, "--data", args.data,
           "--calib", args.calib, "--out", str(out), "--population", str(args.population), "--groups", str(args.groups),
           "--keep", str(args.keep), "--iterations", str(args.iterations), "--seed", str(args.seed), "--quiet"]
    if args.resolution:
        cmd += ["--resolution", str(args.resolution)]
    done_marker = out / "bench_timing.json"
    if done_marker.is_file():  # finished earlier: keep the timing of the run that did the work
        return json.loads(done_marker.read_text())
    before, t0, c0 = loadavg(), time.perf_counter(), children_cpu_s()
    print(f"[device-awareness] search with {name}: {' '.join(cmd)}", file=sys.stderr)
    subprocess.run(cmd, check=True)
    timing = {"name": name, "lut": lut, "out": str(out), "command": cmd, "wall_s": time.perf_counter() - t0,
              "cpu_s": children_cpu_s() - c0, "load_before": before, "load_after": loadavg()}
    done_marker.write_text(json.dumps(timing, indent=2))
    return timing


def read_csv(path: Path) -> list[dict]:
    with open(path) as f:
        return list(csv.DictReader(f))


def pick_winners(fronts: dict[str, list[dict]], n_targets: int) -> list[dict]:
    """Equal-accuracy targets over the max-F range every front reaches; per target and search, the
    fastest front member (own LUT) at or above it."""
    import numpy as np

    lo = max(min(r["max_f"] for r in f) for f in fronts.values())
    hi = min(max(r["max_f"] for r in f) for f in fronts.values())
    targets = [hi] if hi <= lo else list(np.linspace(lo, hi, n_targets))
    picks = []
    for t in targets:
        row = {"target_max_f": float(t), "winners": {}}
        for name, front in fronts.items():
            ok = [r for r in front if r["max_f"] >= t - 1e-12]
            best = min(ok, key=lambda r: r["latency_ms"])
            row["winners"][name] = {"arch": best["arch"], "max_f": best["max_f"], "own_lut_ms": best["latency_ms"]}
        picks.append(row)
    return picks


def measure(archs: list[str], luts: dict[str, str], space, work: Path, runs: int | None,
            rounds: int) -> dict[str, dict[str, float]]:
    """``{lut name: {arch: measured median ms}}``: whole deploy-form models on each table's runtime."""
    import torch

    from hwnas.arch import Arch
    from hwnas.model import SODNet, for_export
    from lut.table import LatencyTable
    from lut.validate import ModelCase, measure_cases, table_profiler

    out: dict[str, dict[str, float]] = {}
    for name, path in luts.items():
        table = LatencyTable.read(path)
        prof = table_profiler(table, runs=runs, exporter="dynamo")
        cases = []
        for s in archs:
            a = Arch.from_string(s)

            def build(a=a):
                return for_export(SODNet(space, a)), (torch.randn(1, 3, a.resolution, a.resolution),)

            cases.append(ModelCase(s, [b.key for b in space.blocks(a)], build))
        got = measure_cases(cases, prof, journal=work / f"measured-{name}.jsonl", rounds=rounds)
        out[name] = {s: float(got[s]["median_ms"]) for s in archs}
    return out


def plot(fronts, lat_by_lut, names, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4.2))
    for ax, device in zip(axes, names):
        for searched, marker in zip(names, ("o", "s", "^", "v")):
            pts = sorted((lat_by_lut[device][r["arch"]], r["max_f"]) for r in fronts[searched])
            ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", marker=marker, ms=4,
                    label=f"front searched with {searched}")
        ax.set_xlabel(f"latency on {device} (LUT, ms)")
        ax.set_ylabel("max-F (supernet weights)")
        ax.set_title(f"both Pareto fronts, {device} latency")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default=None, help="default: the supernet checkpoint's")
    ap.add_argument("--supernet", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--calib", required=True)
    ap.add_argument("--lut", action="append", required=True, metavar="NAME=PATH", help="two or more device tables")
    ap.add_argument("--work-dir", default="runs/device_awareness")
    ap.add_argument("--resolution", type=int, default=None)
    ap.add_argument("--population", type=int, default=1000)
    ap.add_argument("--groups", type=int, default=10)
    ap.add_argument("--keep", type=int, default=100)
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--targets", type=int, default=4, help="equal-accuracy targets")
    ap.add_argument("--runs", type=int, default=None, help="timed runs per whole model (default: the table's)")
    ap.add_argument("--rounds", type=int, default=3, help="round-robin windows per whole model (the fastest is kept)")
    ap.add_argument("--name", default="lgs_device_awareness")
    args = ap.parse_args()

    luts = dict(x.split("=", 1) for x in args.lut)
    if len(luts) < 2:
        ap.error("give at least two --lut NAME=PATH")
    names = list(luts)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)

    from scipy import stats

    from hwnas.checkpoint import checkpoint_space, load_checkpoint
    from hwnas.search.fitness import LutLatency
    from hwnas.space import create

    space = create(args.space) if args.space else checkpoint_space(load_checkpoint(args.supernet))
    timings = {n: run_search(n, luts[n], args, work) for n in names}
    fronts, pops = {}, {}
    for n in names:
        d = Path(timings[n]["out"])
        fronts[n] = [dict(r, latency_ms=float(r["latency_ms"]), max_f=float(r["max_f"])) for r in read_csv(d / "pareto.csv")]
        pops[n] = read_csv(d / "population.csv")

    latency = {n: LutLatency.from_file(luts[n], space) for n in names}
    from hwnas.arch import Arch

    every = sorted({r["arch"] for n in names for r in pops[n]} | {r["arch"] for n in names for r in fronts[n]})
    lat_by_lut = {n: {s: float(latency[n](Arch.from_string(s))) for s in every} for n in names}
    tau = float(stats.kendalltau([lat_by_lut[names[0]][s] for s in every], [lat_by_lut[names[1]][s] for s in every]).statistic)

    picks = pick_winners(fronts, args.targets)
    winners = sorted({w["arch"] for p in picks for w in p["winners"].values()})
    measured = measure(winners, luts, space, work, args.runs, args.rounds)
    for p in picks:
        for w in p["winners"].values():
            w["predicted_ms"] = {n: lat_by_lut[n][w["arch"]] for n in names}
            w["measured_ms"] = {n: measured[n][w["arch"]] for n in names}
        # on each device: own winner vs each other search's winner at the same target
        p["saving_pct"] = {}
        for dev in names:
            own = p["winners"][dev]["measured_ms"][dev]
            for other in names:
                if other != dev:
                    theirs = p["winners"][other]["measured_ms"][dev]
                    p["saving_pct"][f"{dev} vs {other}"] = 100 * (theirs - own) / theirs

    plot(fronts, lat_by_lut, names, RESULTS / f"{args.name}.png")
    from profilers.fingerprint import host_info

    result = {"host": host_info(), "space": space.name, "luts": luts, "searches": timings, "kendall_tau_luts": tau,
              "n_candidates": len(every), "front_sizes": {n: len(fronts[n]) for n in names}, "targets": picks,
              "distinct_winners": len(winners)}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.name}.json").write_text(json.dumps(result, indent=2))

    lines = [f"# Device awareness: {space.name}, searches with {', '.join(names)} (thesis table 3.6)", "",
             f"Machine: {result['host']['cpu_model']}, {os.cpu_count()} cores. One supernet (`{args.supernet}`), "
             f"seed {args.seed}, N={args.population}, G={args.groups}, k={args.keep}, {args.iterations} iterations.", "",
             "| search | wall | CPU time | evaluated | front | load before→after |", "|---|---|---|---|---|---|"]
    for n in names:
        t = timings[n]
        lines.append(f"| {n} | {t['wall_s'] / 60:.1f} min | {t['cpu_s'] / 60:.1f} min | {len(pops[n])} | {len(fronts[n])} | "
                     f"{t['load_before']}→{t['load_after']} |")
    lines += ["", f"Kendall τ between the two tables' latencies over all {len(every)} evaluated architectures: {tau:.3f} "
                  "(1 = the devices rank every architecture alike: nothing to gain from a device-specific search).", "",
              "Winners at equal accuracy (fastest front member with max-F ≥ target, by its own table), measured end to end "
              "(median ms) on each runtime:", ""]
    head = "| target max-F | searched with | max-F | " + " | ".join(f"measured on {n}" for n in names) + " | " + \
           " | ".join(f"LUT {n}" for n in names) + " |"
    lines += [head, "|" + "---|" * (3 + 2 * len(names))]
    for p in picks:
        for n in names:
            w = p["winners"][n]
            lines.append(f"| {p['target_max_f']:.4f} | {n} | {w['max_f']:.4f} | "
                         + " | ".join(f"{w['measured_ms'][d]:.3f}" for d in names) + " | "
                         + " | ".join(f"{w['predicted_ms'][d]:.3f}" for d in names) + " |")
    lines += ["", "Own winner vs the other search's winner on each device (positive: the device's own search is faster there):", "",
              "| target max-F | " + " | ".join(picks[0]["saving_pct"]) + " |", "|---|" + "---|" * len(picks[0]["saving_pct"])]
    for p in picks:
        lines.append(f"| {p['target_max_f']:.4f} | " + " | ".join(f"{v:+.1f} %" for v in p["saving_pct"].values()) + " |")
    lines += ["", f"Distinct winning architectures: {len(winners)}. Fronts in each device's latency: `{args.name}.png`."]
    (RESULTS / f"{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
