"""Does the drift reference run as fast beside a whole model as beside a block? (issue 12)

A table's costs are ratios to the reference in the build's windows (blocks); a validation's
measured models are ratios to it in the models' windows. If the reference is slower beside a
whole model, every model is drift-compensated too low and the table reads high. Two parts, one
process, one inas-sod arch at 320 px (``--seed``), its first mbconv block, the call model:

1. **By position**: each turn runs X (call model / block / whole model) ``--x-runs`` times, then
   the reference ``--positions`` times back to back; the reference's median at each position.
2. **A/B**: ``measure_together({X, ref})`` with ``Protocol.settle_ms`` 0 (one untimed run per turn)
   and the build's 0.2 (untimed runs filling 0.2 ms, up to 4), interleaved in ``--repeats`` rounds:
   the reference's median beside each X, as a ratio to its median beside the call model.
3. With ``--reference`` other than the small one: X's own median beside that reference vs beside
   the small one (alternated rounds): a reference that slows blocks more than models biases a table.

    python bench/reference_settle.py --backend executorch-xnnpack
    → bench/results/reference_settle_<backend>.json and .md
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import write_result  # noqa: E402  (bench/ is on the path of a script run from it)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="executorch-xnnpack")
    ap.add_argument("--seed", type=int, default=3)
    ap.add_argument("--resolution", type=int, default=320)
    ap.add_argument("--positions", type=int, default=12)
    ap.add_argument("--x-runs", type=int, default=3, help="runs of X per turn (a measure_together turn runs 3)")
    ap.add_argument("--seconds", type=float, default=40.0, help="length of part 1")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--reference", default=None, help="drift reference name (lut.reference; default: the small one)")
    args = ap.parse_args(argv)

    import numpy as np

    import profilers
    from hwnas.cli.lut import BUILD_PROTOCOL, _whole_model
    from hwnas.space import create
    from lut.measure import BlockMeter
    from lut.reference import REFERENCE_NAME, call_model, reference_model

    space = create("inas-sod")
    settles = (0.0, float(BUILD_PROTOCOL["settle_ms"]))
    protos = {s: profilers.Protocol(**dict(BUILD_PROTOCOL, settle_ms=s)) for s in settles}
    prof = profilers.get(args.backend, threads=1, protocol=protos[settles[1]])
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        ref_name = args.reference or REFERENCE_NAME
        meter = BlockMeter(prof, d, reference=ref_name)
        ref = (meter.ref_path, meter.ref_shapes)
        cm, ci = call_model()
        arch = space.sample(random.Random(args.seed), resolution=args.resolution)
        mm, mi = _whole_model(space, arch)
        block = next(b for b in space.blocks(arch) if b.kind == "mbconv")
        xs = {"call": (prof.export(cm, ci, d / f"call{prof.artifact_suffix}"), [tuple(t.shape) for t in ci]),
              "block": (prof.export(block.build().eval(), block.example_inputs(), d / f"block{prof.artifact_suffix}"),
                        list(block.input_shapes)),
              "model": (prof.export(mm, mi, d / f"model{prof.artifact_suffix}"), [tuple(t.shape) for t in mi])}

        # part 1: the reference by position after X
        run_ref = prof.prepare(*ref)
        runs = {n: prof.prepare(*a) for n, a in xs.items()}
        for f in [run_ref, *runs.values()]:
            for _ in range(5):
                f()
        pos = {n: [[] for _ in range(args.positions)] for n in xs}
        x_ms = {n: [] for n in xs}
        rng, t_end = random.Random(0), time.perf_counter() + args.seconds
        while time.perf_counter() < t_end:
            order = list(xs)
            rng.shuffle(order)
            for n in order:
                t = time.perf_counter()
                for _ in range(args.x_runs):
                    runs[n]()
                x_ms[n].append((time.perf_counter() - t) * 1e3 / args.x_runs)
                for k in range(args.positions):
                    t = time.perf_counter()
                    run_ref()
                    pos[n][k].append((time.perf_counter() - t) * 1e3)
        by_position = {n: {"x_median_ms": float(np.median(x_ms[n])), "turns": len(x_ms[n]),
                           "ref_median_ms_by_position": [float(np.median(p)) for p in pos[n]]} for n in xs}

        # part 2: A/B of the settle setting, the windows a build and a validation time
        beside: dict[str, dict[str, list[float]]] = {str(s): {n: [] for n in xs} for s in settles}
        skips: dict[str, int] = {}
        for rep in range(args.repeats):
            for s in settles:
                prof.protocol = protos[s]
                for n, a in xs.items():
                    got = prof.measure_together({n: a, "ref": ref}, seed=rep)
                    beside[str(s)][n].append(got["ref"].median_ms)
                    skips[str(s)] = got["ref"].info.get("interleave_skip", 1)
        # part 3: does X itself run slower beside the given reference than beside the small one?
        # (a large reference can evict a block's weights and inputs between its runs, where inside
        # a model they were just written by the block before)
        x_beside: dict[str, dict[str, list[float]]] = {}
        if ref_name != REFERENCE_NAME:
            sm, si = reference_model(REFERENCE_NAME)
            small = (prof.export(sm, si, d / f"small{prof.artifact_suffix}"), [tuple(t.shape) for t in si])
            prof.protocol = protos[settles[1]]
            x_beside = {r: {n: [] for n in xs} for r in (REFERENCE_NAME, ref_name)}
            for rep in range(args.repeats * 2):
                for r, ra in ((REFERENCE_NAME, small), (ref_name, ref))[:: 1 if rep % 2 == 0 else -1]:
                    for n, a in xs.items():
                        x_beside[r][n].append(prof.measure_together({n: a, "ref": ra}, seed=rep)[n].median_ms)
    x_ratio = {n: float(np.median(x_beside[ref_name][n]) / np.median(x_beside[REFERENCE_NAME][n])) for n in xs} if x_beside else {}
    ab = {}
    for s, by_x in beside.items():
        med = {n: float(np.median(v)) for n, v in by_x.items()}
        ab[s] = {"ref_median_ms": med, "ref_untimed_runs_per_turn": skips[s],
                 "model_over_call": med["model"] / med["call"], "block_over_call": med["block"] / med["call"],
                 "model_over_block": med["model"] / med["block"]}
    result = {"backend": args.backend, "reference": ref_name, "arch": arch.to_string(), "block": block.key, "seed": args.seed,
              "host": {"cpus": os.cpu_count(), "load_before": load_before, "load_after": os.getloadavg()},
              "by_position": by_position, "ab": ab,
              "x_beside_ms": {r: {n: float(np.median(v)) for n, v in by.items()} for r, by in x_beside.items()},
              "x_beside_ratio": x_ratio}
    tag = args.backend if args.reference is None else f"{args.backend}_{ref_name}"
    out = Path(__file__).resolve().parent / "results" / f"reference_settle_{tag}.json"
    write_result(out, result)
    flag = "" if args.reference is None else f" --reference {ref_name}"
    lines = [f"# The reference {ref_name} beside whole models vs blocks ({args.backend}, 1 thread, inas-sod {args.resolution} px)", "",
             f"`python bench/reference_settle.py --backend {args.backend} --seed {args.seed} --repeats {args.repeats}{flag}`; {os.cpu_count()} CPUs, "
             f"load {load_before[0]:.2f} before.", "",
             f"Reference median (ms) at each position after {args.x_runs} runs of X:", ""]
    for n, p in by_position.items():
        lines.append(f"- after {n} ({p['x_median_ms']:.2f} ms, {p['turns']} turns): "
                     + " ".join(f"{v:.4f}" for v in p["ref_median_ms_by_position"]))
    lines += ["", "| settle_ms | untimed ref runs per turn | ref beside model / beside call | block / call | model / block |",
              "|---|---|---|---|---|"]
    for s, r in ab.items():
        lines.append(f"| {s} | {r['ref_untimed_runs_per_turn']} | {r['model_over_call']:.3f} | {r['block_over_call']:.3f} | "
                     f"{r['model_over_block']:.3f} |")
    if x_ratio:
        lines += ["", f"X's own median beside {ref_name} / beside {REFERENCE_NAME} (settle_ms {settles[1]}, "
                  f"{args.repeats * 2} alternated rounds): " + ", ".join(f"{n} {v:.3f}" for n, v in x_ratio.items())]
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
