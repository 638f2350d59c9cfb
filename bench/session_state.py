"""Is a sub-ms model's latency a property of the session, the CPU it runs on, or the machine's moment?

Issue 12 saw one exported ``inas-tiny`` model time 0.84–0.93 ms in some sessions and 1.35–1.6 ms in
others minutes apart. This script separates the candidate causes in one run, interleaved:

- **session**: ``--sessions`` fresh ONNX Runtime sessions of the same model (new allocations, new
  arena, new kernel choice), each timed in ``--turns`` windows;
- **machine**: one reference session created at the start, timed in a window right after each
  window of the model under test, so a slow spell of the machine shows in both and cancels in
  their ratio;
- **CPU placement**: sessions alternate between the process left free to move between cores and the
  process pinned (``os.sched_setaffinity``) to one core.

If fresh sessions differ in their ratio to the reference far more than one session's windows do,
the state is the session's; if the reference moves with them, it is the machine's. A per-run trace of
one session (``--trace-runs``) then shows the time scale of the machine's states: the share of runs
within 10 % of the 5th percentile (the undisturbed speed) and how long such fast spells last.

    .venv/bin/python bench/session_state.py --model runs/quickstart/export/model.onnx
    → bench/results/session_state.{json,md}
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results"


def window_median_ms(session, feeds: dict, runs: int) -> float:
    times = np.empty(runs)
    for i in range(runs):
        t0 = time.perf_counter()
        session.run(None, feeds)
        times[i] = time.perf_counter() - t0
    return float(np.median(times) * 1e3)


def spread_pct(values) -> float:
    """(p90 - p10) / median of a list, in %."""
    v = np.asarray(values, dtype=float)
    return float((np.percentile(v, 90) - np.percentile(v, 10)) / np.median(v) * 100)


def steal_ticks() -> int | None:
    """The kernel's steal-time counter (a hypervisor running another guest on this vCPU shows here)."""
    try:
        return int(open("/proc/stat").readline().split()[8])
    except (OSError, IndexError, ValueError):
        return None


