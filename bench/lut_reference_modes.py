"""Do a table's blocks and its drift reference slow down alike? Read from the table itself.

A table stores each block's time beside the reference timed in the same window, and drift
compensation divides one by the other: right only if whatever slows the machine slows a block and
the reference by the same factor. A table built while the machine switched between speed modes
holds the test: its blocks fall into windows of every mode at random, so, per block kind, the mean
log ratio block / reference must not depend on the mode the reference was in. Modes are fixed
beforehand, not fitted: the reference more than 20 % below its median (fast), within ±20 % (usual),
more than 20 % above (slow).

    python bench/lut_reference_modes.py --lut runs/quickstart/lut/onnxruntime-cpu-1t.parquet
    → bench/results/lut_reference_modes_<name>.{json,md}
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import write_result  # noqa: E402  (bench/ is on the path of a script run from it)

MODE_EDGE = 0.20  # ± share of the reference's median that separates the modes (fixed beforehand)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lut", required=True)
    ap.add_argument("--name", default=None, help="result name (default: the table's file stem)")
    args = ap.parse_args(argv)

    import numpy as np

    from lut.table import LatencyTable

    table = LatencyTable.read(args.lut)
    rows = table.rows[np.isfinite(table.rows["ref_ms"].astype(float))].copy()
    if rows.empty:
        print(f"{args.lut}: no reference column (a table built without drift compensation)", file=sys.stderr)
        return 1
    ref = rows["ref_ms"].astype(float)
    med = float(ref.median())
    rows["mode"] = np.where(ref < (1 - MODE_EDGE) * med, "fast", np.where(ref > (1 + MODE_EDGE) * med, "slow", "usual"))
    rows["log_ratio"] = np.log(rows["median_ms"].astype(float) / ref)
    rows["log_ms"] = np.log(rows["median_ms"].astype(float))
    modes = ("fast", "usual", "slow")
    out = {"lut": str(args.lut), "device": table.device, "reference_median_ms": med, "mode_edge": MODE_EDGE,
           "mode_reference_ms": {m: float(ref[rows["mode"] == m].median()) if (rows["mode"] == m).any() else None
                                 for m in modes},
           "mode_windows": {m: int((rows["mode"] == m).sum()) for m in modes}, "kinds": {}}
    for kind, g in rows.groupby("kind"):
        entry = {}
        for m in modes:
            gm = g[g["mode"] == m]
            entry[m] = {"n": len(gm), "mean_log_ratio": float(gm["log_ratio"].mean()) if len(gm) else None,
                        "mean_log_ms": float(gm["log_ms"].mean()) if len(gm) else None}
        out["kinds"][kind] = entry

    def rel(kind, m, key):
        """exp(mean in mode m − mean in the usual mode) − 1, %: how a mode moves the kind's ratio / time."""
        e = out["kinds"][kind]
        if e[m]["n"] < 3 or e["usual"]["n"] < 3:
            return None
        return 100 * (math.exp(e[m][key] - e["usual"][key]) - 1)

    name = args.name or Path(args.lut).stem
    lines = [f"# Blocks vs the drift reference per speed mode: `{args.lut}`", "",
             f"{table.device.get('cpu_model', '?')}; reference median {med:.3f} ms; windows per mode (reference "
             f"> 20 % below / within ±20 % / > 20 % above its median): " +
             ", ".join(f"{m} {out['mode_windows'][m]} (ref {out['mode_reference_ms'][m]:.3f} ms)"
                       for m in modes if out["mode_reference_ms"][m] is not None), "",
             "Per kind, against the usual mode (kinds with ≥ 3 blocks in both): how the blocks' own time and their "
             "ratio to the reference differ in the fast and slow modes. Alike slowdowns leave the ratio column at "
             "~0 % (within the spread of blocks: modes hold different blocks).", "",
             "| kind | blocks fast / usual / slow | time, fast | ratio, fast | time, slow | ratio, slow |", "|---|---|---|---|---|---|"]
    fmt = lambda v: "—" if v is None else f"{v:+.1f} %"  # noqa: E731
    for kind, e in out["kinds"].items():
        for m in ("fast", "slow"):
            e[m]["time_vs_usual_pct"], e[m]["ratio_vs_usual_pct"] = rel(kind, m, "mean_log_ms"), rel(kind, m, "mean_log_ratio")
        lines.append(f"| {kind} | {e['fast']['n']} / {e['usual']['n']} / {e['slow']['n']} | {fmt(e['fast']['time_vs_usual_pct'])} | "
                     f"{fmt(e['fast']['ratio_vs_usual_pct'])} | {fmt(e['slow']['time_vs_usual_pct'])} | "
                     f"{fmt(e['slow']['ratio_vs_usual_pct'])} |")
    stem = f"bench/results/lut_reference_modes_{name}"
    write_result(f"{stem}.json", out)
    Path(f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
