"""Which drift reference follows a 320 px model's speed? Cache-resident vs memory-streaming, A/B.

The tables' reference (``lut.reference``, 16 channels at 32x32: ~50 KB, in L2) cancels the
machine's drift for sub-ms models, but at 320 px on the eleventh and twelfth sessions' host
whole models moved ±15 % over tens of seconds and their ratio to it still moved 7-12 % between
two windows (OpenVINO, LiteRT): a 30-80 ms model streams tens of MB through the shared L3 and
memory, which the reference never touches. This puts the same convolutions at larger sides
beside it (``--sides``, e.g. 256: 4 MB per tensor, L3-resident; 512: 16 MB per tensor, beyond a
32 MB L3) and times every one of them interleaved with each whole model, run for run
(``measure_together``, the build's protocol), in ``--rounds`` round-robin rounds over the models:

- **retest** per normaliser (raw ms, or the ratio to each reference): per model, the median
  |a/b - 1| over pairs of rounds half the run apart, then the median over models (the floor
  ``lut validate`` reports, for each candidate reference);
- **tracking**: per model, how the log of its window medians moves against each reference's in the
  same windows (pooled correlation and slope; slope 1: the reference slows exactly as the model).

The decision rule is fixed before the data: a reference replaces the present one only if its
retest is lower on two runs with different models (``--seed``).

    python bench/reference_ab.py --backend openvino-cpu --models 8 --rounds 6 --seed 11
    → bench/results/reference_ab_<backend><threads>_s<seed>.json and .md
"""

from __future__ import annotations

import argparse
import math
import os
import random
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import write_result  # noqa: E402  (bench/ is on the path of a script run from it)


def retest(values_by_round: list[float]) -> float:
    """Median |a/b - 1| over pairs of rounds half the run apart (round i with i + R//2)."""
    import numpy as np

    half = len(values_by_round) // 2
    return float(np.median([abs(values_by_round[i] / values_by_round[i + half] - 1.0) for i in range(half)]))


def tracking(model_ms: list[list[float]], ref_ms: list[list[float]]) -> dict:
    """Pooled correlation and slope of per-model-centred log window medians (model on reference)."""
    import numpy as np

    xs, ys = [], []
    for m, r in zip(model_ms, ref_ms):
        lm, lr = np.log(m), np.log(r)
        ys += list(lm - lm.mean())
        xs += list(lr - lr.mean())
    x, y = np.asarray(xs), np.asarray(ys)
    if x.std() == 0 or y.std() == 0:
        return {"corr": math.nan, "slope": math.nan}
    return {"corr": float(np.corrcoef(x, y)[0, 1]), "slope": float((x * y).sum() / (x * x).sum()),
            "model_log_sd": float(y.std()), "ref_log_sd": float(x.std())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="onnxruntime-cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--space", default="inas-sod")
    ap.add_argument("--resolution", type=int, default=320)
    ap.add_argument("--models", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=6, help="round-robin rounds (even: retest pairs half the run apart)")
    ap.add_argument("--runs", type=int, default=30, help="timed runs of each member per window")
    ap.add_argument("--sides", default="32,256,512", help="reference input sides (32 = the tables' reference)")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args(argv)
    if args.rounds < 2 or args.rounds % 2:
        ap.error("--rounds must be even and >= 2")

    import numpy as np
    from tqdm import tqdm

    import profilers
    from hwnas.cli.lut import BUILD_PROTOCOL, _whole_model
    from hwnas.space import create
    from lut.reference import sized_reference

    sides = [int(s) for s in args.sides.split(",")]
    space = create(args.space)
    prof = profilers.get(args.backend, threads=args.threads, protocol=profilers.Protocol(**dict(BUILD_PROTOCOL, runs=args.runs)))
    rng = random.Random(args.seed)
    archs = [space.sample(rng, resolution=args.resolution) for _ in range(args.models)]
    load_before = os.getloadavg()
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        sfx = prof.artifact_suffix
        refs = {}
        for s in sides:
            m, x = sized_reference(s)
            refs[f"ref{s}"] = (prof.export(m, x, d / f"ref{s}{sfx}"), [tuple(t.shape) for t in x])
        models = []
        for i, a in enumerate(tqdm(archs, desc="exporting models", unit="model")):
            m, x = _whole_model(space, a)
            models.append((prof.export(m, x, d / f"model{i}{sfx}"), [tuple(t.shape) for t in x]))
        windows = [[None] * args.rounds for _ in archs]  # [model][round] -> {member: median_ms}
        for r in tqdm(range(args.rounds), desc="rounds", unit="round"):
            order = list(range(len(archs)))
            random.Random(f"{args.seed}|{r}").shuffle(order)
            for i in order:
                got = prof.measure_together(dict(refs, model=models[i]), seed=zlib.crc32(f"{args.seed}|{i}|{r}".encode()))
                windows[i][r] = {k: v.median_ms for k, v in got.items()}
    wall_s = time.perf_counter() - t0

    names = ["raw"] + list(refs)
    def series(i: int, n: str) -> list[float]:
        return [w["model"] if n == "raw" else w["model"] / w[n] for w in windows[i]]

    summary = {}
    for n in names:
        per_model = [retest(series(i, n)) for i in range(len(archs))]
        summary[n] = {"retest_median_pct": 100 * float(np.median(per_model)),
                      "retest_p90_pct": 100 * float(np.percentile(per_model, 90)),
                      "retest_by_model_pct": [100 * v for v in per_model]}
        if n != "raw":
            summary[n]["tracking"] = tracking([[w["model"] for w in windows[i]] for i in range(len(archs))],
                                              [[w[n] for w in windows[i]] for i in range(len(archs))])
            summary[n]["median_ms"] = float(np.median([w[n] for ws in windows for w in ws]))
    result = {"backend": args.backend, "space": space.name, "resolution": args.resolution, "seed": args.seed,
              "threads": args.threads, "rounds": args.rounds, "runs": args.runs, "archs": [a.to_string() for a in archs],
              "model_median_ms": [float(np.median([w["model"] for w in ws])) for ws in windows],
              "windows": windows, "summary": summary, "wall_s": wall_s, "device": prof.device_info(),
              "host": {"cpus": os.cpu_count(), "load_before": load_before, "load_after": os.getloadavg()}}
    out = Path(__file__).resolve().parent / "results" / f"reference_ab_{args.backend}{args.threads}_s{args.seed}.json"
    write_result(out, result)
    cmd = " ".join(["python", "bench/reference_ab.py", *(argv if argv is not None else sys.argv[1:])])
    mm = result["model_median_ms"]
    lines = [f"# Drift references A/B: {args.backend}, {args.threads} thread(s), {space.name} at {args.resolution} px", "",
             f"`{cmd}`; {len(archs)} models ({min(mm):.1f}-{max(mm):.1f} ms), {args.rounds} rounds of "
             f"{args.runs} runs, {wall_s / 60:.1f} min; {prof.device_info().get('cpu_model')}, {os.cpu_count()} CPUs, "
             f"load {load_before[0]:.2f} before.", "",
             "| normaliser | reference median | retest median | retest p90 | corr with model | slope |",
             "|---|---|---|---|---|---|"]
    for n in names:
        s = summary[n]
        tr = s.get("tracking", {})
        lines.append(f"| {n} | {s.get('median_ms', float('nan')):.3f} ms | {s['retest_median_pct']:.2f} % | "
                     f"{s['retest_p90_pct']:.2f} % | {tr.get('corr', float('nan')):.2f} | {tr.get('slope', float('nan')):.2f} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
