"""Predicted-vs-measured scatter plot of a latency-table validation (matplotlib, PNG)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence


def scatter(measured_ms: Sequence[float], predicted: dict[str, Sequence[float]], path: str | Path, title: str = "",
            xlabel: str = "measured latency (ms)") -> Path:
    """``predicted`` maps a label (e.g. "raw sum", "calibrated") to predictions aligned with ``measured_ms``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    y = np.asarray(measured_ms, dtype=float)
    fig, ax = plt.subplots(figsize=(5.5, 5), dpi=120)
    lo = min([y.min()] + [min(v) for v in predicted.values()]) * 0.95
    hi = max([y.max()] + [max(v) for v in predicted.values()]) * 1.05
    xs = np.linspace(lo, hi, 2)
    ax.plot(xs, xs, "k-", lw=1, label="y = x")
    ax.fill_between(xs, xs * 0.95, xs * 1.05, color="0.85", label="±5 %")
    for (label, pred), marker in zip(predicted.items(), "ox^s"):
        ax.scatter(y, np.asarray(pred, dtype=float), s=14, marker=marker, label=label, alpha=0.8)
    ax.set_xlim(lo, hi)
    ax.set_ylim(lo, hi)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("predicted latency (ms)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    from deploy.fileio import atomic_path

    try:
        with atomic_path(p, durable=False) as tmp:  # a plot is regenerated from its data
            fig.savefig(tmp, format="png")
    finally:
        plt.close(fig)
    return p