def per_run_trace(session, feeds: dict, runs: int) -> dict:
    """Every run's time of one session, back to back: how the machine's speed moves run to run."""
    times, starts = np.empty(runs), np.empty(runs)
    t_first = time.perf_counter()
    for i in range(runs):
        t0 = time.perf_counter()
        session.run(None, feeds)
        times[i], starts[i] = time.perf_counter() - t0, t0 - t_first
    ms = times * 1e3
    fast = ms <= 1.10 * np.percentile(ms, 5)
    edges = np.flatnonzero(np.diff(fast.astype(np.int8))) + 1
    spells = [(bool(fast[seg[0]]), (starts[seg[-1]] - starts[seg[0]]) * 1e3) for seg in np.split(np.arange(runs), edges)
              if len(seg) >= 20]
    fast_ms = [d for f, d in spells if f]
    slow_ms = [d for f, d in spells if not f]
    return {"runs": runs, "seconds": float(starts[-1]),
            "percentiles_ms": {str(p): float(np.percentile(ms, p)) for p in (5, 10, 25, 50, 75, 90, 95)},
            "fast_share": float(fast.mean()), "fast_spells": len(fast_ms), "slow_spells": len(slow_ms),
            "fast_spell_ms_median": float(np.median(fast_ms)) if fast_ms else 0.0,
            "slow_spell_ms_median": float(np.median(slow_ms)) if slow_ms else 0.0,
            "histogram_ms": np.histogram(ms, bins=30)[1].round(4).tolist(), "histogram_counts": np.histogram(ms, bins=30)[0].tolist()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="an ONNX file (e.g. the quickstart's export/model.onnx)")
    ap.add_argument("--reference", default=None, help="ONNX file of the reference (default: the model itself)")
    ap.add_argument("--sessions", type=int, default=16)
    ap.add_argument("--turns", type=int, default=4, help="timed windows per session")
    ap.add_argument("--runs", type=int, default=300, help="runs per window")
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--trace-runs", type=int, default=20000, help="runs of the per-run trace (0: none)")
    ap.add_argument("--out", default=str(RESULTS / "session_state"))
    args = ap.parse_args()

    import onnxruntime as ort

    from profilers.onnxruntime_cpu import OnnxRuntimeCPU

    prof = OnnxRuntimeCPU(threads=1)
    model = Path(args.model)
    ref = prof.session(Path(args.reference or args.model))
    inputs = ref.get_inputs()
    rng = np.random.default_rng(0)
    feeds = {i.name: rng.standard_normal([d if isinstance(d, int) else 1 for d in i.shape]).astype(np.float32) for i in inputs}
    for _ in range(args.warmup):
        ref.run(None, feeds)
    free_cpus = os.sched_getaffinity(0)
    pin_cpu = max(free_cpus)
    rows = []
    steal_start = steal_ticks()
    t_start = time.perf_counter()
    for s in range(args.sessions):
        pinned = s % 2 == 1
        os.sched_setaffinity(0, {pin_cpu} if pinned else free_cpus)
        sess = prof.session(model)
        for _ in range(args.warmup):
            sess.run(None, feeds)
        for t in range(args.turns):
            m = window_median_ms(sess, feeds, args.runs)
            r = window_median_ms(ref, feeds, args.runs)
            rows.append({"session": s, "pinned": pinned, "turn": t, "t_s": round(time.perf_counter() - t_start, 2),
                         "model_ms": m, "reference_ms": r, "ratio": m / r})
        del sess
    os.sched_setaffinity(0, free_cpus)
    trace = per_run_trace(ref, feeds, args.trace_runs) if args.trace_runs else None
    steal_end = steal_ticks()
    steal = None if steal_start is None or steal_end is None else steal_end - steal_start

    by_session: dict[int, list[dict]] = {}
    for r in rows:
        by_session.setdefault(r["session"], []).append(r)
    sessions = [{"session": s, "pinned": rs[0]["pinned"], "model_ms": float(np.median([r["model_ms"] for r in rs])),
                 "reference_ms": float(np.median([r["reference_ms"] for r in rs])),
                 "ratio": float(np.median([r["ratio"] for r in rs])),
                 "within_ratio_spread_pct": spread_pct([r["ratio"] for r in rs])} for s, rs in by_session.items()]
    summary = {}
    for label, keep in (("all", lambda x: True), ("free", lambda x: not x["pinned"]), ("pinned", lambda x: x["pinned"])):
        ss = [x for x in sessions if keep(x)]
        summary[label] = {
            "sessions": len(ss),
            "model_ms_median": float(np.median([x["model_ms"] for x in ss])),
            "model_ms_range": [min(x["model_ms"] for x in ss), max(x["model_ms"] for x in ss)],
            "across_sessions_model_spread_pct": spread_pct([x["model_ms"] for x in ss]),
            "across_sessions_reference_spread_pct": spread_pct([x["reference_ms"] for x in ss]),
            "across_sessions_ratio_spread_pct": spread_pct([x["ratio"] for x in ss]),
            "within_session_ratio_spread_pct_median": float(np.median([x["within_ratio_spread_pct"] for x in ss])),
        }
    result = {"model": str(model), "reference": str(args.reference or args.model), "onnxruntime": ort.__version__,
              "settings": {k: getattr(args, k) for k in ("sessions", "turns", "runs", "warmup")}, "pin_cpu": pin_cpu,
              "host": {"cpus": os.cpu_count(), "load_average_at_end": os.getloadavg(), "steal_ticks": steal},
              "summary": summary, "trace": trace, "sessions": sessions, "windows": rows}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"# Session, CPU placement or machine? (`bench/session_state.py`)", "",
             f"model `{model.name}`, ONNX Runtime {ort.__version__}, 1 thread; {args.sessions} fresh sessions x "
             f"{args.turns} windows of {args.runs} runs, each window followed by one of a reference session made at the start; "
             f"odd sessions pinned to CPU {pin_cpu}. Load at end {os.getloadavg()[0]:.2f}; steal ticks during the run: {steal}.", "",
             "| sessions | n | model median ms | model range ms | across sessions: model / reference / ratio spread (p90-p10, %) | "
             "within a session: ratio spread (%) |", "|---|---|---|---|---|---|"]
    for label, v in summary.items():
        lines.append(f"| {label} | {v['sessions']} | {v['model_ms_median']:.4f} | {v['model_ms_range'][0]:.4f}–"
                     f"{v['model_ms_range'][1]:.4f} | {v['across_sessions_model_spread_pct']:.1f} / "
                     f"{v['across_sessions_reference_spread_pct']:.1f} / {v['across_sessions_ratio_spread_pct']:.1f} | "
                     f"{v['within_session_ratio_spread_pct_median']:.1f} |")
    lines += ["", "| session | pinned | model ms | reference ms | ratio | within-session ratio spread % |", "|---|---|---|---|---|---|"]
    for x in sessions:
        lines.append(f"| {x['session']} | {x['pinned']} | {x['model_ms']:.4f} | {x['reference_ms']:.4f} | {x['ratio']:.3f} | "
                     f"{x['within_ratio_spread_pct']:.1f} |")
    if trace:
        lines += ["", f"Per-run trace of the reference session, {trace['runs']} runs over {trace['seconds']:.1f} s: percentiles "
                  + ", ".join(f"p{k} {v:.4f}" for k, v in trace["percentiles_ms"].items()) + f" ms; {trace['fast_share'] * 100:.0f} % "
                  f"of runs within 10 % of p5; fast spells of >= 20 runs last a median {trace['fast_spell_ms_median']:.1f} ms "
                  f"({trace['fast_spells']} spells), slow spells {trace['slow_spell_ms_median']:.1f} ms ({trace['slow_spells']})."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines[:4 + len(summary) + 2] + lines[-1:]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
