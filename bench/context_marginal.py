"""A block's in-model cost without any attribution: its context graph with the block twice, less once.

For mbconv blocks whose output has the shape of their input (stride 1, same channels), the graph
``neighbour -> block -> block -> neighbour`` less ``neighbour -> block -> neighbour``, both timed
interleaved with the reference after the build's cache flush, is what one more such block costs
inside a model — no per-node profile, no share. Beside it, the context cost a table build gives
the same block (``lut.measure.BlockMeter``: the runtime profiler's share of its context run).

    python bench/context_marginal.py --backend executorch-xnnpack --space inas-sod --resolution 320 --blocks 10
    → bench/results/context_marginal_<space>_<backend>.json and .md
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import write_result  # noqa: E402  (bench/ is on the path of a script run from it)


def _channels(key: str) -> tuple[int, int]:
    c = key.split(" c", 1)[1].split(" ", 1)[0]  # "c48>48"
    a, b = c.split(">")
    return int(a), int(b)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="executorch-xnnpack")
    ap.add_argument("--space", default="inas-sod")
    ap.add_argument("--resolution", type=int, default=320)
    ap.add_argument("--blocks", type=int, default=10)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args(argv)

    import torch.nn as nn

    import profilers
    from hwnas.cli.lut import BUILD_PROTOCOL
    from hwnas.space import create
    from lut.context import InContext
    from lut.measure import BlockMeter
    from profilers.cache import flush_bytes

    space = create(args.space)
    prof = profilers.get(args.backend, threads=1, protocol=profilers.Protocol(**BUILD_PROTOCOL))
    same = [b for b in space.all_blocks([args.resolution])
            if b.kind == "mbconv" and " s1 " in b.key and len(b.input_shapes) == 1 and len(set(_channels(b.key))) == 1]
    pick = random.Random(args.seed).sample(same, min(args.blocks, len(same)))
    model_bytes = space.model_bytes(args.resolution)
    flush = flush_bytes(model_bytes)  # as a table build decides (profilers.cache)
    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        meter = BlockMeter(prof, d, seed=args.seed, model_bytes={b.key: flush for b in pick})
        meter.measure_io(pick)
        arts = meter.export_ahead(pick, d / "blocks", progress=False)
        for i, b in enumerate(pick):
            c = b.input_shapes[0][1]
            once = InContext(b.build().eval(), [c], [c], False, False).eval()
            twice = InContext(nn.Sequential(b.build().eval(), b.build().eval()), [c], [c], False, False).eval()
            x = b.example_inputs()
            shapes = list(b.input_shapes)
            got = prof.measure_together({"once": (prof.export(once, x, d / f"once{i}{prof.artifact_suffix}"), shapes),
                                         "twice": (prof.export(twice, x, d / f"twice{i}{prof.artifact_suffix}"), shapes),
                                         "ref": (meter.ref_path, meter.ref_shapes)},
                                        seed=i, flush_bytes={"once": flush, "twice": flush} if flush else None)
            marginal = (got["twice"].median_ms - got["once"].median_ms) / got["ref"].median_ms
            m, extra = meter.measure(b, arts[b.key])
            attributed = extra["context_ms"] / extra["ref_ms"]
            rows.append({"key": b.key, "marginal_ref": marginal, "attributed_ref": attributed,
                         "isolated_ref": m.median_ms / extra["ref_ms"], "attributed_vs_marginal_pct": 100 * (attributed / marginal - 1)})
            print(f"{b.key}: marginal {marginal:.2f}, attributed {attributed:.2f} ({rows[-1]['attributed_vs_marginal_pct']:+.1f} %)"
                  " [reference units]", flush=True)
    diffs = [r["attributed_vs_marginal_pct"] for r in rows]
    result = {"backend": args.backend, "space": args.space, "resolution": args.resolution, "seed": args.seed,
              "host": {"cpus": os.cpu_count(), "load_before": load_before, "load_after": os.getloadavg()},
              "flush_bytes": flush, "blocks": rows, "median_pct": statistics.median(diffs),
              "sum_attributed_vs_marginal_pct": 100 * (sum(r["attributed_ref"] for r in rows) / sum(r["marginal_ref"] for r in rows) - 1)}
    out = Path(__file__).resolve().parent / "results" / f"context_marginal_{args.space}_{args.backend}.json"
    write_result(out, result)
    lines = [f"# A block's marginal in-model cost vs its attributed context cost ({args.space}, {args.resolution} px, {args.backend} 1 thread)", "",
             f"`python bench/context_marginal.py --backend {args.backend} --space {args.space} --resolution {args.resolution} "
             f"--blocks {args.blocks} --seed {args.seed}`; {os.cpu_count()} CPUs, load {load_before[0]:.2f} before. "
             "Costs in units of the reference's median of the same window.", "",
             "| block | marginal (twice − once) | attributed (table) | attributed vs marginal | isolated |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['key']} | {r['marginal_ref']:.2f} | {r['attributed_ref']:.2f} | {r['attributed_vs_marginal_pct']:+.1f} % | "
                     f"{r['isolated_ref']:.2f} |")
    lines += ["", f"Median {result['median_pct']:+.1f} %; summed over the blocks {result['sum_attributed_vs_marginal_pct']:+.1f} %."]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
