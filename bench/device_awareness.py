"""Device awareness across runtimes (thesis table 3.6, extended): one supernet, one latency table per
runtime, one LGS search per table, every runtime's winners measured on every runtime.

For each ``--lut NAME=PATH`` (two or more: ONNX Runtime, ExecuTorch-XNNPACK, OpenVINO, LiteRT, …) a
default ``hwnas search`` runs (thesis settings unless overridden: N=1000, G=10, k=100, 20
iterations) on the same supernet, data and seed; its wall and CPU time are recorded. At several
equal-accuracy targets ``t`` spread over the max-F range every Pareto front reaches, each search's
winner is the fastest member of its own front (by its own table) with max-F >= t. Every distinct
winner is exported in deploy form and measured end to end on every table's runtime (the table's
backend, threads and protocol). Written per target:

* the **latency matrix**: rows = the runtime searched for, columns = the runtime measured on;
* each runtime's **gain from its own winner**: on runtime D, how much faster D's own winner is than
  each other search's winner (and than their mean); where D's own winner is not the fastest on D,
  the reason is worked out from D's table: either the table ranks the two winners the wrong way
  round (a table error), or it ranks them right and D's search did not reach the faster one;
* the **Kendall tau** between every pair of tables' latencies over every architecture any search
  evaluated (1 = the runtimes rank architectures alike: nothing to gain from a device-specific search).

Four runtimes at one thread on inas-tiny (build the four tables first, ``hwnas lut build --space
inas-tiny --backend B --threads 1 --out ...``):

    .venv/bin/python bench/device_awareness.py --supernet runs/train_tiny_450/supernet.pt \\
        --data runs/bench_synth/val --calib runs/bench_synth/train \\
        --lut ort=luts/tiny-ort1.parquet --lut xnnpack=luts/tiny-xnn1.parquet \\
        --lut openvino=luts/tiny-ov1.parquet --lut litert=luts/tiny-litert1.parquet --work-dir runs/device_awareness
    → bench/results/device_awareness.{json,md,png}

Resumable: searches resume from their run directories, whole-model measurements from journals.
``bench/lgs_device_awareness.py`` is this script with its former output name.
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
from itertools import combinations
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
    fastest front member (own table) at or above it."""
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


