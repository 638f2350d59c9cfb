"""How steady is this machine? One fixed model timed back to back for a while, in short windows.

A latency table can only be as accurate as the machine is steady: if the same model runs 20 %
slower for a few seconds now and then, a block (or a whole model) measured in such a window
carries that error. This script runs the largest inas-tiny subnet (ONNX Runtime, 1 thread) for
``--seconds`` and reports the median of every ``--window-s`` window, their spread, and the share of
windows more than 5 % / 10 % off the overall median, next to the kernel's steal-time counter (a
hypervisor taking the CPU away shows there; host-level cache or memory-bandwidth contention does not).

Two probes run in turn with the model in every window, to tell what kind of slowdown it is: a
pure-Python integer loop (instructions and L1 only: it moves with the core's clock or an SMT
sibling's share of the core) and a copy of 16 MiB (twice this kind of L3: it moves with memory
bandwidth). Per window each probe's median, its correlation with the model's across windows, and
its speed in the model's fast windows over its slow ones.

    .venv/bin/python bench/machine_drift.py --seconds 60
    → bench/results/machine_drift.{json,md,png}
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results"


def steal_ticks() -> int | None:
    try:
        fields = open("/proc/stat").readline().split()
        return int(fields[8])
    except (OSError, IndexError, ValueError):
        return None


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--window-s", type=float, default=0.5)
    ap.add_argument("--resolution", type=int, default=64)
    args = ap.parse_args()

    import onnxruntime as ort
    import torch

    from hwnas.model import SODNet, for_export
    from hwnas.space import create
    from profilers.fingerprint import host_info
    from deploy.onnx_export import export_torchscript_onnx

    torch.manual_seed(0)
    space = create("inas-tiny")
    arch = space.largest(args.resolution)
    x = torch.randn(1, 3, args.resolution, args.resolution)
    with tempfile.TemporaryDirectory() as d:
        path = export_torchscript_onnx(for_export(SODNet(space, arch)), (x,), Path(d) / "m.onnx")
        so = ort.SessionOptions()
        so.intra_op_num_threads, so.inter_op_num_threads = 1, 1
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    feed = {sess.get_inputs()[0].name: x.numpy()}
    src = np.ones(16 << 18, dtype=np.float32)  # 16 MiB
    dst = np.empty_like(src)

    def alu():
        v = 0
        for i in range(4000):
            v = (v * 1103515245 + i) & 0xFFFFFFFF
        return v

    probes = {"model": lambda: sess.run(None, feed), "alu": alu, "copy_16mib": lambda: np.copyto(dst, src)}
    t_warm = time.perf_counter()
    while time.perf_counter() - t_warm < 1.0:
        sess.run(None, feed)
    load_before, steal0 = os.getloadavg(), steal_ticks()
    windows, t_end = [], time.perf_counter() + args.seconds
    probe_windows = {k: [] for k in probes if k != "model"}
    while time.perf_counter() < t_end:
        wall, cpu, t0 = [], [], time.perf_counter()
        probe_ms = {k: [] for k in probe_windows}
        while time.perf_counter() - t0 < args.window_s:
            a, b = time.perf_counter(), time.thread_time()
            probes["model"]()
            wall.append(time.perf_counter() - a)
            cpu.append(time.thread_time() - b)
            for k in probe_ms:
                a = time.perf_counter()
                probes[k]()
                probe_ms[k].append((time.perf_counter() - a) * 1e3)
        windows.append((float(np.median(wall) * 1e3), float(np.median(cpu) * 1e3)))
        for k, v in probe_ms.items():
            probe_windows[k].append(float(np.median(v)))
    steal1 = steal_ticks()
    w = np.array(windows)
    overall = float(np.median(w[:, 0]))
    dev = w[:, 0] / overall - 1
    result = {
        "host": host_info(), "model": f"inas-tiny largest at {args.resolution}px, ONNX Runtime 1 thread",
        "seconds": args.seconds, "window_s": args.window_s, "windows": len(w), "median_ms": overall,
        "window_medians_wall_ms": w[:, 0].tolist(), "window_medians_thread_cpu_ms": w[:, 1].tolist(),
        "p5_p95_pct": [float(100 * np.percentile(dev, 5)), float(100 * np.percentile(dev, 95))],
        "max_pct": float(100 * dev.max()), "share_off_5_pct": float(100 * (np.abs(dev) > 0.05).mean()),
        "share_off_10_pct": float(100 * (np.abs(dev) > 0.10).mean()),
        "cpu_vs_wall_max_diff_pct": float(100 * np.max(np.abs(w[:, 1] / w[:, 0] - 1))),
        "steal_ticks": None if steal0 is None or steal1 is None else steal1 - steal0,
        "load_before": [round(v, 2) for v in load_before], "load_after": [round(v, 2) for v in os.getloadavg()],
    }
    # the model's fast windows: more than 15 % below its median (a second speed state, where there is one)
    fast = dev < -0.15
    result["fast_windows"] = int(fast.sum())
    result["probes"] = {}
    for k, v in probe_windows.items():
        pv = np.array(v)
        entry = {"window_medians_ms": v, "median_ms": float(np.median(pv)),
                 "corr_with_model": float(np.corrcoef(pv, w[:, 0])[0, 1]) if len(pv) > 2 else None,
                 "fast_over_slow": (float(np.median(pv[fast]) / np.median(pv[~fast]))
                                    if fast.any() and (~fast).any() else None)}
        entry["model_fast_over_slow"] = (float(np.median(w[fast, 0]) / np.median(w[~fast, 0]))
                                         if fast.any() and (~fast).any() else None)
        result["probes"][k] = entry
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "machine_drift.json").write_text(json.dumps(result, indent=2))

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.2))
    t = np.arange(len(w)) * args.window_s
    ax.plot(t, w[:, 0], lw=1, label="wall")
    ax.plot(t, w[:, 1], lw=1, ls="--", label="thread CPU time")
    for k, e in result["probes"].items():  # on the model's scale: each probe's window median x model median / its median
        ax.plot(t, np.array(e["window_medians_ms"]) * overall / e["median_ms"], lw=0.8, alpha=0.8,
                label=f"{k} (scaled to the model's median)")
    ax.axhline(overall, color="k", lw=0.6)
    ax.set_xlabel("time (s)")
    ax.set_ylabel(f"median per {args.window_s:g} s window (ms)")
    ax.set_title(f"one model, back to back: {result['host']['cpu_model']}, {os.cpu_count()} cores")
    ax.legend()
    fig.tight_layout()
    fig.savefig(RESULTS / "machine_drift.png", dpi=120)

    lines = ["# Machine steadiness: one model timed back to back", "",
             f"{result['model']}; {result['host']['cpu_model']}, {os.cpu_count()} cores; load {result['load_before']}→"
             f"{result['load_after']}; {len(w)} windows of {args.window_s:g} s.", "",
             f"- median {overall:.3f} ms; window medians from {100 * dev.min():+.1f} % to {100 * dev.max():+.1f} % "
             f"(5th–95th percentile {result['p5_p95_pct'][0]:+.1f} … {result['p5_p95_pct'][1]:+.1f} %)",
             f"- windows more than 5 % off: {result['share_off_5_pct']:.0f} %; more than 10 % off: {result['share_off_10_pct']:.0f} %",
             f"- thread CPU time follows wall time within {result['cpu_vs_wall_max_diff_pct']:.1f} % (the slowdowns are not "
             f"preemption); steal ticks during the run: {result['steal_ticks']}"]
    for k, e in result["probes"].items():
        fs = e["fast_over_slow"]
        lines.append(f"- probe {k}: median {e['median_ms']:.3f} ms, correlation with the model's window medians "
                     f"{e['corr_with_model']:.2f}" + (f"; in the model's {result['fast_windows']} fast windows (>15 % below its "
                     f"median) it ran at {fs:.2f}x its time in the others (model: {e['model_fast_over_slow']:.2f}x)"
                     if fs is not None else "; the model had no fast windows"))
    lines += ["", "Plot: `machine_drift.png`"]
    (RESULTS / "machine_drift.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
