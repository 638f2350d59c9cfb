"""Validate a latency table against whole models measured end to end on the same backend.

Models are chosen spread over the whole predicted-latency range (not just where random samples
cluster). A few separate models fit the calibration (``lut.calibrate``); the rest are the
validation set, so the calibrated accuracy is out-of-sample. Reported for both the raw sum and
the calibrated prediction: MAPE, RMSPE, share within ±5 % and ±10 %, worst error, mean signed
error (bias), Kendall τ, Spearman ρ and Pearson r — the measures nn-Meter and iNAS report.
Whole-model measurements are journaled (JSON lines) so an interrupted validation resumes.
"""

from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from lut import calibrate
from lut.errors import LUTError


@dataclass
class ModelCase:
    """One whole model: a unique ``name``, its block keys, and ``build() -> (module, example_inputs)``."""

    name: str
    keys: list[str]
    build: Callable[[], tuple]


def spread(predicted_ms: Sequence[float], n: int, exclude: set[int] = frozenset()) -> list[int]:
    """Indices of ``n`` candidates whose predictions are spread evenly over their whole range:
    for each of ``n`` evenly spaced targets the nearest not-yet-chosen candidate."""
    p = np.asarray(predicted_ms, dtype=float)
    free = [i for i in range(len(p)) if i not in exclude]
    if n > len(free):
        raise LUTError(f"asked for {n} models spread over the range, only {len(free)} candidates")
    lo, hi = p[free].min(), p[free].max()
    chosen: list[int] = []
    for t in np.linspace(lo, hi, n):
        best = min((i for i in free if i not in chosen), key=lambda i: abs(p[i] - t))
        chosen.append(best)
    return chosen


def accuracy(predicted_ms: Sequence[float], measured_ms: Sequence[float]) -> dict:
    from scipy import stats

    p = np.asarray(predicted_ms, dtype=float)
    y = np.asarray(measured_ms, dtype=float)
    if p.size < 2:
        raise LUTError("accuracy needs at least 2 models")
    rel = (p - y) / y
    return {
        "n": int(p.size),
        "mape_pct": float(100 * np.abs(rel).mean()),
        "rmspe_pct": float(100 * np.sqrt((rel ** 2).mean())),
        "within_5_pct": float(100 * (np.abs(rel) <= 0.05).mean()),
        "within_10_pct": float(100 * (np.abs(rel) <= 0.10).mean()),
        "max_ape_pct": float(100 * np.abs(rel).max()),
        "mean_signed_pct": float(100 * rel.mean()),
        "kendall_tau": float(stats.kendalltau(p, y).statistic),
        "spearman_rho": float(stats.spearmanr(p, y).statistic),
        "pearson_r": float(stats.pearsonr(p, y).statistic),
    }


def shard_journal(journal: Path, index: int, count: int) -> Path:
    """Journal of shard ``index`` of ``count`` (``measured.jsonl`` → ``measured.1of3.jsonl``)."""
    return journal.with_name(f"{journal.stem}.{index}of{count}{journal.suffix}")


def _load_journal(path: Path | None) -> dict[str, dict]:
    """Measurements of the journal and of its shards (``<stem>.<i>of<k>.jsonl`` next to it)."""
    if path is None:
        return {}
    out = {}
    for p in [path, *sorted(path.parent.glob(f"{path.stem}.*of*{path.suffix}"))]:
        if not p.exists():
            continue
        for line in p.read_text().splitlines():
            try:
                obj = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line from a killed run
            out.setdefault(obj["name"], obj["measurement"])
    return out


def measure_cases(cases: Sequence[ModelCase], profiler, journal: Path | None = None, progress: bool = True,
                  seed: int = 0, shard: tuple[int, int] | None = None) -> dict[str, dict]:
    """``{name: Measurement dict}``, measuring in a seeded random order; resumes from ``journal``.

    ``shard=(i, k)`` measures only every k-th model (from the i-th, 1-based) into that shard's
    journal, so k processes can measure side by side; a later unsharded call reads them all.
    """
    from tqdm import tqdm

    done = _load_journal(journal)
    if shard is not None:
        i, k = shard
        cases = [c for n, c in enumerate(cases) if n % k == i - 1]
        journal = shard_journal(journal, i, k) if journal is not None else None
    todo = [c for c in cases if c.name not in done]
    random.Random(seed).shuffle(todo)
    if journal is not None:
        journal.parent.mkdir(parents=True, exist_ok=True)
    f = open(journal, "a") if journal is not None else None
    try:
        for case in tqdm(todo, desc="whole models", unit="model", disable=not progress):
            module, inputs = case.build()
            m = profiler.measure(module, inputs).to_dict()
            done[case.name] = m
            if f:
                f.write(json.dumps({"name": case.name, "measurement": m}) + "\n")
                f.flush()
                os.fsync(f.fileno())
    finally:
        if f:
            f.close()
    return done


def validate(table, calibration_cases: Sequence[ModelCase], validation_cases: Sequence[ModelCase], profiler,
             journal: Path | None = None, progress: bool = True, calibration_kind: str = "auto",
             shard: tuple[int, int] | None = None) -> dict | None:
    """Measure both sets, fit the calibration on the first, report accuracy on the second
    (``None`` for a shard: it only measures its part)."""
    measured = measure_cases([*calibration_cases, *validation_cases], profiler, journal, progress, shard=shard)
    if shard is not None:
        return None
    raw_cal = [table.raw_sum_ms(c.keys) for c in calibration_cases]
    y_cal = [measured[c.name]["median_ms"] for c in calibration_cases]
    n_cal = [len(c.keys) for c in calibration_cases]
    cal = (calibrate.fit(raw_cal, y_cal, n_cal, kind=calibration_kind)
           if len(calibration_cases) >= calibrate.MIN_MODELS else None)
    raw = [table.raw_sum_ms(c.keys) for c in validation_cases]
    y = [measured[c.name]["median_ms"] for c in validation_cases]
    report = {"calibration": cal, "models": []}
    for c, r, m in zip(validation_cases, raw, y):
        row = {"name": c.name, "n_blocks": len(c.keys), "raw_sum_ms": r, "measured_ms": m,
               "measured_iqr_over_median": measured[c.name]["iqr_over_median"],
               "measured_unstable": measured[c.name]["unstable"]}
        if cal:
            row["calibrated_ms"] = calibrate.apply(cal, r, len(c.keys))
        report["models"].append(row)
    if len(validation_cases) >= 2:
        report["raw"] = accuracy(raw, y)
        if cal:
            report["calibrated"] = accuracy([row["calibrated_ms"] for row in report["models"]], y)
    report["calibration_models"] = [
        {"name": c.name, "n_blocks": len(c.keys), "raw_sum_ms": r, "measured_ms": m}
        for c, r, m in zip(calibration_cases, raw_cal, y_cal)]
    return report
