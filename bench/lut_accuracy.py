"""LUT accuracy: predicted vs measured end-to-end latency of sampled whole models.

Runs ``hwnas lut validate`` on a finished table (models spread over the whole predicted range;
a separate set fits the calibration; whole models are ``for_export(SODNet(space, arch))``
exported with the deploy ONNX exporter and measured on the table's backend and protocol), then
summarises the report with the machine load next to it.

    .venv/bin/python bench/lut_accuracy.py --lut /tmp/luts/sod-ort1-cpu.parquet --name sod-ort1 --n 50 --calibrate 12
    → bench/results/lut_accuracy_<name>/{report.json, scatter.png}, bench/results/lut_accuracy_<name>.md

Reports, on the same measured models side by side: the plain sum of isolated blocks against the
raw measurement (the baseline), the table's prediction (call overhead + context costs) against the
drift-compensated measurement (each window's ratio to the reference), the two crossed, a calibrated
row when asked, and the whole-model test-retest spread of the same run (every model measured in
``--rounds`` windows far apart: the floor no table can beat on this machine).

Acceptance (ORT CPU, 1 thread, inas-sod at 320 px, >= 50 archs, uncalibrated): MAPE <= 3 %,
>= 95 % within ±5 %, all within ±10 %, Kendall τ >= 0.9.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lut", required=True)
    ap.add_argument("--name", required=True, help="label of this run (result file names)")
    ap.add_argument("--n", type=int, default=50)
    ap.add_argument("--calibrate", type=int, default=0, help="separate models for a calibrated row (default none)")
    ap.add_argument("--kind", default="auto", choices=["auto", "affine", "affine+count"])
    ap.add_argument("--candidates", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs", type=int, default=None, help="timed runs per whole model (default: the table's)")
    ap.add_argument("--resolution", type=int, default=None, help="validate at this input size only (default: the table's)")
    ap.add_argument("--rounds", type=int, default=2, help="round-robin windows per whole model (test-retest)")
    ap.add_argument("--exporter", default="dynamo", choices=["dynamo", "torchscript"])
    args = ap.parse_args()

    out_dir = RESULTS / f"lut_accuracy_{args.name}"
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    cmd = [sys.executable, "-m", "hwnas", "lut", "validate", "--lut", args.lut, "--n", str(args.n),
           "--calibrate", str(args.calibrate), "--kind", args.kind, "--candidates", str(args.candidates),
           "--seed", str(args.seed), "--out-dir", str(out_dir), "--exporter", args.exporter,
           "--rounds", str(args.rounds)]
    cmd += (["--resolution", str(args.resolution)] if args.resolution else []) + (["--runs", str(args.runs)] if args.runs else [])
    subprocess.run(cmd, check=True)
    wall_s = time.perf_counter() - t0
    load_after = os.getloadavg()
    r = json.loads((out_dir / "report.json").read_text())
    r["bench"] = {"wall_s": wall_s, "load_before": load_before, "load_after": load_after, "command": cmd}
    (out_dir / "report.json").write_text(json.dumps(r, indent=2))

    from lut.validate import retest_tau_text

    d, cal = r["device"], r["calibration"]
    lines = [f"# LUT accuracy: {r['space']['name']} on {r['backend']['name']} ({d.get('threads')} thread(s))", "",
             f"Table `{args.lut}`; device {d.get('cpu_model')} ({d.get('logical_cores')} cores)"
             + (f", GPU {d['gpu_name']} (driver {d.get('gpu_driver')}), {d.get('precision')}" if d.get("gpu_name") else "")
             + f"; protocol {r['protocol']}.",
             f"Load average before {tuple(round(x, 2) for x in load_before)}, after {tuple(round(x, 2) for x in load_after)}; "
             f"validation took {wall_s / 60:.1f} min.", "",
             "| prediction | n | MAPE | RMSPE | within ±5 % | within ±10 % | max error | bias | Kendall τ | Spearman ρ |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    names = {"raw": "plain sum vs measured", "model": "**prediction** vs drift-compensated",
             "raw_vs_target": "plain sum vs drift-compensated", "model_vs_raw": "prediction vs measured",
             "calibrated": "calibrated prediction vs drift-compensated"}
    for label in ("raw", "model", "raw_vs_target", "model_vs_raw", "calibrated"):
        if label in r:
            a = r[label]
            lines.append(f"| {names[label]} | {a['n']} | {a['mape_pct']:.2f} % | {a['rmspe_pct']:.2f} % | {a['within_5_pct']:.0f} % | "
                         f"{a['within_10_pct']:.0f} % | {a['max_ape_pct']:.1f} % | {a['mean_signed_pct']:+.2f} % | "
                         f"{a['kendall_tau']:.3f} | {a['spearman_rho']:.3f} |")
    rt = r.get("retest")
    if rt:
        lines += ["", f"Test-retest of the same {rt['n']} models (first two rounds, far apart in time): median "
                      f"{rt['raw_median_pct']:.2f} % raw (p90 {rt['raw_p90_pct']:.2f} %)"
                      + (f", {rt['normalized_median_pct']:.2f} % drift-compensated (p90 {rt['normalized_p90_pct']:.2f} %)"
                         if "normalized_median_pct" in rt else "")
                      + (f"; {retest_tau_text(rt)} (the ranking no table can beat here)" if retest_tau_text(rt) else "") + "."]
    lines += ["", f"Latency model: {r.get('latency_model')}; reference median {r.get('reference_ms')} ms, "
                  f"call overhead {r.get('call_ms')} ms."]
    if cal:
        lines += ["", f"Calibration ({cal['kind']}, fitted on {cal['n_models']} separate models): "
                      f"a={cal['a']:.4f}, b={cal['b_ms']:.3f} ms"
                      + (f", c={cal['c_ms_per_block']:.4f} ms/block" if "c_ms_per_block" in cal else "")
                      + ("; leave-one-out MAPE " + ", ".join(f"{k} {v:.2f} %" for k, v in cal["loo_mape_pct"].items())
                         if "loo_mape_pct" in cal else "")]
    lines += ["", f"Scatter plot: `{out_dir.name}/scatter.png`"]
    (RESULTS / f"lut_accuracy_{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
