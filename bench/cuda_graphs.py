"""torch-cuda: does timing blocks and whole models as CUDA-graph replays close the plain sum's gap?

Issue 12, item 5. Eager PyTorch launches each kernel from Python; an isolated block's events
measure those launch gaps, while a whole model hides most of them behind its queue (on an H100
the plain sum of eager blocks overestimated every inas-sod model at 320 px, by 38 %). This script
measures, on one GPU in one process, for architectures sampled from the space:

* every distinct block of those architectures, isolated, under both timers of the torch-cuda
  profiler (``cuda-graph``: one replay of the captured forward; ``cuda-events``: the eager forward);
* chains of 1, 2, 4 and 8 of the empty call model's ReLU (``lut.reference.call_model``) under
  both timers: a call overhead as the intercept at 0 ops (what an isolated call pays beyond its
  ops), the one-ReLU model's time beside it;
* every whole model (deploy form, as ``hwnas export`` builds it) under both timers, twice: once
  right after its blocks, once at the end (the test-retest spread).

and reports, per timer, the plain sum and call + Σ (block − call) (the ``call-overhead`` latency
model of ``lut.measure``) against the whole model's median, with the whole-model retest spread
beside them. Nothing is fitted on the whole models. What a table predicts: with ``cuda-events``
call + Σ (block − call) with the one-ReLU model's time as the call; with ``cuda-graph`` the plain
sum, since a replay's samples hold no call overhead (``TorchCUDA.call_in_samples``; the
subtraction predicted every model 23-33 % low in both runs of this script on an H200). Blocks are timed with the same profiler code a ``hwnas lut build --backend torch-cuda``
uses, under a shorter protocol (``--runs``, the protocol's minimum warm-up) so that a few hundred
blocks fit in a lent GPU's minutes; ``--minutes`` bounds the block phase (architectures are taken
in order until it is spent; the result is written after each one).

    python bench/cuda_graphs.py --archs 14 --minutes 5 --seed 0
    → bench/results/cuda_graphs_<space>_<res>_s<seed>.json and .md

``--dry-run`` times both "timers" with the torch-cpu profiler on a tiny space (no GPU): it checks
the script, not the GPU.
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import write_result  # noqa: E402  (bench/ is on the path of a script run from it)

TIMERS = ("cuda-graph", "cuda-events")
CALL_CHAIN = (1, 2, 4, 8)  # ReLUs in a row: the call is the intercept at 0 ops


def call_intercept_ms(median_ms_by_ops: dict) -> float:
    """Intercept at 0 ops of the least-squares line through (ops, median ms), not below 0."""
    import numpy as np

    ops = sorted(median_ms_by_ops)
    _, intercept = np.polyfit(np.array(ops, dtype=float), np.array([median_ms_by_ops[k] for k in ops]), 1)
    return max(float(intercept), 0.0)


def make_profilers(args) -> dict:
    import profilers
    from profilers.stats import Protocol

    # the protocol's floor for warm-up; few timed runs: a replay's spread on a GPU is small
    protocol = Protocol(warmup_runs=10, warmup_s=0.2, runs=args.runs, min_time_s=0.02, max_attempts=1)
    if args.dry_run:
        return {t: profilers.get("torch-cpu", protocol=protocol) for t in TIMERS}
    return {t: profilers.get("torch-cuda", precision=args.precision, protocol=protocol, timer=t) for t in TIMERS}


def time_both(profs: dict, module, inputs) -> dict:
    """Median ms of ``module`` under each timer, the timers in alternating order (module built once)."""
    out = {}
    for t in profs:
        out[t] = float(profs[t].measure(module, inputs).median_ms)
    return out


def accuracy_rows(models: list[dict], timer: str) -> dict:
    from lut.validate import accuracy

    measured = [m["whole_ms"][timer][0] for m in models]
    rows = {}
    for what in ("sum", "predicted"):
        rows[what] = accuracy([m[f"{what}_ms"][timer] for m in models], measured)
    # far-apart retest of the whole models (first vs second measurement): the floor
    rel = [abs(a - b) / ((a + b) / 2) for a, b in (m["whole_ms"][timer] for m in models)]
    rows["retest_median_pct"] = 100 * statistics.median(rel)
    rows["retest_max_pct"] = 100 * max(rel)
    return rows


def call_line(result: dict) -> str:
    chain = result.get("call_chain_ms")
    if not chain:  # the first run measured the one-ReLU model only
        return (f"Call overhead (the one-ReLU model): graph {result['call_ms']['cuda-graph']:.4f} ms, "
                f"events {result['call_ms']['cuda-events']:.4f} ms.")
    per = "; ".join(f"{n}: {v['cuda-graph'] * 1e3:.1f} / {v['cuda-events'] * 1e3:.1f}" for n, v in chain.items())
    return (f"Call overhead (intercept of 1-8 chained ReLUs): graph {result['call_ms']['cuda-graph']:.4f} ms, "
            f"events {result['call_ms']['cuda-events']:.4f} ms; chains, graph / events us: {per}.")


def render(result: dict) -> str:
    lines = [f"# torch-cuda: CUDA-graph replays vs eager events, {result['space']} at {result['resolution']} px",
             "", f"Device: {result['device']}; torch {result['torch']}; precision {result['precision']}; "
             f"{result['n_models']} models, {result['n_blocks']} distinct blocks; seed {result['seed']}; "
             f"{result['minutes']:.1f} min.", "",
             call_line(result), "",
             "What a table predicts: `cuda-graph` the plain sum (a replay's samples hold no call overhead), "
             "`cuda-events` call + Σ(block − call) with the one-ReLU model as the call.", "",
             "| timer | prediction | MAPE % | bias % | within ±5 % | within ±10 % | max % | τ | whole-model retest median / max % |",
             "|---|---|---|---|---|---|---|---|---|"]
    for t in TIMERS:
        acc = result["accuracy"].get(t)
        if not acc:
            continue
        for what in ("sum", "predicted"):
            a = acc[what]
            lines.append(f"| {t} | {'plain sum' if what == 'sum' else 'call + Σ(block − call)'} | {a['mape_pct']:.2f} | "
                         f"{a['mean_signed_pct']:+.2f} | {a['within_5_pct']:.0f} % | {a['within_10_pct']:.0f} % | "
                         f"{a['max_ape_pct']:.1f} | {a['kendall_tau']:.3f} | "
                         f"{acc['retest_median_pct']:.2f} / {acc['retest_max_pct']:.2f} |")
    lines += ["", "| arch | whole graph ms (1st, 2nd) | sum graph | pred graph | whole events ms (1st, 2nd) | sum events | pred events |",
              "|---|---|---|---|---|---|---|"]
    for m in result["models"]:
        g, e = m["whole_ms"]["cuda-graph"], m["whole_ms"]["cuda-events"]
        lines.append(f"| `{m['arch'][:40]}…` | {g[0]:.3f}, {g[1]:.3f} | {m['sum_ms']['cuda-graph']:.3f} | "
                     f"{m['predicted_ms']['cuda-graph']:.3f} | {e[0]:.3f}, {e[1]:.3f} | "
                     f"{m['sum_ms']['cuda-events']:.3f} | {m['predicted_ms']['cuda-events']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--space", default="inas-sod")
    ap.add_argument("--resolution", type=int, default=320)
    ap.add_argument("--archs", type=int, default=14, help="at most this many architectures (smallest, largest, then sampled)")
    ap.add_argument("--minutes", type=float, default=5.0, help="stop taking new architectures after this many minutes")
    ap.add_argument("--runs", type=int, default=30)
    ap.add_argument("--precision", default="fp32", choices=("fp32", "fp16"))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dry-run", action="store_true", help="torch-cpu for both timers, tiny space (checks the script)")
    ap.add_argument("--out", default=None)
    ap.add_argument("--report", default=None, help="re-render the markdown of this result JSON and exit")
    args = ap.parse_args(argv)
    if args.report:
        import json

        md = render(json.loads(Path(args.report).read_text()))
        Path(args.report).with_suffix(".md").write_text(md)
        print(md)
        return 0

    import torch

    from hwnas.cli.lut import _whole_model  # the deploy-form model `hwnas lut validate` measures
    from hwnas.space import create
    from lut.reference import call_model

    if args.dry_run:
        args.space, args.resolution = "inas-smoke", min(create("inas-smoke").resolutions)
    space = create(args.space)
    out = Path(args.out or Path(__file__).parent / "results" / f"cuda_graphs_{args.space}_{args.resolution}_s{args.seed}.json")
    profs = make_profilers(args)
    device = "cpu (dry run)" if args.dry_run else torch.cuda.get_device_name(0)
    t0 = time.monotonic()

    rng = random.Random(args.seed)
    archs = [space.smallest(args.resolution), space.largest(args.resolution)]
    archs += [space.sample(rng, resolution=args.resolution) for _ in range(max(0, args.archs - 2))]
    relu, call_inputs = call_model()
    chain_ms = {n: time_both(profs, torch.nn.Sequential(*[relu] * n), call_inputs) for n in CALL_CHAIN}
    call_ms = {t: call_intercept_ms({n: chain_ms[n][t] for n in CALL_CHAIN}) for t in TIMERS}

    block_ms: dict[str, dict] = {}
    models: list[dict] = []

    def result() -> dict:
        done = [m for m in models if len(m["whole_ms"]["cuda-graph"]) == 2]
        return {"space": args.space, "resolution": args.resolution, "precision": args.precision, "seed": args.seed,
                "device": device, "torch": torch.__version__, "runs": args.runs,
                "minutes": (time.monotonic() - t0) / 60, "call_ms": call_ms, "call_chain_ms": {str(n): v for n, v in chain_ms.items()},
                "n_models": len(done), "n_blocks": len(block_ms), "block_ms": block_ms,
                "accuracy": {t: accuracy_rows(done, t) for t in TIMERS} if len(done) >= 2 else {},
                "models": done, "pending_retest": len(models) - len(done)}

    for i, arch in enumerate(archs):
        if time.monotonic() - t0 > 60 * args.minutes:
            print(f"block phase: {args.minutes} min spent after {i} architectures", file=sys.stderr, flush=True)
            break
        blocks = space.blocks(arch)
        for b in blocks:
            if b.key not in block_ms:
                block_ms[b.key] = time_both(profs, b.build().eval(), b.example_inputs())
        whole = time_both(profs, *_whole_model(space, arch))
        m = {"arch": arch.to_string(), "n_blocks": len(blocks), "whole_ms": {t: [whole[t]] for t in TIMERS},
             "sum_ms": {t: sum(block_ms[b.key][t] for b in blocks) for t in TIMERS}}
        m["predicted_ms"] = {t: call_ms[t] + sum(block_ms[b.key][t] - call_ms[t] for b in blocks) for t in TIMERS}
        models.append(m)
        print(f"[{(time.monotonic() - t0) / 60:4.1f} min] arch {i}: {len(blocks)} blocks ({len(block_ms)} distinct so far); "
              + "; ".join(f"{t}: whole {whole[t]:.3f} sum {m['sum_ms'][t]:.3f} pred {m['predicted_ms'][t]:.3f} ms"
                          for t in TIMERS), file=sys.stderr, flush=True)
        write_result(out, dict(result(), partial=True, models_first_pass=models))

    # the retest: every whole model again, at the end, in another order
    for m in random.Random(args.seed + 1).sample(models, len(models)):
        arch = next(a for a in archs if a.to_string() == m["arch"])
        again = time_both(profs, *_whole_model(space, arch))
        for t in TIMERS:
            m["whole_ms"][t].append(again[t])
    res = result()
    write_result(out, res)
    md = render(res)
    out.with_suffix(".md").write_text(md)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
