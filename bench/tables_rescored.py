"""Two tables scored on each other's validations, in reference units: did the table move, or the targets?

Where one build's validations show a bias another's did not, the change sits either in the table
(its costs) or in the validations (their drift-compensated targets). Both are stated in units of
their own reference speed, so this rescoring divides each prediction by its table's reference speed
and each target by the reference speed of the table its validation scored: then every table's
prediction meets every validation's models on one scale. A table that moved shows as a shift of its
column on every validation; targets that moved, as a shift of one validation's row for every table.
No timing is done (reads the tables and the validations' ``report.json``).

    python bench/tables_rescored.py --luts runs/s45/sod-ort1.parquet runs/s46/sod-ort1.parquet \\
        --reports bench/results/lut_accuracy_sod-ort1-s45/report.json ... --name ort1-s45-s46
    → bench/results/tables_rescored_<name>.{json,md}
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import write_result  # noqa: E402  (bench/ is on the path of a script run from it)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--luts", nargs="+", required=True)
    ap.add_argument("--reports", nargs="+", required=True, help="report.json of validations (`hwnas lut validate --out-dir`)")
    ap.add_argument("--name", required=True)
    args = ap.parse_args(argv)

    import numpy as np

    from hwnas.arch import Arch
    from hwnas.space import create
    from lut.table import LatencyTable

    tables = [LatencyTable.read(p) for p in args.luts]
    space = create(tables[0].space["name"])
    out = {"luts": args.luts, "reports": args.reports, "bias_pct": {}, "mape_pct": {}, "shift_vs_first_pct": {}}
    for rp in args.reports:
        r = json.loads(Path(rp).read_text())
        keys = [[b.key for b in space.blocks(Arch.from_string(m["name"]))] for m in r["models"]]
        target = np.array([m["target_ms"] for m in r["models"]]) / r["reference_ms"]  # in its table's reference units
        preds = [np.array([t.model_ms(k) for k in keys]) / t.reference_ms for t in tables]
        err = [100 * (p / target - 1) for p in preds]
        out["bias_pct"][rp] = [float(e.mean()) for e in err]
        out["mape_pct"][rp] = [float(np.abs(e).mean()) for e in err]
        out["shift_vs_first_pct"][rp] = [float(100 * np.mean(p / preds[0] - 1)) for p in preds]
    write_result(Path(__file__).resolve().parent / "results" / f"tables_rescored_{args.name}.json", out)
    lines = [f"# Tables rescored on each other's validations (reference units): {args.name}", "",
             f"`python bench/tables_rescored.py {' '.join(sys.argv[1:])}`", "",
             "Bias (mean signed error, %) / MAPE of each table's prediction against each validation's targets; last "
             "columns: each table's prediction of the same models over the first table's.", "",
             "| validation | " + " | ".join(f"`{t}` bias / MAPE" for t in args.luts) + " | " +
             " | ".join(f"`{t}` / first" for t in args.luts[1:]) + " |",
             "|---|" + "---|" * (2 * len(args.luts) - 1)]
    for rp in args.reports:
        lines.append(f"| `{rp}` | " + " | ".join(f"{b:+.2f} % / {m:.2f} %" for b, m in zip(out["bias_pct"][rp], out["mape_pct"][rp]))
                     + " | " + " | ".join(f"{s:+.2f} %" for s in out["shift_vs_first_pct"][rp][1:]) + " |")
    (Path(__file__).resolve().parent / "results" / f"tables_rescored_{args.name}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
