"""The quickstart's report: one markdown page with the final table and the plots people look at.

Everything in it is read from files the stages wrote (no number is computed twice or typed in):
``supernet/curve.png``, ``lut/validation/report.json`` + ``scatter.png``, ``search-*/population.csv``,
``eval.jsonl``, ``export/manifest.json``, ``measured.json``.
"""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path


def _cpu_model() -> str:
    from profilers.fingerprint import cpu_model

    return cpu_model()


def _read_json(path: Path):
    return json.loads(path.read_text()) if path.is_file() else None


def _rel(path: Path, root: Path) -> str:
    return os.path.relpath(path, root)


def search_val_images(cfg) -> tuple[int, int]:
    """(validation images the search scores on, validation images in all) of a quickstart run's data."""
    from hwnas.data import find_pairs
    from hwnas.errors import HwnasError

    n_val = len(find_pairs(cfg.out / "data" / "val"))
    k = cfg.val_images if cfg.val_images is not None else n_val // 2
    if not 1 <= k < n_val:
        raise HwnasError(f"the search's {k} validation images leave none of the {n_val} for held-out metrics; "
                         "use more --images")
    return k, n_val


# the drift reference's p90/p10 over a table's windows above which the report says the machine's speed
# changed more than the table can be judged through (fixed beforehand, not fitted: a warning, not a score)
UNSTEADY_REFERENCE_SPREAD = 1.25


def measurement_floor_lines(retest: dict | None, ref_ms) -> list[str]:
    """What bounds the accuracy figures above them: the whole models' own test-retest (the same models
    measured in two rounds far apart) and how far the drift reference moved across the table's windows."""
    import numpy as np

    lines = []
    if retest and retest.get("n"):
        lines.append(f"Measurement floor: the same {retest['n']} models, measured in two rounds far apart, differed by "
                     f"a median {retest['raw_median_pct']:.1f} % ({retest['normalized_median_pct']:.1f} % "
                     "drift-compensated); no table can score better than that on this machine now.")
    ref = np.asarray(ref_ms, dtype=float)
    ref = ref[np.isfinite(ref) & (ref > 0)]
    if len(ref) >= 4:
        p10, p90 = np.percentile(ref, [10, 90])
        line = (f"The drift reference across the table's {len(ref)} block windows: p10–p90 {p10:.3f}–{p90:.3f} ms "
                f"({p90 / p10:.2f}x).")
        if p90 / p10 > UNSTEADY_REFERENCE_SPREAD:
            line += (" The machine ran at speeds this far apart while the table was built; drift compensation assumes "
                     "blocks, models and the reference slow down alike, which such changes need not do: read the "
                     "figures above as this machine's moment as much as the table's (`bench/machine_drift.py` "
                     "shows its speed over a minute).")
        lines.append(line)
    return lines


