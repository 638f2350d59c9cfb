"""Genotypes: the discrete result of a cell search, as JSON, and a plot of the derived cells.

A genotype lists, for the normal and the reduction cell, each intermediate node's incoming edges
as ``(op, source)`` pairs; sources 0 and 1 are the cell inputs ``c_{k-2}`` and ``c_{k-1}``,
source ``2 + i`` is intermediate node ``i``. The cell output concatenates every intermediate node.
DARTS, EoiNAS and MS-DARTS give every node 2 edges; DOTS with an arbitrary edge count may give
1..n. ``none`` never appears in a genotype.

JSON form::

    {"format": "hwnas-cell-genotype/1", "steps": 4,
     "normal": [[["sep_conv_3x3", 0], ["skip_connect", 1]], ...],   # one list per node
     "reduce": [...], "meta": {"method": "dots", ...}}
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from deploy.fileio import atomic_write_text

from hwnas.cells.darts_space import NUM_INPUTS, PRIMITIVES
from hwnas.errors import ArchError

FORMAT = "hwnas-cell-genotype/1"
OPS = tuple(p for p in PRIMITIVES if p != "none")  # what a derived edge may carry

Node = tuple[tuple[str, int], ...]


def _nodes(value: Any, field_name: str) -> tuple[Node, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise ArchError(f"genotype field {field_name!r} must be a non-empty list of nodes, got {value!r}")
    nodes = []
    for i, node in enumerate(value):
        if not isinstance(node, (list, tuple)) or not node:
            raise ArchError(f"genotype {field_name}[{i}] must be a non-empty list of [op, source] pairs, got {node!r}")
        edges = []
        for edge in node:
            if not isinstance(edge, (list, tuple)) or len(edge) != 2:
                raise ArchError(f"genotype {field_name}[{i}] edge {edge!r} must be [op, source]")
            op, source = edge
            if op not in OPS:
                raise ArchError(f"genotype {field_name}[{i}] op {op!r} not allowed; allowed: {', '.join(OPS)}")
            if isinstance(source, bool) or not isinstance(source, int) or not 0 <= source < NUM_INPUTS + i:
                raise ArchError(f"genotype {field_name}[{i}] source {source!r} out of range; allowed: 0..{NUM_INPUTS + i - 1}")
            edges.append((op, source))
        if len({s for _, s in edges}) != len(edges):
            raise ArchError(f"genotype {field_name}[{i}] repeats a source: {edges}")
        nodes.append(tuple(edges))
    return tuple(nodes)


@dataclass(frozen=True)
class Genotype:
    normal: tuple[Node, ...]
    reduce: tuple[Node, ...]
    meta: dict = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self):
        normal = _nodes(self.normal, "normal")
        reduce = _nodes(self.reduce, "reduce")
        if len(normal) != len(reduce):
            raise ArchError(f"genotype normal and reduce cells differ in node count: {len(normal)} vs {len(reduce)}")
        object.__setattr__(self, "normal", normal)
        object.__setattr__(self, "reduce", reduce)

    @property
    def steps(self) -> int:
        return len(self.normal)

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "steps": self.steps,
            "normal": [[list(e) for e in node] for node in self.normal],
            "reduce": [[list(e) for e in node] for node in self.reduce],
            "meta": dict(self.meta),
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, d: Any) -> Genotype:
        if not isinstance(d, dict) or d.get("format") != FORMAT:
            raise ArchError(f"not a cell genotype: expected a JSON object with \"format\": \"{FORMAT}\"")
        missing = [k for k in ("normal", "reduce") if k not in d]
        if missing:
            raise ArchError(f"genotype lacks field(s) {missing}")
        unknown = sorted(set(d) - {"format", "steps", "normal", "reduce", "meta"})
        if unknown:
            raise ArchError(f"genotype has unknown field(s) {unknown}; allowed: format, steps, normal, reduce, meta")
        meta = d.get("meta") or {}
        if not isinstance(meta, dict):
            raise ArchError(f"genotype field 'meta' must be an object, got {meta!r:.60}")
        genotype = cls(d["normal"], d["reduce"], meta)
        if "steps" in d and d["steps"] != genotype.steps:
            raise ArchError(f"genotype field 'steps' is {d['steps']!r:.20} but the cells have {genotype.steps} nodes")
        return genotype

    @classmethod
    def from_json(cls, text: str) -> Genotype:
        try:
            d = json.loads(text)
        except json.JSONDecodeError as e:
            raise ArchError(f"genotype is not valid JSON: {e}") from None
        except RecursionError:
            raise ArchError("genotype JSON is nested too deeply to be a genotype") from None
        return cls.from_dict(d)

    def save(self, path: str | Path) -> Path:
        return atomic_write_text(path, self.to_json() + "\n")

    def __str__(self) -> str:
        def cell(nodes):
            return " | ".join("+".join(f"{op}<{s}" for op, s in node) for node in nodes)

        return f"normal: {cell(self.normal)} ; reduce: {cell(self.reduce)}"


def load_genotype(path: str | Path) -> Genotype:
    path = Path(path)
    if path.is_dir():
        raise ArchError(f"genotype file {path} is a directory")
    if not path.is_file():
        raise ArchError(f"genotype file {path} does not exist")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise ArchError(f"genotype file {path} is not a text (JSON) file") from None
    try:
        return Genotype.from_json(text)
    except ArchError as e:
        raise ArchError(f"genotype file {path}: {e}") from None


def random_genotype(rng: random.Random | int, steps: int = 4, edges_per_node: int = 2) -> Genotype:
    """Uniform baseline: per node, ``edges_per_node`` distinct sources and a uniformly drawn non-``none`` op each."""
    rng = rng if isinstance(rng, random.Random) else random.Random(rng)

    def cell():
        nodes = []
        for i in range(steps):
            sources = sorted(rng.sample(range(NUM_INPUTS + i), min(edges_per_node, NUM_INPUTS + i)))
            nodes.append(tuple((rng.choice(OPS), s) for s in sources))
        return tuple(nodes)

    return Genotype(cell(), cell(), {"method": "random"})


def plot_genotype(genotype: Genotype, path: str | Path, title: str | None = None) -> Path:
    """Draw both derived cells (inputs left, intermediate nodes, concatenated output right) to a PNG."""
    from hwnas.plots import pyplot, save_figure

    plt = pyplot()
    steps = genotype.steps
    fig, axes = plt.subplots(1, 2, figsize=(6 + 2.2 * steps, 4.2))
    for ax, (name, nodes) in zip(axes, (("normal", genotype.normal), ("reduction", genotype.reduce))):
        pos = {0: (0.0, 1.4), 1: (0.0, -1.4)}
        heights = (1.0, -1.0, 0.35, -0.35)  # staggered so that few edges are collinear
        for i in range(steps):
            pos[NUM_INPUTS + i] = (1.6 * (i + 1), heights[i % len(heights)])
        out = (1.6 * (steps + 1), 0.0)
        labels = {0: "c_{k-2}", 1: "c_{k-1}", **{NUM_INPUTS + i: str(i) for i in range(steps)}}
        for i, node in enumerate(nodes):
            target = pos[NUM_INPUTS + i]
            for op, source in node:
                start = pos[source]
                ax.annotate("", xy=target, xytext=start,
                            arrowprops=dict(arrowstyle="->", color="tab:blue", shrinkA=14, shrinkB=14,
                                            connectionstyle="arc3,rad=0.12"))
                # label at 60 % of the way, where edges into the same node have already spread apart
                mx, my = start[0] + 0.6 * (target[0] - start[0]), start[1] + 0.6 * (target[1] - start[1])
                ax.text(mx, my, op, fontsize=6.5, ha="center", va="center", color="tab:red",
                        bbox=dict(boxstyle="round,pad=0.1", fc="white", ec="none", alpha=0.8))
            ax.annotate("", xy=out, xytext=target,
                        arrowprops=dict(arrowstyle="->", color="grey", shrinkA=14, shrinkB=14))
        for key, (x, y) in pos.items():
            color = "palegreen" if key < NUM_INPUTS else "lightblue"
            ax.text(x, y, labels[key], ha="center", va="center", fontsize=9,
                    bbox=dict(boxstyle="round", fc=color, ec="black"))
        ax.text(*out, "c_{k}\n(concat)", ha="center", va="center", fontsize=9,
                bbox=dict(boxstyle="round", fc="khaki", ec="black"))
        ax.set_xlim(-0.8, out[0] + 0.9)
        ax.set_ylim(-2.0, 2.0)
        ax.set_title(f"{name} cell")
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return save_figure(fig, path, dpi=110)
