"""A table's prediction against the same-run split, on the whole models ``bench/context_ops.py`` timed.

``context_ops.py`` times each whole model and its blocks' context graphs in one run, interleaved with
the table's reference, and scores the build's split there. Here the same whole models (their ratio
to the reference, times the table's reference speed) are scored against a table built in another
run: what the table's prediction loses beyond the split is what differs between that build and the
run (the machine's state, the windows' protocol), not the split.

    .venv/bin/python bench/context_ops_vs_table.py --lut runs/s33/tiny-ort1.parquet \\
        bench/results/context_ops_inas-tiny_64_s37.json bench/results/context_ops_inas-tiny_64_s38.json
    → prints a Markdown table
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lut", required=True)
    ap.add_argument("results", nargs="+", help="context_ops_*.json files")
    args = ap.parse_args(argv)

    import numpy as np

    from hwnas.arch import Arch
    from hwnas.space import create
    from lut.table import LatencyTable

    t = LatencyTable.read(args.lut)
    lines = [f"Table `{args.lut}` (reference {t.reference_ms:.4f} ms, call {t.call_ms:.4f} ms)", "",
             "| run | arch | same-run split | table | table − split (points) |", "|---|---|---|---|---|"]
    diffs, table_bias, split_bias = [], [], []
    for path in args.results:
        r = json.loads(Path(path).read_text())
        space = create(r["args"]["space"])
        for a in r["per_arch"]:
            keys = [b.key for b in space.blocks(Arch.from_string(a["arch"]))]
            bias = 100 * (t.model_ms(keys) / (a["whole_rel"] * t.reference_ms) - 1)
            diffs.append(bias - a["build_bias_pct"])
            table_bias.append(bias)
            split_bias.append(a["build_bias_pct"])
            lines.append(f"| {Path(path).stem} | `{a['arch'][:32]}…` | {a['build_bias_pct']:+.1f} % | {bias:+.1f} % | {diffs[-1]:+.1f} |")
    lines += ["", f"Medians: same-run split {np.median(split_bias):+.1f} %, table {np.median(table_bias):+.1f} %, "
                  f"difference {np.median(diffs):+.1f} points (min {min(diffs):+.1f}, max {max(diffs):+.1f})."]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
