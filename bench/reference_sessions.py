"""Is the drift reference's speed a property of its session? Fresh sessions side by side.

``bench/lut_reference_modes.py`` found, in a table built on a host that switched speed modes, windows
where the reference ran ~34 % slower while the blocks timed run for run beside it did not: a slowdown
of the reference alone. Every window of a build prepares its own sessions, so a property of one
session (where its buffers and weights landed, its arena) would look exactly like that. This script
opens ``--sessions`` sessions of the reference in one process, plus a control (a block-sized model,
one session), and times them round-robin in a random order per round, a few runs per turn: they share
every moment of the machine, so sessions that differ in their medians differ by themselves. Then it
does the same with the sessions all re-created (``--repeats``): a session's speed that holds across
rounds but not across re-creation is the session's.

    python bench/reference_sessions.py --sessions 12 --rounds 300
    → bench/results/reference_sessions.{json,md}
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import write_result  # noqa: E402  (bench/ is on the path of a script run from it)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", type=int, default=12)
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--turn-runs", type=int, default=4, help="timed runs per turn (one untimed run before them)")
    ap.add_argument("--repeats", type=int, default=2, help="times every session is re-created")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    import torch.nn as nn

    import profilers
    from lut.reference import REFERENCE_NAME, reference_model

    torch.set_num_threads(1)
    prof = profilers.from_identity({"name": "onnxruntime-cpu", "options": {}}, threads=1, precision="fp32",
                                   protocol=profilers.Protocol(), artifacts={"exporter": "torchscript"})
    rng = random.Random(args.seed)
    t0 = time.time()
    with tempfile.TemporaryDirectory() as d:
        ref = prof.export(*reference_model(REFERENCE_NAME), Path(d) / f"ref{prof.artifact_suffix}")
        ref_shapes = [(1, 16, 32, 32)]
        torch.manual_seed(1)  # the control: a pointwise + depthwise pair at 64 px, the size of a small block
        ctl_model = nn.Sequential(nn.Conv2d(32, 64, 1), nn.ReLU(), nn.Conv2d(64, 64, 3, padding=1, groups=64)).eval()
        ctl = prof.export(ctl_model, (torch.randn(1, 32, 64, 64),), Path(d) / f"ctl{prof.artifact_suffix}")
        ctl_run = prof.prepare(Path(ctl), [(1, 32, 64, 64)])
        repeats = []
        for rep in range(args.repeats):
            runs = {f"s{i}": prof.prepare(Path(ref), ref_shapes) for i in range(args.sessions)}
            runs["control"] = ctl_run
            times = {n: [] for n in runs}
            names = list(runs)
            for _ in range(args.rounds):
                rng.shuffle(names)
                for n in names:
                    runs[n]()
                    for _ in range(args.turn_runs):
                        a = time.perf_counter()
                        runs[n]()
                        times[n].append((time.perf_counter() - a) * 1e3)
            med = {n: float(np.median(v)) for n, v in times.items()}
            # each session's first and second half: does a session keep its speed over the rounds?
            half = {n: [float(np.median(v[: len(v) // 2])), float(np.median(v[len(v) // 2:]))] for n, v in times.items()}
            repeats.append({"median_ms": med, "halves_ms": half})
            del runs
    sess = [n for n in repeats[0]["median_ms"] if n != "control"]
    summary = []
    for rep in repeats:
        m = np.array([rep["median_ms"][n] for n in sess])
        h = np.array([rep["halves_ms"][n] for n in sess])
        summary.append({"spread_across_sessions": float(m.max() / m.min()),
                        "median_ref_over_control": float(np.median(m) / rep["median_ms"]["control"]),
                        "halves_corr": float(np.corrcoef(h[:, 0], h[:, 1])[0, 1]) if len(sess) > 2 else None,
                        "sorted_session_ms": sorted(float(x) for x in m)})
    result = {"args": vars(args), "host": {"cpus": os.cpu_count(), "fingerprint": prof.device_info(),
                                           "load_average": os.getloadavg()},
              "repeats": repeats, "summary": summary, "minutes": (time.time() - t0) / 60}
    write_result("bench/results/reference_sessions.json", result)
    lines = [f"# The reference's speed per session: {args.sessions} sessions of `{REFERENCE_NAME}` round-robin with a "
             f"control, {args.rounds} rounds x {args.turn_runs} runs, sessions re-created {args.repeats}x", "",
             f"Host: {result['host']['fingerprint'].get('cpu_model', '?')}, {os.cpu_count()} cores, load "
             f"{[round(x, 2) for x in os.getloadavg()]}.", "",
             "| set | slowest / fastest session | median session / control | correlation of a session's first- and "
             "second-half medians | session medians (ms, sorted) |", "|---|---|---|---|---|"]
    for i, s in enumerate(summary):
        lines.append(f"| {i} | {s['spread_across_sessions']:.3f} | {s['median_ref_over_control']:.3f} | "
                     f"{s['halves_corr']:.2f} | {', '.join(f'{x:.3f}' for x in s['sorted_session_ms'])} |")
    Path("bench/results/reference_sessions.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
