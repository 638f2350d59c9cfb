"""Every PNG hwnas draws (matplotlib, headless), written atomically.

:func:`save_figure` is the one way a figure reaches the disk (a killed run never leaves half a
PNG); the plots: the supernet training curve, and the quickstart report's LGS-vs-uniform fronts and
latency-by-block bars. (``lut.plots`` draws the latency-table scatter: ``lut`` may not import
``hwnas``.) matplotlib is imported on first use: ``import hwnas.plots`` stays cheap.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` to ``path`` (format from its suffix) atomically, then close it."""
    from deploy.fileio import atomic_path

    path = Path(path)
    try:
        with atomic_path(path, durable=False) as tmp:  # a plot is regenerated from its data
            fig.savefig(tmp, dpi=dpi, format=path.suffix.lstrip(".") or "png")
    finally:
        pyplot().close(fig)
    return path


def training_curve(rows: list[dict[str, Any]], path: str | Path, title: str = "",
                   extra: dict[str, float] | None = None) -> Path | None:
    """Supernet training curve: per-step losses (faint) and their moving averages, LR on a twin axis."""
    if not rows:
        return None
    import numpy as np

    plt = pyplot()
    steps = np.array([r["step"] for r in rows])
    fig, ax = plt.subplots(figsize=(7, 4))
    window = max(1, len(rows) // 30)
    for key, colour in (("loss_largest", "C0"), ("loss_smallest", "C1"), ("loss_random", "C2")):
        y = np.array([r[key] for r in rows], dtype=float)
        ax.plot(steps, y, color=colour, alpha=0.2, linewidth=0.8)
        smooth = np.convolve(y, np.ones(window) / window, mode="valid")
        ax.plot(steps[window - 1:], smooth, color=colour, label=key.replace("loss_", "") + (" (vs mask)" if key == "loss_largest" else " (distill)"))
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    ax2 = ax.twinx()
    ax2.plot(steps, [r["lr"] for r in rows], color="gray", linestyle=":", label="lr")
    ax2.set_ylabel("learning rate")
    ax.legend(loc="upper right")
    if extra:
        ax.set_title(title + "  " + ", ".join(f"{k}={v:.3f}" for k, v in extra.items()), fontsize=9)
    else:
        ax.set_title(title)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)


def pareto_comparison(out: Path, path: Path) -> Path | None:
    """The quickstart's evaluated candidates and Pareto fronts of the LGS and the uniform search."""
    import pandas as pd

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    drawn = False
    for name, colour in (("lgs", "tab:red"), ("uniform", "tab:blue")):
        csv = out / f"search-{name}" / "population.csv"
        if not csv.is_file():
            continue
        pop = pd.read_csv(csv)
        metric = next(c for c in pop.columns if c not in ("arch", "latency_ms", "fitness", "group", "pareto",
                                                          "in_population", "iteration", "origin", "eval_index"))
        ax.scatter(pop["latency_ms"], pop[metric], s=6, alpha=0.25, color=colour, label=f"{name}: evaluated ({len(pop)})")
        front = pop[pop["pareto"] == 1].sort_values("latency_ms")
        ax.step(front["latency_ms"], front[metric], where="post", color=colour, lw=1.8, label=f"{name}: Pareto front")
        ax.set_ylabel(metric)
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.set_xlabel("predicted latency (ms, LUT)")
    ax.set_title("LGS vs layer-wise uniform sampling")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return save_figure(fig, path, dpi=120)


def latency_by_block(space, arch, table, path: Path) -> dict[str, float]:
    """Bar chart of an architecture's predicted latency per block kind (context costs; the isolated
    medians for a table without them); the sums."""
    per_kind: dict[str, float] = defaultdict(float)
    for block in space.blocks(arch):
        per_kind[block.kind] += table.context_ms(block.key) if table.has_context else table.median_ms(block.key)
    kinds = sorted(per_kind, key=per_kind.get, reverse=True)
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5.6, 3.2))
    ax.barh(kinds[::-1], [per_kind[k] for k in kinds[::-1]], color="tab:green")
    ax.set_xlabel("ms (LUT, in-model cost)" if table.has_context else "ms (sum of LUT medians)")
    ax.set_title("Latency by block kind, chosen architecture")
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    return dict(per_kind)
