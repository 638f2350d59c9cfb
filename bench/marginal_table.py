"""A/B: a table whose shape-keeping blocks are costed by their profiler-free marginal in context.

Issue 12: on the AMD hosts an ONNX Runtime inas-tiny table predicts every model ~+10 % high.
``bench/block_insertion.py`` found the excess at the blocks' split, not their context graphs: for
the fusions of the coarse levels (2 and 4 px, four in every model) one more copy costs 0.0587 ms
summed over 8 sites inside real whole models and 0.0563 / 0.0600 ms in their context graphs (warm /
after the smallest model's run), while the table charges 0.0953 ms — ORT's profiler, which adds
microseconds to every node's kernel time on this host, weights the share of a context run by its
node count.

This script rewrites a finished table: every block that keeps its input's shape (every fusion —
its copy fed its output once per input — "same" branches, stride-1 MBConv layers of one width; a
key of :func:`block_insertion.insertable`) gets as its context cost the marginal of one more copy
in its context graph (``lut.context``: twice − once, timed interleaved with the table's reference
over ``--rounds`` windows, every run after the build's own untimed run of the space's smallest model
where the table records ``cache: model-run``; a table whose context runs follow a flush is refused), stored as a ratio to
the reference of its window like the build's, so the table's reference speed states it. Every other
block keeps the build's cost. Score it beside the original on the same fresh validation
(``bench/lut_accuracy.py`` then ``bench/tables_rescored.py``).

The method was fixed before its first run (nothing is fitted on the models it is scored on).

    python bench/marginal_table.py --lut runs/s47/tiny-ort1.parquet -o runs/s48/tiny-ort1-marginal.parquet
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from block_insertion import in_context_pair, insertable  # noqa: E402  (bench/ is on the path of a script run from it)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lut", required=True, help="a finished table with context costs")
    ap.add_argument("-o", "--out", required=True, help="the rewritten table (Parquet)")
    ap.add_argument("--resolution", type=int, default=64, help="the table's resolution whose blocks are rewritten")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved windows per block (the median is kept)")
    ap.add_argument("--copies", type=int, default=1, help="copies after the block in the twice graph")
    args = ap.parse_args()

    from tqdm import tqdm

    import hwnas.reference  # noqa: F401  (registers the space-model references)
    from hwnas.blocks import space_blocks
    from hwnas.cli.lut import _space_for, _whole_model
    from lut.reference import reference_model
    from lut.table import LatencyTable
    from lut.validate import table_profiler
    from profilers.fingerprint import cpu_signature

    t0 = time.time()
    table = LatencyTable.read(args.lut)
    if not table.has_context or not table.reference_ms:
        raise SystemExit(f"{args.lut}: no context costs or no reference: nothing to rewrite")
    lm = table.metadata.get("latency_model") or {}
    cache = lm.get("cache")
    if cache not in ("model-run", "warm", None):
        raise SystemExit(f"{args.lut}: its context runs follow a {cache}; only warm and model-run tables are rewritten here")
    space = _space_for(table, None)
    prof = table_profiler(table)
    rows = table.rows.copy()
    specs = {b.key: b for b in space_blocks(space, [args.resolution])}
    chosen = []
    for key in rows["key"]:
        spec = specs.get(key)
        extra = insertable(spec, table, {}) if spec is not None else None
        if extra is not None and extra.key == key:
            chosen.append(spec)
    if not chosen:
        raise SystemExit(f"{args.lut}: no block keeps its input's shape: nothing to rewrite")
    marginal_ratio = {}
    with tempfile.TemporaryDirectory(prefix="hwnas-marginal-") as tmp:
        tmp = Path(tmp)
        ref_module, ref_inputs = reference_model(table.reference_name)
        ref = (prof.exporting_as(table.backend.get("artifacts")).export(ref_module, ref_inputs, tmp / "reference.onnx"),
               [tuple(x.shape) for x in ref_inputs])
        before = {}
        if cache == "model-run":  # the build's untimed run (hwnas.cli.lut._cold_context_plan), before once and twice
            small, small_in = _whole_model(space, space.smallest(args.resolution))
            between = (prof.export(small, small_in, tmp / "smallest.onnx"), [tuple(t.shape) for t in small_in])
            before = {"between": {"once": between, "twice": between}}
        for spec in tqdm(chosen, desc="marginal in context", unit="block"):
            arts = {"ref": ref}
            for arm, (m, x) in in_context_pair(spec, args.copies).items():
                arts[arm] = (prof.export(m, x, tmp / f"{arm}.onnx"), [tuple(t.shape) for t in x])
            ratios = []
            for w in range(args.rounds):
                got = prof.measure_together(arts, seed=zlib.crc32(f"{spec.key}|{w}".encode()), reference="ref", **before)
                ratios.append((got["twice"].median_ms - got["once"].median_ms) / args.copies / got["ref"].median_ms)
            marginal_ratio[spec.key] = max(statistics.median(ratios), 0.0)
    # the build's context_ms is in its window's units (ctx / ref_ms x the table's reference speed):
    # store the marginal the same way
    ref_ms = rows["ref_ms"].to_numpy(dtype=float)
    ctx = rows["context_ms"].to_numpy(dtype=float).copy()
    for i, key in enumerate(rows["key"]):
        if key in marginal_ratio:
            ctx[i] = marginal_ratio[key] * ref_ms[i]
    rows["context_ms"] = ctx
    meta = dict(table.metadata)
    meta["latency_model"] = dict(lm, marginal_rewrite={"blocks": len(marginal_ratio), "rounds": args.rounds,
                                                        "copies": args.copies, "from": args.lut,
                                                        "cpu": cpu_signature(), "minutes": (time.time() - t0) / 60})
    out = LatencyTable(rows, meta)
    out.write(args.out)
    old = LatencyTable.read(args.lut)
    keys = list(marginal_ratio)
    print(f"rewrote {len(keys)} of {len(rows)} blocks in {(time.time() - t0) / 60:.1f} min: their context costs summed "
          f"{sum(old.context_ms(k) for k in keys):.4f} ms, now {sum(LatencyTable.read(args.out).context_ms(k) for k in keys):.4f} ms "
          f"→ {args.out}")


if __name__ == "__main__":
    main()