def write_quickstart_report(out: Path, cfg, picked: dict, lut_file: Path) -> Path:
    from hwnas.arch import load_arch
    from hwnas.plots import latency_by_block, pareto_comparison
    from hwnas.space import create
    from lut.table import LatencyTable

    space = create(cfg.space)
    arch = load_arch(str(out / "best-arch.json"))
    table = LatencyTable.read(lut_file)
    keys = [b.key for b in space.blocks(arch)]
    raw_ms = table.raw_sum_ms(keys)
    model_ms = table.model_ms(keys)
    calibrated_ms = table.predict_ms(keys, calibrated=True) if table.calibration else None
    plots = out / "plots"
    pareto_png = pareto_comparison(out, plots / "pareto_lgs_vs_uniform.png")
    per_kind = latency_by_block(space, arch, table, plots / "latency_by_block.png")

    metrics = {}
    if (out / "eval.jsonl").is_file():
        lines = [json.loads(x) for x in (out / "eval.jsonl").read_text().splitlines() if x.strip().startswith("{")]
        metrics = lines[0] if lines else {}
    measured = _read_json(out / "measured.json") or {}
    manifest = _read_json(out / "export" / "manifest.json") or {}
    validation = _read_json(out / "lut" / "validation" / "report.json") or {}
    stage_seconds = {p.stem: json.loads(p.read_text())["seconds"] for p in sorted((out / ".stages").glob("*.json"))}

    lines = [
        "# hwnas quickstart report",
        "",
        f"Machine: {_cpu_model()}, {os.cpu_count()} logical cores; Python {platform.python_version()}. "
        f"Space `{space.name}` (hash `{space.hash}`), LUT backend `{table.backend.get('name')}`, "
        f"{table.device.get('threads')} thread(s), resolution {cfg.resolution} px.",
        "",
        "## Chosen architecture",
        "",
        f"Best {picked.get('metric_name', 'metric')} on the LGS Pareto front under {picked['budget_ms']:.3f} ms "
        f"(predicted): `{arch.to_string()}` — [best-arch.json](best-arch.json)",
        "",
        "| quantity | value |",
        "|---|---|",
        f"| predicted latency ({table.backend.get('name')}, {'context model' if table.has_context else 'plain sum'}) "
        f"| {model_ms:.3f} ms |",
        f"| plain sum of isolated blocks (baseline) | {raw_ms:.3f} ms |",
    ]
    if calibrated_ms is not None:
        lines.append(f"| predicted latency, calibrated ({table.backend.get('name')}) | {calibrated_ms:.3f} ms |")
    for backend, m in measured.items():
        lines.append(f"| measured latency, {backend} (median of {m['runs']}) | {m['median_ms']:.3f} ms |")
    for key, label in (("max_f", "max F-measure (held-out)"), ("mae", "MAE (held-out)"),
                       ("s_measure", "S-measure (held-out)"), ("max_e", "max E-measure (held-out)")):
        if key in metrics:
            lines.append(f"| {label} | {metrics[key]:.4f} |")
    if metrics:
        k, n_val = search_val_images(cfg)
        lines.append(f"| held-out images | the last {n_val - k} of {n_val} validation images "
                     f"(the search scored candidates on the first {k}) |")
    training = _read_json(out / "supernet" / "summary.json") or {}
    if training.get("steps"):
        budget = f" in a {training['budget_s']:.0f} s budget" if training.get("budget_s") else ""
        threads = f", {training['threads']} torch thread(s)" if training.get("threads") else ""
        lr = f", final learning rate {training['final_lr']:.2g}" if training.get("final_lr") is not None else ""
        lines.append(f"| supernet training | {training['steps']} sandwich steps{budget}{threads}{lr} |")
    lines += ["", "## Artifacts", "", "| format | status | file | size | parity (max abs diff) |", "|---|---|---|---|---|"]
    for a in manifest.get("artifacts", []):
        size = f"{a['size_bytes'] / 1e6:.2f} MB" if a.get("size_bytes") else "—"
        parity = a.get("parity") or {}
        diff = parity.get("max_abs_diff")
        lines.append(f"| {a['format']} | {a['status']} | {('export/' + a['file']) if a.get('file') else '—'} | {size} | "
                     f"{'—' if diff is None else f'{diff:.2e}'} |")
    if validation:
        lines += ["", "## Latency table accuracy (whole models measured end to end)", "",
                  "| prediction | n | MAPE % | within ±5 % | within ±10 % | Kendall τ |", "|---|---|---|---|---|---|"]
        for label in ("model", "raw", "calibrated"):
            if label in validation:
                v = validation[label]
                name = {"model": "prediction (drift-compensated measurement)", "raw": "plain sum (baseline)",
                        "calibrated": "calibrated prediction"}[label]
                lines.append(f"| {name} | {v['n']} | {v['mape_pct']:.2f} | {v['within_5_pct']:.0f} % | "
                             f"{v['within_10_pct']:.0f} % | {v['kendall_tau']:.3f} |")
        floor = measurement_floor_lines(validation.get("retest"), table.rows["ref_ms"])
        for line in floor:
            lines += ["", line]
        lines += ["", f"![LUT predicted vs measured]({_rel(out / 'lut' / 'validation' / 'scatter.png', out)})"]
    searches = {name: _read_json(out / f"search-{name}" / "search.json") for name in ("lgs", "uniform")}
    if any(searches.values()):
        lines += ["", "## Searches", "", "| search | predictor | candidates predicted | candidates evaluated | Pareto front |",
                  "|---|---|---|---|---|"]
        for name, s in searches.items():
            if s:
                predictor = s["config"].get("predictor", "none")
                lines.append(f"| {name} | {predictor} | {s.get('predicted', 0) if predictor != 'none' else '—'} | "
                             f"{s['evaluated']} | {s['front_size']} |")
    lines += ["", "## Plots", ""]
    if (out / "supernet" / "curve.png").is_file():
        lines += ["Supernet training curve:", "", "![training curve](supernet/curve.png)", ""]
    if pareto_png:
        lines += ["Pareto fronts:", "", f"![Pareto fronts]({_rel(pareto_png, out)})", ""]
    lines += ["Latency by block kind:", "", f"![latency by block]({_rel(plots / 'latency_by_block.png', out)})", "",
              "| block kind | ms |", "|---|---|"]
    lines += [f"| {k} | {v:.3f} |" for k, v in sorted(per_kind.items(), key=lambda kv: -kv[1])]
    lines += ["", "## Stage wall times", "", "| stage | seconds |", "|---|---|"]
    lines += [f"| {k} | {v:.0f} |" for k, v in stage_seconds.items()]
    lines.append(f"| total | {sum(stage_seconds.values()):.0f} |")
    from deploy.fileio import atomic_write_json, atomic_write_text

    path = out / "report.md"
    atomic_write_text(path, "\n".join(lines) + "\n")
    summary = {"arch": arch.to_string(), "predicted_ms": model_ms, "predicted_raw_ms": raw_ms,
               "predicted_calibrated_ms": calibrated_ms,
               "measured": measured, "metrics": {k: metrics.get(k) for k in ("max_f", "mae", "s_measure", "max_e")},
               "training": {k: training.get(k) for k in ("steps", "elapsed_s", "threads", "final_lr")},
               "stage_seconds": stage_seconds}
    atomic_write_json(out / "summary.json", summary)
    return path
