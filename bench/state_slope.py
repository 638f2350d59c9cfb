"""Does drift compensation over- or under-correct? The slope of a workload's time on the reference's.

Drift compensation divides a block's (or whole model's) time by the reference's in the same window:
exact if both slow by the same factor, i.e. if log(ms) rises with slope 1 on log(reference ms). If
the slope s is below 1, a block timed in a slow window is stated too cheap by (ref/R)^(s-1), and so
is a whole model timed slow: a table's predictions would then be biased by about
(1 - s) * (v - b), where b is the cost-weighted mean log(ref / R) of the build's windows and v the
same of the validation's (R: the table's reference speed). No new timing: this reads

* tables built on the same machine and backend (same block keys): per block, log(ms_A / ms_B)
  against log(ref_A / ref_B) of the two windows, least squares with an intercept (the builds may
  differ by a constant) and the reverse regression (noise in the reference's median bends the first
  towards 0, noise in the block's towards 1/s: the truth lies between);
* validation reports (`lut validate`, `bench/lut_accuracy.py`): each whole model is timed in two
  windows far apart, so log(m2 / m1) against log(ref2 / ref1) is the same slope for whole models;
* for each table + report pair: the bias the slope would explain, beside the bias measured.

    python bench/state_slope.py --tables runs/s33/tiny-ort1.parquet runs/qs33/lut/onnxruntime-cpu-1t.parquet \
        --validation runs/qs33/lut/onnxruntime-cpu-1t.parquet=runs/qs33/lut/validation/report.json --name ort
    → bench/results/state_slope_<name>.{json,md}
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import write_result  # noqa: E402  (bench/ is on the path of a script run from it)


def _fit(x, y) -> dict:
    import numpy as np

    slope, icpt = np.polyfit(x, y, 1)
    reverse = 1.0 / np.polyfit(y, x, 1)[0]
    return {"n": int(len(x)), "slope": float(slope), "intercept": float(icpt), "reverse_slope": float(reverse),
            "x_sd": float(np.std(x)), "corr": float(np.corrcoef(x, y)[0, 1])}


def block_pairs(paths: list[str]) -> list[dict]:
    import numpy as np

    from lut.table import LatencyTable

    tables = {p: LatencyTable.read(p).rows.set_index("key") for p in paths}
    out = []
    for a, b in itertools.combinations(paths, 2):
        keys = tables[a].index.intersection(tables[b].index)
        x = np.log(tables[a].loc[keys, "ref_ms"].astype(float) / tables[b].loc[keys, "ref_ms"].astype(float)).to_numpy()
        y = np.log(tables[a].loc[keys, "context_ms"].astype(float)
                   / tables[b].loc[keys, "context_ms"].astype(float)).to_numpy()
        ok = np.isfinite(x) & np.isfinite(y)
        if ok.sum() >= 10:
            out.append({"a": a, "b": b, **_fit(x[ok], y[ok])})
    return out


def model_retest(report: dict) -> dict | None:
    import numpy as np

    xs, ys = [], []
    for m in report["models"]:
        ms, ratios = m.get("measured_round_medians_ms"), m.get("measured_round_ratios")
        if ms and ratios and len(ms) >= 2:
            ref = [a / r for a, r in zip(ms, ratios)]
            xs.append(np.log(ref[1] / ref[0]))
            ys.append(np.log(ms[1] / ms[0]))
    return _fit(np.array(xs), np.array(ys)) if len(xs) >= 5 else None


def explained_bias(table_path: str, report: dict, slope: float) -> dict:
    import numpy as np

    from lut.table import LatencyTable

    table = LatencyTable.read(table_path)
    rows = table.rows
    ref = rows["ref_ms"].astype(float).to_numpy()
    weight = rows["context_ms"].astype(float).to_numpy() / ref  # cost at the table's speed, up to R
    b = float(np.sum(weight * np.log(ref / table.reference_ms)) / weight.sum())
    v = float(np.log(report["reference_now_vs_build"]))
    return {"build_mean_log_ref_over_R": b, "validation_log_ref_over_R": v,
            "explained_bias_pct": 100 * (np.exp((1 - slope) * (v - b)) - 1),
            "measured_bias_pct": float(report["model"]["mean_signed_pct"]),
            "measured_mape_pct": float(report["model"]["mape_pct"])}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", nargs="*", default=[], help="tables of one machine and backend (same block keys)")
    ap.add_argument("--validation", action="append", default=[], metavar="TABLE=REPORT",
                    help="a table and the validation report scored against it (repeatable)")
    ap.add_argument("--name", required=True)
    args = ap.parse_args(argv)

    import numpy as np

    pairs = block_pairs(args.tables)
    validations = []
    for spec in args.validation:
        table_path, _, report_path = spec.partition("=")
        if not report_path:
            ap.error(f"--validation wants TABLE=REPORT, got {spec!r}")
        report = json.loads(Path(report_path).read_text())
        validations.append({"table": table_path, "report": report_path, "retest": model_retest(report),
                            "report_obj": report})
    slopes = [p["slope"] for p in pairs] + [v["retest"]["slope"] for v in validations
                                            if v["retest"] and v["retest"]["x_sd"] >= 0.1]
    slope = float(np.median(slopes)) if slopes else 1.0
    for v in validations:
        v.update(explained_bias(v["table"], v.pop("report_obj"), slope))
    result = {"argv": sys.argv[1:], "block_pairs": pairs, "validations": validations,
              "slope_used": slope, "slope_note": "median of the block-pair slopes and of the whole-model retest "
                                                 "slopes whose reference moved (x sd >= 0.1)"}
    out = Path(__file__).parent / "results" / f"state_slope_{args.name}.json"
    write_result(out, result)

    lines = [f"# Slope of workloads' time on the drift reference's ({args.name})", "",
             f"`python bench/state_slope.py {' '.join(sys.argv[1:])}`", "",
             "| blocks of | against | n | slope | reverse | intercept | corr | sd log ref ratio |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {p['a']} | {p['b']} | {p['n']} | {p['slope']:.3f} | {p['reverse_slope']:.3f} | {p['intercept']:+.3f} "
              f"| {p['corr']:.3f} | {p['x_sd']:.3f} |" for p in pairs]
    lines += ["", "| whole models of the validation | n | slope | reverse | sd log ref ratio | build b | validation v "
                  "| bias the slope explains | bias measured (MAPE) |", "|---|---|---|---|---|---|---|---|---|"]
    for v in validations:
        r = v["retest"] or {}
        lines.append(f"| {v['report']} | {r.get('n', '')} | {r.get('slope', float('nan')):.3f} "
                     f"| {r.get('reverse_slope', float('nan')):.3f} | {r.get('x_sd', float('nan')):.3f} "
                     f"| {v['build_mean_log_ref_over_R']:+.3f} | {v['validation_log_ref_over_R']:+.3f} "
                     f"| {v['explained_bias_pct']:+.1f} % | {v['measured_bias_pct']:+.1f} % ({v['measured_mape_pct']:.1f} %) |")
    lines += ["", f"Slope used for the explained bias: {slope:.3f} ({result['slope_note']})."]
    md = out.with_suffix(".md")
    md.write_text("\n".join(lines) + "\n")
    print(md.read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
