"""What a search leaves in its run directory: population.csv, pareto/*.json, pareto.csv, search.json, a Pareto plot.

Every file is written to a temporary name and moved into place, so a killed run never leaves a
half-written result. ``pareto/arch-<latency>ms-<metric><value>.json`` holds the architecture alone
(``hwnas.arch.load_arch`` reads it), its numbers are in the name and in ``pareto.csv``.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import asdict
from pathlib import Path
from typing import Callable

from hwnas.arch import Arch
from deploy.fileio import atomic_path, atomic_write_text
from hwnas.search.evolution import Candidate, SearchResult
from hwnas.search.sampling import group_of


def _csv_text(rows: list[dict]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def pareto_filename(c: Candidate, metric_label: str, metric_value: float) -> str:
    return f"arch-{c.latency_ms:.3g}ms-{metric_label}{metric_value:.3f}.json"


def write_outputs(
    result: SearchResult, out_dir: str | Path, metric: str = "max_f", metric_label: str = "maxF",
    metric_of: Callable[[float], float] = lambda f: f, plot: bool = True,
) -> dict[str, Path]:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    on_front = {c.arch for c in result.pareto}
    in_pop = set(result.population)
    rows = []
    for c in result.candidates:
        rows.append(
            {
                "arch": c.arch,
                "latency_ms": round(c.latency_ms, 6),
                metric: round(metric_of(c.fitness), 6),
                "fitness": round(c.fitness, 6),
                "group": group_of(c.latency_ms, result.edges) + 1 if result.edges else 1,
                "pareto": int(c.arch in on_front),
                "in_population": int(c.arch in in_pop),
                "iteration": c.iteration,
                "origin": c.origin,
                "eval_index": c.index,
            }
        )
    paths = {"population": out / "population.csv", "pareto_csv": out / "pareto.csv"}
    atomic_write_text(paths["population"], _csv_text(rows))

    pareto_dir = out / "pareto"
    pareto_dir.mkdir(exist_ok=True)
    for old in pareto_dir.glob("arch-*.json"):  # a resumed run rewrites the front
        old.unlink()
    front_rows = []
    names: set[str] = set()
    for c in result.pareto:
        value = metric_of(c.fitness)
        name = pareto_filename(c, metric_label, value)
        if name in names:  # two front members round to the same name
            name = name[:-5] + f"-{len(names)}.json"
        names.add(name)
        atomic_write_text(pareto_dir / name, Arch.from_string(c.arch).to_json() + "\n")
        front_rows.append({"file": f"pareto/{name}", "latency_ms": round(c.latency_ms, 6), metric: round(value, 6), "arch": c.arch})
    atomic_write_text(paths["pareto_csv"], _csv_text(front_rows))
    paths["pareto_dir"] = pareto_dir
    paths["summary"] = out / "search.json"
    atomic_write_text(paths["summary"], json.dumps(search_summary(result), indent=2) + "\n")
    if plot:
        paths["plot"] = plot_pareto(result, out / "plots" / "pareto.png", metric_label, metric_of)
    return paths


def search_summary(result: SearchResult) -> dict:
    """The run's settings (predictor included) and what it spent: ``search.json``."""
    return {
        "config": asdict(result.config),
        "lat_range_ms": [result.lat_min_ms, result.lat_max_ms],
        "evaluated": len(result.candidates),
        "predicted": result.predicted,  # offspring scored by the predictor (0 without one)
        "front_size": len(result.pareto),
        "history": result.history,
    }


def plot_pareto(result: SearchResult, path: str | Path, metric_label: str = "maxF",
                metric_of: Callable[[float], float] = lambda f: f) -> Path:
    """Every evaluated candidate (initial vs offspring), the final front, and the group boundaries."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=120)
    for origin, colour in (("init", "#9aa9c0"), ("offspring", "#f0a35e")):
        pts = [(c.latency_ms, metric_of(c.fitness)) for c in result.candidates if c.origin == origin]
        if pts:
            ax.scatter(*zip(*pts), s=6, alpha=0.6, color=colour, label=f"{origin} ({len(pts)})")
    front = sorted((c.latency_ms, metric_of(c.fitness)) for c in result.pareto)
    if front:
        ax.plot(*zip(*front), "-o", drawstyle="steps-post", color="#c0392b", ms=3.5, lw=1.2, label=f"Pareto front ({len(front)})")
    for edge in result.edges:
        ax.axvline(edge, color="grey", lw=0.4, alpha=0.5)
    ax.set_xlabel("latency (ms, LUT)")
    ax.set_ylabel(metric_label)
    ax.set_title(f"{result.config.sampler.upper()} evolutionary search: {len(result.candidates)} evaluated")
    ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    with atomic_path(path, durable=False) as tmp:  # regenerable from population.csv
        fig.savefig(tmp)
    plt.close(fig)
    return path
