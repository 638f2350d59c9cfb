"""Calibration of a latency table against measured whole models.

The plain sum of block entries misses what only a whole model has: one fixed per-inference cost
(session dispatch, input/output handling) instead of one per block, and cross-block cache
effects (the usual 5–30 % error of plain sums, practice.md). A linear map fitted on a few
measured models corrects both:

* ``affine``: ``predicted = a * raw_sum + b``;
* ``affine+count``: ``predicted = a * raw_sum + c * n_blocks + b`` — ``c`` (negative in practice)
  removes the per-call overhead each isolated block measurement carried, which a plain scale
  cannot do when architectures differ in depth. Considered from 12 models of differing block
  counts on, and kept only when its leave-one-out error is lower than the plain affine map's.

The fit minimises *relative* error (weighted least squares, weights 1/measured), since the
accuracy that matters is relative (MAPE, share within ±5 %). One disturbed measurement on a shared
machine can tilt a fit on a handful of models, so models whose relative residual exceeds
``OUTLIER_MADS`` median absolute deviations are dropped once and the fit repeated (recorded in
``outliers_dropped``). The raw sum is always reported next to the calibrated value.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from lut.errors import LUTError

MIN_MODELS = 3
MIN_MODELS_COUNT_TERM = 12  # with fewer models the extra term fits noise (seen: 6 models, fit MAPE 25 %)
OUTLIER_MADS = 4.0
KINDS = ("auto", "affine", "affine+count")
# two fitted models whose measured latencies differ by more than this share are "clearly ordered":
# a fit that predicts them the other way round would mislead a search, so it is refused
RANK_MARGIN = 0.25


def min_models(kind: str) -> int:
    """The fewest measured models a fit of ``kind`` accepts."""
    return MIN_MODELS_COUNT_TERM if kind == "affine+count" else MIN_MODELS


def _check_rank_order(record: dict, x: np.ndarray, y: np.ndarray, n: np.ndarray | None) -> None:
    """Refuse a fit that is not increasing in the raw sum, or that predicts two clearly ordered
    fitted models (measured more than ``RANK_MARGIN`` apart) in the opposite order."""
    if record["a"] <= 0:
        raise LUTError(f"calibration refused: the fitted scale a = {record['a']:.4g} is not positive, so a model "
                       "with slower blocks would be predicted faster; measure more (or more varied) models")
    pred = np.array([apply(record, xi, None if n is None else ni) for xi, ni in zip(x, n if n is not None else x)])
    order = np.argsort(y)
    for ii, i in enumerate(order):
        for j in order[ii + 1:]:
            if y[j] > (1 + RANK_MARGIN) * y[i] and pred[j] < pred[i]:
                raise LUTError(
                    f"calibration refused: the {record['kind']} fit ranks a model measured at {y[j]:.3g} ms faster "
                    f"than one measured at {y[i]:.3g} ms (predicted {pred[j]:.3g} vs {pred[i]:.3g} ms); "
                    f"measure more models (--n) or use --kind affine")


def _fit_kind(x: np.ndarray, y: np.ndarray, n: np.ndarray | None, kind: str) -> dict:
    cols = [x, n, np.ones_like(x)] if kind == "affine+count" else [x, np.ones_like(x)]
    A_all = np.stack(cols, axis=1)

    def solve(keep: np.ndarray) -> np.ndarray:
        w = 1.0 / y[keep]  # relative-error weighting
        coef, *_ = np.linalg.lstsq(A_all[keep] * w[:, None], y[keep] * w, rcond=None)
        return coef

    keep = np.ones(x.size, dtype=bool)
    coef = solve(keep)
    rel = (A_all @ coef - y) / y
    mad = np.median(np.abs(rel - np.median(rel)))
    outliers = np.abs(rel - np.median(rel)) > OUTLIER_MADS * max(mad, 1e-3)
    if outliers.any() and (~outliers).sum() >= max(MIN_MODELS, A_all.shape[1] + 1):
        keep = ~outliers
        coef = solve(keep)
    record = {"kind": kind, "a": float(coef[0]), "b_ms": float(coef[-1]), "n_models": int(keep.sum()),
              "outliers_dropped": int((~keep).sum()), "raw_range_ms": [float(x.min()), float(x.max())]}
    if kind == "affine+count":
        record["c_ms_per_block"] = float(coef[1])
    pred = np.array([apply(record, xi, ni) for xi, ni in zip(x, n if n is not None else [None] * x.size)])
    record["fit_mape_pct"] = float(100 * (np.abs(pred - y) / y)[keep].mean())
    return record


def _loo_mape_pct(x: np.ndarray, y: np.ndarray, n: np.ndarray | None, kind: str) -> float:
    """Leave-one-out MAPE: each model predicted by a fit on the others (out-of-sample error)."""
    errs = []
    for i in range(x.size):
        m = np.arange(x.size) != i
        rec = _fit_kind(x[m], y[m], n[m] if n is not None else None, kind)
        errs.append(abs(apply(rec, x[i], None if n is None else n[i]) - y[i]) / y[i])
    return float(100 * np.mean(errs))


def fit(raw_sums_ms: Sequence[float], measured_ms: Sequence[float], n_blocks: Sequence[int] | None = None,
        kind: str = "auto") -> dict:
    """Fit the calibration on at least 3 models; returns the calibration record (JSON-able).

    ``auto`` fits both kinds when the block-count term is usable (>= ``MIN_MODELS_COUNT_TERM``
    models of differing block counts) and keeps the one with the lower leave-one-out MAPE: on a few
    noisy models the extra term can fit noise and extrapolate badly (seen: a fit whose intercept
    was -2.6 ms on 1.5-4 ms models), which only out-of-sample error shows.
    """
    if kind not in KINDS:
        raise LUTError(f"calibration kind {kind!r} unknown; allowed: {list(KINDS)}")
    x = np.asarray(raw_sums_ms, dtype=float)
    y = np.asarray(measured_ms, dtype=float)
    if x.shape != y.shape or x.size < MIN_MODELS:
        raise LUTError(f"calibration needs >= {MIN_MODELS} measured models with their raw sums, got {x.size}")
    if not (np.isfinite(x).all() and np.isfinite(y).all()):
        raise LUTError("calibration needs finite raw sums and measured latencies")
    if np.any(y <= 0) or np.any(x <= 0):
        raise LUTError("calibration needs positive raw sums and measured latencies")
    n = np.asarray(n_blocks, dtype=float) if n_blocks is not None else None
    if kind == "affine+count" and (n is None or n.shape != x.shape):
        raise LUTError("calibration kind affine+count needs the block count of every model")
    if x.size < min_models(kind):
        raise LUTError(f"calibration kind {kind} needs >= {min_models(kind)} measured models (with fewer, the "
                       f"block-count term fits noise), got {x.size}; measure more or use --kind affine")
    if kind == "affine+count" and np.ptp(n) == 0:
        raise LUTError("calibration kind affine+count needs models of differing block counts; all have "
                       f"{int(n[0])} blocks")
    if kind != "auto":
        record = _fit_kind(x, y, n, kind)
    elif not (n is not None and n.shape == x.shape and x.size >= MIN_MODELS_COUNT_TERM and np.ptp(n) > 0):
        record = _fit_kind(x, y, n, "affine")
    else:
        loo = {k: _loo_mape_pct(x, y, n, k) for k in ("affine", "affine+count")}
        record = _fit_kind(x, y, n, min(loo, key=loo.get))
        record["loo_mape_pct"] = {k: round(v, 3) for k, v in loo.items()}
    _check_rank_order(record, x, y, n if record["kind"] == "affine+count" else None)
    return record


def apply(calibration: dict, raw_sum_ms: float, n_blocks: int | None = None) -> float:
    kind = calibration.get("kind")
    if kind == "affine":
        return float(calibration["a"] * raw_sum_ms + calibration["b_ms"])
    if kind == "affine+count":
        if n_blocks is None:
            raise LUTError("this table's calibration (affine+count) needs the number of blocks")
        return float(calibration["a"] * raw_sum_ms + calibration["c_ms_per_block"] * n_blocks + calibration["b_ms"])
    raise LUTError(f"unknown calibration kind {kind!r}; this hwnas knows: affine, affine+count")
