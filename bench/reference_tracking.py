"""Does the drift reference follow a sub-ms model's slow spells? Both timed in alternating bursts.

The model (an ONNX file, e.g. the quickstart's ``export/model.onnx``) and the tables' reference
(``lut.reference``) run in alternating bursts of ``--burst`` runs for ``--seconds``, ONNX Runtime
1 thread, one process; each burst's median is one sample. If the reference slowed exactly as the
model does, their ratio would not move and drift compensation would cancel every slow spell.

    python bench/reference_tracking.py --model runs/quickstart/export/model.onnx --seconds 90
    → bench/results/reference_tracking.json and .md
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import write_result  # noqa: E402  (bench/ is on the path of a script run from it)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", required=True, help="an ONNX model with one 1x3xRxR input")
    ap.add_argument("--seconds", type=float, default=90.0)
    ap.add_argument("--burst", type=int, default=20)
    args = ap.parse_args(argv)

    import numpy as np
    import onnxruntime as ort

    from deploy.onnx_export import export_onnx
    from lut.reference import reference_model

    def session(path):
        so = ort.SessionOptions()
        so.intra_op_num_threads = so.inter_op_num_threads = 1
        s = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
        inp = s.get_inputs()[0]
        return s, inp.name, np.zeros([int(d) for d in inp.shape], np.float32)

    def burst(s, n):
        sess, name, x = s
        ts = []
        for _ in range(n):
            t = time.perf_counter()
            sess.run(None, {name: x})
            ts.append(time.perf_counter() - t)
        return statistics.median(ts) * 1e3

    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as d:
        module, inputs = reference_model()
        ref = session(export_onnx(module, inputs, Path(d) / "reference.onnx"))
        model = session(args.model)
        for _ in range(100):  # warm both
            burst(model, 1), burst(ref, 1)
        m, r = [], []
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < args.seconds:
            m.append(burst(model, args.burst))
            r.append(burst(ref, args.burst))
    m, r = np.array(m), np.array(r)
    q = lambda a, p: float(np.percentile(a, p))  # noqa: E731
    ratio = m / r
    result = {"model": args.model, "seconds": args.seconds, "burst": args.burst, "bursts": len(m),
              "host": {"cpus": os.cpu_count(), "load_before": load_before, "load_after": os.getloadavg()},
              "model_ms": {"median": float(np.median(m)), "p10": q(m, 10), "p90": q(m, 90)},
              "reference_ms": {"median": float(np.median(r)), "p10": q(r, 10), "p90": q(r, 90)},
              "correlation": float(np.corrcoef(m, r)[0, 1]),
              "ratio": {"median": float(np.median(ratio)), "p10": q(ratio, 10), "p90": q(ratio, 90)}}
    out = Path(__file__).resolve().parent / "results" / "reference_tracking.json"
    write_result(out, result)
    lines = ["# Does the drift reference follow a sub-ms model's slow spells?", "",
             f"`python bench/reference_tracking.py --model {args.model} --seconds {args.seconds:g}`: ONNX Runtime 1 thread, "
             f"bursts of {args.burst} runs alternating, {len(m)} bursts; {os.cpu_count()} CPUs, load {load_before[0]:.2f} before.", "",
             "| | median | p10 | p90 | p90 / p10 |", "|---|---|---|---|---|"]
    for name, a in (("model (ms)", m), ("reference (ms)", r), ("model / reference", ratio)):
        lines.append(f"| {name} | {np.median(a):.4f} | {q(a, 10):.4f} | {q(a, 90):.4f} | {q(a, 90) / q(a, 10):.2f} |")
    lines += ["", f"Correlation of the bursts' medians: {result['correlation']:.2f}."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