def tau_matrix(lat_by_lut: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Kendall tau between every pair of tables' latencies over the architectures they all price."""
    from scipy import stats

    names = list(lat_by_lut)
    common = sorted(set.intersection(*(set(v) for v in lat_by_lut.values())))
    out = {a: {a: 1.0} for a in names}
    for a, b in combinations(names, 2):
        tau = float(stats.kendalltau([lat_by_lut[a][s] for s in common], [lat_by_lut[b][s] for s in common]).statistic)
        out[a][b] = out[b][a] = tau
    return out


def analyse_target(pick: dict, measured: dict[str, dict[str, float]], lat_by_lut: dict[str, dict[str, float]],
                   fronts: dict[str, list[dict]]) -> dict:
    """The latency matrix of one target, each runtime's gain from its own winner, and why a runtime's
    own winner is not the fastest on it where that happens. ``measured[runtime][arch]`` in ms."""
    names = list(pick["winners"])
    arch = {n: pick["winners"][n]["arch"] for n in names}
    matrix = {s: {d: measured[d][arch[s]] for d in names} for s in names}  # rows searched for, columns measured on
    gains = {}
    for d in names:
        own = matrix[d][d]
        others = {s: matrix[s][d] for s in names if s != d}
        vs = {s: 100.0 * (ms - own) / ms for s, ms in others.items()}
        fastest = min(names, key=lambda s: matrix[s][d])
        g = {"own_ms": own, "vs_pct": vs, "vs_mean_of_others_pct": 100.0 * (sum(others.values()) / len(others) - own)
             / (sum(others.values()) / len(others)), "own_is_fastest": arch[fastest] == arch[d] or own <= min(others.values())}
        if not g["own_is_fastest"]:
            g["why_not"] = why_not_fastest(d, arch[d], arch[fastest], fastest, matrix, lat_by_lut, fronts)
        gains[d] = g
    return {"target_max_f": pick["target_max_f"], "winners": pick["winners"], "matrix_ms": matrix, "gains": gains}


def why_not_fastest(d: str, own_arch: str, faster_arch: str, faster_search: str, matrix, lat_by_lut, fronts) -> str:
    """Table error (it ranks the two the wrong way round) or search miss (ranked right, not reached)."""
    pred_own, pred_other = lat_by_lut[d].get(own_arch), lat_by_lut[d].get(faster_arch)
    meas_own, meas_other = matrix[d][d], matrix[faster_search][d]
    if pred_own is None or pred_other is None:
        return f"{d}'s table did not price {faster_search}'s winner"
    on_front = any(r["arch"] == faster_arch for r in fronts[d])
    if pred_own <= pred_other:
        return (f"table error: {d}'s table predicts its own winner faster ({pred_own:.3f} vs {pred_other:.3f} ms), "
                f"measured slower ({meas_own:.3f} vs {meas_other:.3f} ms)")
    where = "is on its front but misses the accuracy target" if on_front else "was not reached by its search"
    return (f"search miss: {d}'s table ranks {faster_search}'s winner faster ({pred_other:.3f} vs {pred_own:.3f} ms) "
            f"but that architecture {where}")


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
        # the artifact users deploy where a backend can make it two ways (ONNX: the dynamo exporter)
        prof = table_profiler(table, runs=runs, artifacts={"exporter": "dynamo"})
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

    fig, axes = plt.subplots(1, len(names), figsize=(5.0 * len(names), 4.2), squeeze=False)
    for ax, device in zip(axes[0], names):
        for searched, marker in zip(names, "os^vDP*x"):
            pts = sorted((lat_by_lut[device][r["arch"]], r["max_f"]) for r in fronts[searched])
            ax.step([p[0] for p in pts], [p[1] for p in pts], where="post", marker=marker, ms=4,
                    label=f"searched with {searched}")
        ax.set_xlabel(f"latency on {device} (its table, ms)")
        ax.set_ylabel("max-F (supernet weights)")
        ax.set_title(f"every Pareto front, {device} latency")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def report_lines(result: dict, args_text: str) -> list[str]:
    names = list(result["luts"])
    host = result["host"]
    lines = [f"# Device awareness: {result['space']}, searches with {', '.join(names)} (thesis table 3.6, extended)", "",
             f"Machine: {host.get('cpu_model')}, {host.get('logical_cores', os.cpu_count())} logical cores. {args_text}", "",
             "| search | wall | CPU time | evaluated | front | load before→after |", "|---|---|---|---|---|---|"]
    for n in names:
        t = result["searches"][n]
        lines.append(f"| {n} | {t['wall_s'] / 60:.1f} min | {t['cpu_s'] / 60:.1f} min | {result['evaluated'][n]} | "
                     f"{result['front_sizes'][n]} | {t['load_before']}→{t['load_after']} |")
    tau = result["kendall_tau"]
    lines += ["", f"Kendall τ between the tables' latencies over all {result['n_candidates']} evaluated architectures "
                  "(1 = the runtimes rank every architecture alike):", "",
              "| | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    lines += [f"| {a} | " + " | ".join(f"{tau[a][b]:.3f}" for b in names) + " |" for a in names]
    for t in result["targets"]:
        lines += ["", f"## Target max-F ≥ {t['target_max_f']:.4f}", "",
                  "Measured end to end (median ms); rows: the runtime searched for, columns: the runtime measured on "
                  "(diagonal: each runtime's own winner).", "",
                  "| searched for \\ measured on | max-F | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
        for s in names:
            lines.append(f"| {s} | {t['winners'][s]['max_f']:.4f} | "
                         + " | ".join(("**{:.3f}**" if s == d else "{:.3f}").format(t["matrix_ms"][s][d]) for d in names) + " |")
        lines += ["", "| runtime | own winner ms | gain vs mean of others | gain vs each other | fastest on itself? |",
                  "|---|---|---|---|---|"]
        for d in names:
            g = t["gains"][d]
            each = ", ".join(f"{s} {v:+.1f} %" for s, v in g["vs_pct"].items())
            why = "yes" if g["own_is_fastest"] else f"no: {g['why_not']}"
            lines.append(f"| {d} | {g['own_ms']:.3f} | {g['vs_mean_of_others_pct']:+.1f} % | {each} | {why} |")
    lines += ["", "Mean gain of each runtime's own winner over the other searches' winners, across targets: "
              + ", ".join(f"{d} {v:+.1f} %" for d, v in result["mean_gain_pct"].items())
              + ". Thesis (two devices): 10.9–14.5 %.", "",
              f"Distinct winning architectures: {result['distinct_winners']}. Fronts in each runtime's latency: "
              f"`{result['name']}.png`."]
    return lines


def main(argv: list[str] | None = None, default_name: str = "device_awareness") -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default=None, help="default: the supernet checkpoint's")
    ap.add_argument("--supernet", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--calib", required=True)
    ap.add_argument("--lut", action="append", required=True, metavar="NAME=PATH", help="two or more runtime tables")
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
    ap.add_argument("--name", default=default_name, help=f"output name under bench/results (default {default_name})")
    ap.add_argument("--results", default=str(RESULTS), help="output folder (default bench/results)")
    args = ap.parse_args(argv)

    if any("=" not in x for x in args.lut):
        ap.error("--lut takes NAME=PATH")
    luts = dict(x.split("=", 1) for x in args.lut)
    if len(luts) < 2:
        ap.error("give at least two --lut NAME=PATH")
    names = list(luts)
    work = Path(args.work_dir)
    work.mkdir(parents=True, exist_ok=True)
    results = Path(args.results)

    from deploy.fileio import atomic_write_json, atomic_write_text
    from hwnas.arch import Arch
    from hwnas.checkpoint import checkpoint_space, load_checkpoint
    from hwnas.search.fitness import LutLatency
    from hwnas.space import create
    from profilers.fingerprint import host_info

    space = create(args.space) if args.space else checkpoint_space(load_checkpoint(args.supernet))
    timings = {n: run_search(n, luts[n], args, work) for n in names}
    fronts, pops = {}, {}
    for n in names:
        d = Path(timings[n]["out"])
        fronts[n] = [dict(r, latency_ms=float(r["latency_ms"]), max_f=float(r["max_f"])) for r in read_csv(d / "pareto.csv")]
        pops[n] = read_csv(d / "population.csv")

    latency = {n: LutLatency.from_file(luts[n], space) for n in names}
    every = sorted({r["arch"] for n in names for r in pops[n]} | {r["arch"] for n in names for r in fronts[n]})
    lat_by_lut = {n: {s: float(latency[n](Arch.from_string(s))) for s in every} for n in names}

    picks = pick_winners(fronts, args.targets)
    winners = sorted({w["arch"] for p in picks for w in p["winners"].values()})
    measured = measure(winners, luts, space, work, args.runs, args.rounds)
    targets = [analyse_target(p, measured, lat_by_lut, fronts) for p in picks]
    for t in targets:
        for n, w in t["winners"].items():
            w["predicted_ms"] = {d: lat_by_lut[d][w["arch"]] for d in names}
    mean_gain = {d: sum(t["gains"][d]["vs_mean_of_others_pct"] for t in targets) / len(targets) for d in names}

    plot(fronts, lat_by_lut, names, results / f"{args.name}.png")
    result = {"name": args.name, "host": host_info(), "space": space.name, "luts": luts, "searches": timings,
              "kendall_tau": tau_matrix(lat_by_lut), "n_candidates": len(every),
              "evaluated": {n: len(pops[n]) for n in names}, "front_sizes": {n: len(fronts[n]) for n in names},
              "targets": targets, "mean_gain_pct": mean_gain, "distinct_winners": len(winners),
              "measured_ms": measured}
    atomic_write_json(results / f"{args.name}.json", result)
    settings = (f"One supernet (`{args.supernet}`), seed {args.seed}, N={args.population}, G={args.groups}, "
                f"k={args.keep}, {args.iterations} iterations.")
    lines = report_lines(result, settings)
    atomic_write_text(results / f"{args.name}.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
