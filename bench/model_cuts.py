"""Where inside a whole model does a table's prediction go wrong? The model against itself cut in two.

Issue 12: on the AMD hosts (512 KiB L2 per core) inas-tiny tables at 64 px predict every whole
model high by a nearly constant amount: fitted over 30 validated models, prediction − target ≈
+0.066 ms − 0.025 x target (context runs after a model run) and +0.053 ms − 0.24 x target (warm
context runs). This script localises that error without any profiler. Each sampled model (the ONNX
``hwnas export`` writes) is cut, with ``onnx.utils.extract_model``, where each part of the network
begins in the exported graph's order (``stages.``: after the stem, ``transport.``, ``decoder.``,
``head.``), into a prefix (model input → the tensors crossing the cut) and a suffix (those tensors
→ model output). The whole model F, every prefix P and suffix S and the table's reference are timed
interleaved (``Profiler.measure_together``) in ``--rounds`` windows; every time is a ratio to the
reference of its window, stated at the table's reference speed like the table's own costs.

At a cut: F − S is what the part before the cut costs inside the model less the copy-in edges the
suffix pays for its cut inputs, F − P the part after it less the prefix's copy-out edges, and
P + S − F − call = those edges. So a part's in-model cost lies in [F − S, F − S + edges] (before)
or [F − P, F − P + edges] (after); beside each, the table's sum of the part's blocks' context costs
(the call counted once, with the part that starts the model). The part between two cuts follows
by difference.

Caveat, seen in its first run (AMD, 512 KiB L2): a part run alone touches fewer bytes than the
whole model and runs warmer, so P + S − F − call came out negative at the cuts inside the network
(the edges cannot be told from the footprint there); at the head cut, whose suffix holds a few
hundred bytes of weights, the prefix keeps the whole model's footprint and F − P is the head's own.

The method was fixed before its first run (nothing is fitted on the models it is scored on).

    python bench/model_cuts.py --lut runs/s47/tiny-ort1.parquet --archs 6 --seed 150
    → bench/results/model_cuts_<name>.json and .md
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import write_result_and_report  # noqa: E402  (bench/ is on the path of a script run from it)
from profilers.fingerprint import cpu_signature  # noqa: E402

# module paths (weight-name prefixes) where each part of an SOD network begins, in forward order
CUTS = ("stages.", "transport.", "decoder.", "head.")


def _cut_index(graph, prefix: str) -> int:
    """Index of the first node (in the exported graph's order: forward order) that holds a weight
    under module path ``prefix``."""
    inits = {i.name for i in graph.initializer}
    for k, node in enumerate(graph.node):
        if any(i.startswith(prefix) for i in node.input if i in inits):
            return k
    raise SystemExit(f"no node holds a weight under {prefix!r}: the exporter named weights otherwise")


def _crossing(graph, k: int) -> list[str]:
    """Tensors made by nodes before ``k`` (or the model's input) that nodes from ``k`` on read."""
    made = {i.name for i in graph.input}
    for node in graph.node[:k]:
        if node.op_type != "Constant":  # a constant goes with the suffix that reads it
            made.update(node.output)
    out = []
    for node in graph.node[k:]:
        out += [i for i in node.input if i in made and i not in out]
    return out


def cut_models(full: Path, folder: Path) -> dict[str, tuple[Path, Path, int]]:
    """``{cut: (prefix path, suffix path, tensors crossing)}`` of ``full`` at every cut of :data:`CUTS`."""
    import onnx
    from onnx.utils import extract_model

    graph = onnx.load(str(full)).graph
    model_in, model_out = [i.name for i in graph.input], [o.name for o in graph.output]
    out = {}
    for cut in CUTS:
        crossing = _crossing(graph, _cut_index(graph, cut))
        pre, suf = folder / f"{full.stem}-{cut}pre.onnx", folder / f"{full.stem}-{cut}suf.onnx"
        extract_model(str(full), str(pre), model_in, crossing)
        extract_model(str(full), str(suf), crossing, model_out)
        out[cut] = (pre, suf, len(crossing))
    return out


def _input_shapes(path: Path) -> list[tuple]:
    import onnx

    m = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    return [tuple(d.dim_value for d in i.type.tensor_type.shape.dim) for i in m.graph.input]


def _part_of(path: str) -> int:
    """Which part (0: stem, then one per cut) the block at module ``path`` belongs to."""
    part = 0
    for i, cut in enumerate(CUTS, 1):
        if (path + ".").startswith(cut):
            part = i
    return part


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lut", required=True, help="the table whose predictions are localised")
    ap.add_argument("--resolution", type=int, default=64, help="a resolution the table covers")
    ap.add_argument("--archs", type=int, default=6, help="sampled models (the space's smallest is added)")
    ap.add_argument("--seed", type=int, default=150)
    ap.add_argument("--rounds", type=int, default=6, help="interleaved windows per model")
    ap.add_argument("--name", default=None, help="result name (default the table's file stem and the seed)")
    args = ap.parse_args()

    import numpy as np

    import hwnas.reference  # noqa: F401  (registers the space-model references)
    from hwnas.blocks import arch_block_paths
    from hwnas.cli.lut import _space_for, _whole_model
    from lut.reference import reference_model
    from lut.table import LatencyTable
    from lut.validate import table_profiler

    t0 = time.time()
    table = LatencyTable.read(args.lut)
    if not table.has_context or not table.reference_ms:
        raise SystemExit(f"{args.lut}: no context costs or no reference: nothing to compare with")
    space = _space_for(table, None)
    prof = table_profiler(table)
    rng = random.Random(args.seed)
    archs = [space.smallest(args.resolution)] + [space.sample(rng, resolution=args.resolution) for _ in range(args.archs)]
    names = ["stem", *[c.rstrip(".") for c in CUTS]]
    scale = table.reference_ms
    rows = []
    with tempfile.TemporaryDirectory(prefix="hwnas-cuts-") as tmp:
        tmp = Path(tmp)
        ref_module, ref_inputs = reference_model(table.reference_name)
        ref_path = prof.exporting_as(table.backend.get("artifacts")).export(ref_module, ref_inputs, tmp / "reference.onnx")
        arts_ref = (ref_path, [tuple(x.shape) for x in ref_inputs])
        for i, arch in enumerate(archs):
            module, inputs = _whole_model(space, arch)
            full = Path(prof.export(module, inputs, tmp / f"model-{i}.onnx"))
            cuts = cut_models(full, tmp)
            arts = {"full": (full, [tuple(x.shape) for x in inputs]), "ref": arts_ref}
            for cut, (pre, suf, _) in cuts.items():
                arts[f"{cut}pre"] = (pre, _input_shapes(pre))
                arts[f"{cut}suf"] = (suf, _input_shapes(suf))
            ratios: dict[str, list[float]] = {k: [] for k in arts if k != "ref"}
            for r in range(args.rounds):
                got = prof.measure_together(arts, seed=zlib.crc32(f"{args.seed}|{i}|{r}".encode()), reference="ref")
                for k in ratios:
                    ratios[k].append(got[k].median_ms / got["ref"].median_ms)
            ms = {k: np.array(v) * scale for k, v in ratios.items()}  # per window, at the table's speed
            part_ms = [0.0] * (len(CUTS) + 1)
            for spec, path in arch_block_paths(space, arch):
                part_ms[_part_of(path)] += table.context_ms(spec.key)
            part_ms[0] += table.call_ms
            full_ms = float(np.median(ms["full"]))
            row = {"arch": arch.to_string(), "full_ms": full_ms, "predicted_ms": float(sum(part_ms)),
                   "table_part_ms": dict(zip(names, part_ms)), "cuts": {}}
            for j, cut in enumerate(CUTS, 1):
                before_ms = ms["full"] - ms[f"{cut}suf"]
                after_ms = ms["full"] - ms[f"{cut}pre"]
                edges_ms = ms[f"{cut}pre"] + ms[f"{cut}suf"] - ms["full"] - table.call_ms
                row["cuts"][cut.rstrip(".")] = {
                    "crossing": cuts[cut][2],
                    "before_ms": float(np.median(before_ms)), "after_ms": float(np.median(after_ms)),
                    "edges_ms": float(np.median(edges_ms)),
                    "before_spread_ms": float(before_ms.max() - before_ms.min()),
                    "table_before_ms": float(sum(part_ms[:j])), "table_after_ms": float(sum(part_ms[j:]))}
            rows.append(row)
            print(f"[{i + 1}/{len(archs)}] whole {full_ms:.4f} predicted {row['predicted_ms']:.4f}; "
                  + "; ".join(f"{c}: before {v['before_ms']:.4f}..{v['before_ms'] + v['edges_ms']:.4f} "
                              f"(table {v['table_before_ms']:.4f}) after {v['after_ms']:.4f}..{v['after_ms'] + v['edges_ms']:.4f} "
                              f"(table {v['table_after_ms']:.4f})" for c, v in row["cuts"].items()), flush=True)

    cut_names = [c.rstrip(".") for c in CUTS]
    summary = {}
    for c in cut_names:
        vals = [r["cuts"][c] for r in rows]
        summary[c] = {k: statistics.median(v[k] for v in vals)
                      for k in ("before_ms", "after_ms", "edges_ms", "table_before_ms", "table_after_ms")}
        # how far the table's part before / after the cut lies from the in-model interval, per model
        summary[c]["table_before_excess_ms"] = statistics.median(
            v["table_before_ms"] - min(max(v["table_before_ms"], v["before_ms"]), v["before_ms"] + max(v["edges_ms"], 0)) for v in vals)
        summary[c]["table_after_excess_ms"] = statistics.median(
            v["table_after_ms"] - min(max(v["table_after_ms"], v["after_ms"]), v["after_ms"] + max(v["edges_ms"], 0)) for v in vals)
    summary["whole"] = {"full_ms": statistics.median(r["full_ms"] for r in rows),
                        "predicted_ms": statistics.median(r["predicted_ms"] for r in rows),
                        "excess_ms": statistics.median(r["predicted_ms"] - r["full_ms"] for r in rows)}
    name = args.name or f"{Path(args.lut).stem}_s{args.seed}"
    result = {"lut": args.lut, "resolution": args.resolution, "seed": args.seed, "rounds": args.rounds,
              "cpu": cpu_signature(), "reference": table.reference_name, "reference_ms": scale,
              "minutes": (time.time() - t0) / 60, "models": rows, "median": summary}
    lines = [f"# A whole model against itself cut in two: {args.lut}", "",
             f"`python bench/model_cuts.py --lut {args.lut} --resolution {args.resolution} --archs {args.archs} "
             f"--seed {args.seed} --rounds {args.rounds}`; {result['minutes']:.1f} min on {cpu_signature()}. ms at the "
             f"table's reference speed ({scale:.4f} ms), each the median over {args.rounds} interleaved windows. "
             "In-model cost of the part before a cut: F − S … F − S + edges; after it: F − P … F − P + edges "
             "(edges = P + S − F − call); table: the sum of the part's blocks' context costs.", "",
             "| model | whole (predicted) | " + " | ".join(f"{c}: before (table) · after (table) · edges" for c in cut_names) + " |",
             "|---|---|" + "---|" * len(cut_names)]
    for r in rows:
        cells = [f"{v['before_ms']:.4f} ({v['table_before_ms']:.4f}) · {v['after_ms']:.4f} ({v['table_after_ms']:.4f}) · "
                 f"{v['edges_ms']:.4f}" for v in r["cuts"].values()]
        lines.append(f"| `{r['arch'][:32]}` | {r['full_ms']:.4f} ({r['predicted_ms']:.4f}) | " + " | ".join(cells) + " |")
    lines += ["", "Medians over the models — the table's excess over the in-model interval (0 where it lies inside):", ""]
    for c in cut_names:
        s = summary[c]
        lines.append(f"- cut at `{c}`: before {s['before_ms']:.4f} … +{s['edges_ms']:.4f} vs table {s['table_before_ms']:.4f} "
                     f"(excess {s['table_before_excess_ms']:+.4f}); after {s['after_ms']:.4f} … +{s['edges_ms']:.4f} vs table "
                     f"{s['table_after_ms']:.4f} (excess {s['table_after_excess_ms']:+.4f})")
    w = summary["whole"]
    lines.append(f"- whole: measured {w['full_ms']:.4f}, predicted {w['predicted_ms']:.4f} (excess {w['excess_ms']:+.4f})")
    write_result_and_report(f"model_cuts_{name}", result, lines)


if __name__ == "__main__":
    main()
