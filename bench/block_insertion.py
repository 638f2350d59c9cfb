"""What one more block costs inside a real whole model, against the cost the table gives it.

Issue 12: on the AMD hosts (512 KiB L2 per core) inas-tiny tables at 64 px predict every whole model
high by a nearly constant amount (fitted over 30 validated models: prediction − target ≈ +0.066 ms
− 0.025 x target with context runs after a model run). A constant points at blocks every model has
the same number of, but which: regressing the error on the blocks' kinds is ill-posed (their sums
correlate 0.76–0.86 over models), and cutting a model in two (``bench/model_cuts.py``) shrinks
each part's footprint, so its parts run warmer than inside the model.

This script asks each block kind directly, without a profiler. At a site of a sampled model (the
ONNX ``hwnas export`` writes) whose block keeps its input's shape — an MBConv layer of stride 1 and
one width, a "same" branch, a fusion (its copies take the output before them once per input the
block has, so a fusion of several inputs keeps its key and its adds; ``--fusion-copies one``
inserts one-input fusions of the same level, kernel and units instead) — ``--copies`` fresh copies of that block (deploy form,
its own weights) are inserted right after it. The model with and without them, and the table's
reference, are timed interleaved (``Profiler.measure_together``) in ``--rounds`` windows; one copy's
marginal cost is the difference over the copies, as a ratio to the reference of its window,
stated at the table's reference speed like the table's own context costs, which stand beside it.
The model is the one a user runs: its other blocks evict the inserted ones as they evict the
block itself, and the footprint grows by the copies' few kB of weights only.

``--in-context`` also inserts the same copies into the block's context graph (``lut.context``:
the graph the table's build times and splits by ORT's profile) and times it with and without
them in the same windows, warm and after an untimed run of the space's smallest model (the
build's state where a model outgrows the L2): where that marginal matches the table, the split
is right and the context graph differs from the model; where it matches the model, the split is
what charges too much.

The method was fixed before its first run (nothing is fitted on the models it is scored on).

    python bench/block_insertion.py --lut runs/s47/tiny-ort1.parquet --archs 8 --seed 151
    → bench/results/block_insertion_<name>.json and .md
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import write_result_and_report  # noqa: E402  (bench/ is on the path of a script run from it)
from profilers.fingerprint import cpu_signature  # noqa: E402

KINDS = ("mbconv", "branch", "fusion")


def _out_shape(spec) -> tuple:
    import torch

    with torch.no_grad():
        y = spec.build()(*[torch.zeros(s) for s in spec.input_shapes])
    return tuple(y.shape) if isinstance(y, torch.Tensor) else ()


def insertable(spec, table, shapes: dict, fusion_copies: str = "own"):
    """The block spec whose copies can follow block ``spec`` inside a model (a key the table holds
    whose output has the shape of each of its inputs, one input but for a fusion's own key), or ``None``."""
    from hwnas.blocks import _fusion

    if spec.kind not in KINDS:
        return None
    if spec.kind == "fusion" and fusion_copies == "one":
        m = re.fullmatch(r"fusion r(\d+) c(\d+) n(\d+) u(\d+) k(\d+)", spec.key)
        if not m:
            return None
        r, c, _, u, k = map(int, m.groups())
        spec = _fusion(r, c, 1, u, k)
    if (len(spec.input_shapes) != 1 and spec.kind != "fusion") or len(set(spec.input_shapes)) != 1 or spec.key not in table:
        return None
    if spec.key not in shapes:
        shapes[spec.key] = _out_shape(spec)
    return spec if shapes[spec.key] == tuple(spec.input_shapes[0]) else None


def in_context_pair(spec, copies: int) -> dict:
    """``{"once": (module, inputs), "twice": ...}``: ``spec``'s block in its context graph, alone and
    followed by ``copies`` fresh copies (``lut.context.in_context_twice``, as a build makes it)."""
    from lut.context import in_context, in_context_twice

    return {"once": in_context(spec), "twice": in_context_twice(spec, copies)}


def with_copies(space, arch, path: str, spec, copies: int, seed: int):
    """``for_export(SODNet(space, arch))`` with ``copies`` fresh copies of ``spec`` after module ``path``."""
    import torch

    from hwnas.cli.lut import _whole_model
    from lut.context import ThenCopies

    model, inputs = _whole_model(space, arch)
    parent_path, _, leaf = path.rpartition(".")
    parent = model.get_submodule(parent_path) if parent_path else model
    torch.manual_seed(seed)
    extras = [spec.build() for _ in range(copies)]
    setattr(parent, leaf, ThenCopies(parent.get_submodule(leaf), extras, len(spec.input_shapes)))
    return model.eval(), inputs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lut", required=True, nargs="+",
                    help="tables whose context costs are checked (of one space, backend and reference: the first is timed against)")
    ap.add_argument("--resolution", type=int, default=64, help="a resolution the table covers")
    ap.add_argument("--archs", type=int, default=8, help="sampled models; one site per block kind in each")
    ap.add_argument("--copies", type=int, default=3, help="copies inserted at a site (more: more signal)")
    ap.add_argument("--fusion-copies", choices=["own", "one"], default="own",
                    help="a fusion site gets copies of its own key (fed its output once per input) or one-input fusions")
    ap.add_argument("--seed", type=int, default=151)
    ap.add_argument("--rounds", type=int, default=6, help="interleaved windows per model")
    ap.add_argument("--kinds", default=",".join(KINDS), help=f"block kinds to insert, comma-separated (of {', '.join(KINDS)})")
    ap.add_argument("--keys-matching", default=None, metavar="REGEX",
                    help="only sites whose inserted block's key matches (e.g. 'fusion r[24] ': the coarse levels' fusions)")
    ap.add_argument("--in-context", action="store_true",
                    help="also the same copies in the block's context graph (lut.context), warm and after an untimed run of "
                         "the space's smallest model (the build's state where a model outgrows the L2): the marginal "
                         "without a profiler, in the graph the table splits")
    ap.add_argument("--name", default=None, help="result name (default the table's file stem and the seed)")
    args = ap.parse_args()

    import numpy as np

    import hwnas.reference  # noqa: F401  (registers the space-model references)
    from hwnas.blocks import arch_block_paths
    from hwnas.cli.lut import _space_for, _whole_model
    from lut.reference import reference_model
    from lut.table import LatencyTable
    from lut.validate import table_profiler

    kinds = [k for k in args.kinds.split(",") if k]
    if set(kinds) - set(KINDS):
        ap.error(f"--kinds: unknown {sorted(set(kinds) - set(KINDS))}; allowed: {', '.join(KINDS)}")
    t0 = time.time()
    tables = [LatencyTable.read(p) for p in args.lut]
    for path, t in zip(args.lut, tables):
        if not t.has_context or not t.reference_ms:
            raise SystemExit(f"{path}: no context costs or no reference: nothing to compare with")
        if (t.reference_name, t.backend["name"], t.space["hash"]) != (tables[0].reference_name, tables[0].backend["name"],
                                                                      tables[0].space["hash"]):
            raise SystemExit(f"{path}: another space, backend or reference than {args.lut[0]}: its units differ")
    table = tables[0]
    space = _space_for(table, None)
    prof = table_profiler(table)
    rng = random.Random(args.seed)
    scale = table.reference_ms
    shapes: dict = {}
    rows = []
    with tempfile.TemporaryDirectory(prefix="hwnas-insert-") as tmp:
        tmp = Path(tmp)
        ref_module, ref_inputs = reference_model(table.reference_name)
        ref_path = prof.exporting_as(table.backend.get("artifacts")).export(ref_module, ref_inputs, tmp / "reference.onnx")
        if args.in_context:  # the build's untimed model run (hwnas.cli.lut._cold_context_plan), exported as a whole model
            small, small_in = _whole_model(space, space.smallest(args.resolution))
            between = (prof.export(small, small_in, tmp / "smallest.onnx"), [tuple(x.shape) for x in small_in])
        for i in range(args.archs):
            arch = space.sample(rng, resolution=args.resolution)
            sites = {}
            for spec, path in arch_block_paths(space, arch):
                extra = insertable(spec, table, shapes, args.fusion_copies)
                if extra is not None and (args.keys_matching is None or re.search(args.keys_matching, extra.key)):
                    sites.setdefault(spec.kind, []).append((path, extra))
            module, inputs = _whole_model(space, arch)
            shapes_in = [tuple(x.shape) for x in inputs]
            arts = {"model": (prof.export(module, inputs, tmp / f"model-{i}.onnx"), shapes_in),
                    "ref": (ref_path, [tuple(x.shape) for x in ref_inputs])}
            chosen = {}
            cold = {}
            for kind in kinds:
                if sites.get(kind):
                    path, extra = rng.choice(sites[kind])
                    m, x = with_copies(space, arch, path, extra, args.copies, seed=zlib.crc32(f"{args.seed}|{i}|{kind}".encode()))
                    arts[kind] = (prof.export(m, x, tmp / f"model-{i}-{kind}.onnx"), shapes_in)
                    chosen[kind] = (path, extra.key)
                    if args.in_context:
                        for arm, (cm, cx) in in_context_pair(extra, args.copies).items():
                            art = (prof.export(cm, cx, tmp / f"ctx-{i}-{kind}-{arm}.onnx"), [tuple(t.shape) for t in cx])
                            arts[f"{kind}:warm-{arm}"] = art
                            arts[f"{kind}:cold-{arm}"] = art
                            cold[f"{kind}:cold-{arm}"] = between
            ratios: dict[str, list[float]] = {k: [] for k in arts if k != "ref"}
            for r in range(args.rounds):
                got = prof.measure_together(arts, seed=zlib.crc32(f"{args.seed}|{i}|{r}".encode()), reference="ref",
                                            between=cold or None)
                for k in ratios:
                    ratios[k].append(got[k].median_ms / got["ref"].median_ms)
            base = np.array(ratios["model"])
            for kind, (path, key) in chosen.items():
                per_copy = (np.array(ratios[kind]) - base) / args.copies * scale
                row = {"arch": arch.to_string(), "kind": kind, "site": path, "key": key,
                       "marginal_ms": float(np.median(per_copy)), "marginal_spread_ms": float(per_copy.max() - per_copy.min()),
                       "context_ms": table.context_ms(key), "isolated_ms": table.median_ms(key),
                       "model_ms": float(np.median(base)) * scale,
                       # the other tables' context costs, in the first table's units (the same reference)
                       "other_context_ms": [t.context_ms(key) / t.reference_ms * scale for t in tables[1:]]}
                for state in ("warm", "cold") if args.in_context else ():
                    in_ctx = (np.array(ratios[f"{kind}:{state}-twice"]) - np.array(ratios[f"{kind}:{state}-once"])) / args.copies * scale
                    row[f"in_context_{state}_ms"] = float(np.median(in_ctx))
                rows.append(row)
                print(f"[{i + 1}/{args.archs}] {kind:7s} {key:38s} marginal {row['marginal_ms']:.4f} "
                      f"(spread {row['marginal_spread_ms']:.4f}) vs context {row['context_ms']:.4f}, isolated {row['isolated_ms']:.4f}"
                      + (f"; in context warm {row['in_context_warm_ms']:.4f}, after the model run {row['in_context_cold_ms']:.4f}"
                         if args.in_context else ""), flush=True)

    def by_kind(context_of) -> dict:
        """Per block kind: sums over the sites, and the median of context / marginal and context − marginal."""
        out = {}
        for kind in KINDS:
            rs = [r for r in rows if r["kind"] == kind]
            if not rs:
                continue
            positive = [context_of(r) / r["marginal_ms"] for r in rs if r["marginal_ms"] > 0]
            out[kind] = {"sites": len(rs), "marginal_ms": sum(r["marginal_ms"] for r in rs),
                         "context_ms": sum(context_of(r) for r in rs),
                         "median_context_over_marginal": statistics.median(positive) if positive else None,
                         "median_excess_ms": statistics.median(context_of(r) - r["marginal_ms"] for r in rs)}
            for state in ("warm", "cold"):
                if f"in_context_{state}_ms" in rs[0]:
                    out[kind][f"in_context_{state}_ms"] = sum(r[f"in_context_{state}_ms"] for r in rs)
        return out

    summaries = {args.lut[0]: by_kind(lambda r: r["context_ms"])}
    for j, path in enumerate(args.lut[1:]):
        summaries[path] = by_kind(lambda r, j=j: r["other_context_ms"][j])
    name = args.name or f"{Path(args.lut[0]).stem}_s{args.seed}"
    luts = " ".join(args.lut)
    result = {"lut": args.lut, "resolution": args.resolution, "seed": args.seed, "rounds": args.rounds, "copies": args.copies,
              "kinds": kinds, "in_context": args.in_context, "keys_matching": args.keys_matching,
              "fusion_copies": args.fusion_copies,
              "cpu": cpu_signature(), "reference": table.reference_name, "reference_ms": scale,
              "minutes": (time.time() - t0) / 60, "sites": rows, "by_kind": summaries}
    others = "".join(f" | context, table {j + 2}" for j in range(len(args.lut) - 1))
    lines = [f"# One more block inside a whole model: {luts}", "",
             f"`python bench/block_insertion.py --lut {luts} --resolution {args.resolution} --archs {args.archs} "
             f"--copies {args.copies} --fusion-copies {args.fusion_copies} --kinds {','.join(kinds)}"
             f"{' --in-context' if args.in_context else ''}"
             f"{f' --keys-matching {chr(39)}{args.keys_matching}{chr(39)}' if args.keys_matching else ''} --seed {args.seed} --rounds {args.rounds}`; {result['minutes']:.1f} min on {cpu_signature()}. "
             f"ms at the first table's reference speed ({scale:.4f} ms); marginal = (model with {args.copies} copies − model) / "
             f"{args.copies}, the median over {args.rounds} interleaved windows (spread: max − min).", "",
             f"| kind | site | block | marginal (spread) | context, table 1{others} | isolated |",
             "|---|---|---|---|---|" + "---|" * len(args.lut)]
    for r in rows:
        lines.append(f"| {r['kind']} | `{r['site']}` | `{r['key']}` | {r['marginal_ms']:.4f} ({r['marginal_spread_ms']:.4f}) | "
                     + " | ".join(f"{c:.4f}" for c in [r["context_ms"], *r["other_context_ms"]]) + f" | {r['isolated_ms']:.4f} |")
    for j, (path, summary) in enumerate(summaries.items(), 1):
        lines += ["", f"Table {j} (`{path}`) by kind (sums over the sites; per site the median of context / marginal "
                      "and of context − marginal):", ""]
        for kind, s in summary.items():
            ratio = f"{s['median_context_over_marginal']:.2f}" if s["median_context_over_marginal"] is not None else "n/a"
            lines.append(f"- {kind}: {s['sites']} sites, marginal {s['marginal_ms']:.4f} vs context {s['context_ms']:.4f} ms "
                         f"(median ratio {ratio}, median excess {s['median_excess_ms']:+.4f} ms)")
    if args.in_context:
        lines += ["", "The same copies in the block's context graph, the marginal without a profiler (sums over the sites, ms): ", ""]
        for r in rows:
            lines.append(f"- {r['kind']} `{r['key']}`: in the model {r['marginal_ms']:.4f}; in context warm "
                         f"{r['in_context_warm_ms']:.4f}, after the smallest model's run {r['in_context_cold_ms']:.4f}; table {r['context_ms']:.4f}")
        for kind, s in summaries[args.lut[0]].items():
            lines.append(f"- **{kind}**, {s['sites']} sites: in the model {s['marginal_ms']:.4f}; in context warm "
                         f"{s['in_context_warm_ms']:.4f}, after the model run {s['in_context_cold_ms']:.4f}; table 1 {s['context_ms']:.4f}")
    write_result_and_report(f"block_insertion_{name}", result, lines)


if __name__ == "__main__":
    main()
