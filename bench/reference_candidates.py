"""Which drift reference follows sub-ms whole models over minutes: the tables' small conv, the large one, or a model of the space?

Issue 12: on an Intel Xeon host (300 MiB L3) a fresh inas-tiny table at 64 px (ONNX Runtime,
1 thread) predicted 30 fresh models 23 % low against the drift-compensated measurement, while the
plain sum matched the raw one within 1 %: the reference ran 1.40x slower during the validation
than during the build, and the whole models did not (``bench/results/lut_accuracy_tiny-ort1-s31.md``).
Compensation is only as good as the reference's tracking of the models.

This script times, in windows spread over ``--minutes``, ``--models`` fresh whole models (the ONNX
``hwnas export`` writes) interleaved with every candidate reference (``profilers``'
``measure_together``, the build's protocol): the tables' ``ref-conv16-32px`` and ``ref-conv16-256px``
(``lut.reference``) and one fixed whole model of the space (an arch drawn with ``--ref-seed``, not
one of the measured ones). For each candidate and model, the spread of the model's ratio to it
across the windows (max / min and p90 / p10; "none": the raw median); the best reference has the
smallest. Rule fixed before the first run: rank candidates by the median over models of max / min.

    python bench/reference_candidates.py --minutes 6 --models 4 --seed 50
    → bench/results/reference_candidates_<space>_<res>_s<seed>.json and .md
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
import zlib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import write_result  # noqa: E402  (bench/ is on the path of a script run from it)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="inas-tiny")
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--models", type=int, default=4)
    ap.add_argument("--minutes", type=float, default=6.0)
    ap.add_argument("--windows", type=int, default=24)
    ap.add_argument("--seed", type=int, default=50)
    ap.add_argument("--ref-seed", type=int, default=12345, help="draws the space's model used as a reference")
    args = ap.parse_args(argv)

    import numpy as np
    import torch
    from tqdm import tqdm

    import profilers
    from hwnas.cli.lut import BUILD_PROTOCOL, _whole_model
    from hwnas.space import create
    from lut.reference import LARGE_REFERENCE_NAME, REFERENCE_NAME, reference_model

    torch.set_num_threads(1)
    ident = {"name": "onnxruntime-cpu", "options": {}}
    protocol = profilers.Protocol(**BUILD_PROTOCOL)
    ref_prof = profilers.from_identity(ident, threads=1, precision="fp32", protocol=protocol, artifacts={"exporter": "torchscript"})
    prof = profilers.from_identity(ident, threads=1, precision="fp32", protocol=protocol, artifacts={"exporter": "dynamo"})
    space = create(args.space)
    res = args.resolution
    rng = random.Random(args.seed)
    archs = [space.sample(rng, resolution=res) for _ in range(args.models)]
    ref_arch = space.sample(random.Random(args.ref_seed), resolution=res)
    load_before = os.getloadavg()
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="hwnas-refcand-") as d:
        d = Path(d)

        def art(prof_, module, inputs, name):
            return prof_.export(module, inputs, d / f"{name}.onnx"), [tuple(t.shape) for t in inputs]

        refs = {"ref-conv16-32px": art(ref_prof, *reference_model(REFERENCE_NAME), "r32"),
                "ref-conv16-256px": art(ref_prof, *reference_model(LARGE_REFERENCE_NAME), "r256"),
                "ref-space-model": art(prof, *_whole_model(space, ref_arch), "rarch")}
        models = {f"m{i}": art(prof, *_whole_model(space, a), f"m{i}") for i, a in enumerate(archs)}
        gap_s = args.minutes * 60 / args.windows
        windows = []
        for w in tqdm(range(args.windows), desc="windows", unit="window"):
            start = time.monotonic()
            got = prof.measure_together({**models, **refs}, seed=zlib.crc32(f"{args.seed}|{w}".encode()))
            windows.append({"t_s": time.monotonic() - t0, **{n: m.median_ms for n, m in got.items()}})
            time.sleep(max(0.0, gap_s - (time.monotonic() - start)))
    spread = {}
    for r in ["none", *refs]:
        per_model = []
        for m in models:
            ratio = np.array([w[m] / (w[r] if r != "none" else 1.0) for w in windows])
            per_model.append({"max_over_min": float(ratio.max() / ratio.min()),
                              "p90_over_p10": float(np.percentile(ratio, 90) / np.percentile(ratio, 10))})
        spread[r] = {"max_over_min": statistics.median(p["max_over_min"] for p in per_model),
                     "p90_over_p10": statistics.median(p["p90_over_p10"] for p in per_model), "models": per_model}
    corr = {r: statistics.median(float(np.corrcoef(np.log([w[m] for w in windows]), np.log([w[r] for w in windows]))[0, 1])
                                 for m in models) for r in refs}
    ranked = sorted(refs, key=lambda r: spread[r]["max_over_min"])
    result = {"args": vars(args), "host": {"cpus": os.cpu_count(), "fingerprint": prof.device_info(), "load_before": load_before},
              "ref_arch": ref_arch.to_string(), "archs": [a.to_string() for a in archs], "windows": windows,
              "spread": spread, "log_correlation": corr, "ranked": ranked, "minutes": (time.monotonic() - t0) / 60}
    stem = Path(__file__).parent / "results" / f"reference_candidates_{args.space}_{res}_s{args.seed}"
    write_result(stem.with_suffix(".json"), result)
    med = {n: statistics.median(w[n] for w in windows) for n in [*models, *refs]}
    lines = [f"# Which reference follows {args.space} whole models at {res} px (ONNX Runtime 1 thread)?", "",
             f"`python bench/reference_candidates.py --minutes {args.minutes:g} --models {args.models} --seed {args.seed}`: "
             f"{args.windows} windows over {result['minutes']:.1f} min, every window all models and references interleaved "
             f"(the build's protocol); load {load_before[0]:.2f} before. Models' medians "
             + ", ".join(f"{med[m]:.3f}" for m in models) + " ms; references "
             + ", ".join(f"{r} {med[r]:.4f}" for r in refs) + " ms.", "",
             "| reference | model / reference across windows, max / min (median of models) | p90 / p10 | log-correlation with the models |",
             "|---|---|---|---|"]
    for r in ["none", *refs]:
        s = spread[r]
        lines.append(f"| {r if r != 'none' else 'none (raw ms)'} | {s['max_over_min']:.3f} | {s['p90_over_p10']:.3f} | "
                     f"{corr[r]:.2f} |" if r != "none" else
                     f"| none (raw ms) | {s['max_over_min']:.3f} | {s['p90_over_p10']:.3f} | |")
    lines += ["", f"Ranked by the rule fixed before the run (max / min): {', '.join(ranked)}."]
    stem.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
