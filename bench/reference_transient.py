"""How long does the drift reference run slow after one run of a whole model? Per-run times, no protocol.

The build's windows time the reference beside blocks, a validation's beside whole models; each
interleaved turn opens with untimed runs filling ``Protocol.settle_ms``. If the reference is still
slow when its recorded runs start, it reads slower beside whole models than beside blocks and every
drift-compensated figure shifts (``bench/reference_windows.py`` measures that ratio). This script
gives the settle time to choose: ``--models`` sampled archs at ``--resolution``, exported as ``hwnas
export`` does; ``--repeats`` times in a random order, each model runs once, then the reference
``--runs`` times back to back, every run timed alone (``time.perf_counter``). Reported: the median
per position band over models and repeats.

    python bench/reference_transient.py --space inas-sod --resolution 320 --seed 7
    → bench/results/reference_transient_<backend><threads>_<space>_<res>[_<tag>].{json,md}
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import build_and_model_profilers, write_result  # noqa: E402

BANDS = [(0, 1), (1, 2), (2, 5), (5, 20), (20, 50), (50, 100), (100, 200), (200, 400)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="onnxruntime-cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--space", default="inas-sod")
    ap.add_argument("--resolution", type=int, default=320)
    ap.add_argument("--models", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=12)
    ap.add_argument("--runs", type=int, default=400, help="reference runs after each model run")
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--after", choices=["model", "flush"], default="model",
                    help="what runs before the reference's runs: a whole model, or the build's cache flush alone "
                         "(profilers.cache.CacheFlush of --flush-mb, as before every context run of a build)")
    ap.add_argument("--flush-mb", type=float, default=85.0, help="flush size with --after flush")
    ap.add_argument("--tag", default="", help="suffix of the result files (e.g. the reference and host)")
    args = ap.parse_args(argv)

    import numpy as np
    import torch

    from hwnas.cli.lut import _reference_for
    from hwnas.model import SODNet, for_export
    from hwnas.space import create
    from lut.reference import reference_model
    from profilers.cache import CacheFlush

    torch.set_num_threads(args.threads)
    _, prof = build_and_model_profilers(args.backend, args.threads)
    space = create(args.space)
    rng = random.Random(args.seed)
    reference = _reference_for(space, [args.resolution])
    t0 = time.time()
    with tempfile.TemporaryDirectory(prefix="hwnas-reftransient-") as d:
        d = Path(d)
        ref_module, ref_inputs = reference_model(reference)
        ref = prof.prepare(prof.export(ref_module, ref_inputs, d / f"ref{prof.artifact_suffix}"),
                           [tuple(t.shape) for t in ref_inputs])
        x = torch.randn(1, 3, args.resolution, args.resolution, generator=torch.Generator().manual_seed(0))
        models = []
        for i in range(args.models):
            if args.after == "flush":  # --models slots of the same flush: the same repeats and bands
                models.append(CacheFlush(int(args.flush_mb * 2**20)))
                continue
            arch = space.sample(rng, resolution=args.resolution)
            path = prof.export(for_export(SODNet(space, arch)).eval(), (x,), d / f"model{i}{prof.artifact_suffix}")
            models.append(prof.prepare(path, [tuple(x.shape)]))
        curves: list[list[np.ndarray]] = [[] for _ in models]
        for _ in range(args.repeats):
            order = list(range(len(models)))
            rng.shuffle(order)
            for i in order:
                models[i]()
                us = np.empty(args.runs)
                for k in range(args.runs):
                    a = time.perf_counter()
                    ref()
                    us[k] = (time.perf_counter() - a) * 1e6
                curves[i].append(us)
    per_model = [np.median(np.array(c), axis=0) for c in curves]
    pooled = np.median(np.array([u for c in curves for u in c]), axis=0)
    bands = [(a, b) for a, b in BANDS if b <= args.runs]
    steady = float(np.median(pooled[bands[-1][0]:bands[-1][1]]))
    out = {"argv": sys.argv[1:], "device": prof.device_info().get("cpu_model"), "reference": reference,
           "minutes": (time.time() - t0) / 60, "bands": bands, "steady_us": steady,
           "pooled_us": [float(np.median(pooled[a:b])) for a, b in bands],
           "per_model_us": [[float(np.median(c[a:b])) for a, b in bands] for c in per_model]}
    name = f"reference_transient_{args.backend}{args.threads}_{args.space}_{args.resolution}"
    if args.after == "flush":
        name += f"_after-flush{args.flush_mb:g}mb"
    if args.tag:
        name += f"_{args.tag}"
    path = Path(__file__).resolve().parent / "results" / f"{name}.json"
    write_result(path, out)
    head = " | ".join(f"runs {a + 1}–{b}" if b - a > 1 else f"run {a + 1}" for a, b in bands)
    after = "a whole model" if args.after == "model" else f"a {args.flush_mb:g} MB cache flush"
    lines = [f"# The drift reference's runs after {after}: {args.space} at {args.resolution} px, "
             f"{args.backend} {args.threads} thread(s)", "",
             f"`python bench/reference_transient.py {' '.join(sys.argv[1:])}`; {out['minutes']:.1f} min; {out['device']}; "
             f"reference `{reference}`. Median us per band of positions after the {args.after} run "
             f"({args.models} models x {args.repeats} repeats); steady (last band) {steady:.1f} us.", "",
             f"| model | {head} |", "|---" * (len(bands) + 1) + "|"]
    for i, row in enumerate(out["per_model_us"]):
        lines.append(f"| {i} | " + " | ".join(f"{v:.1f}" for v in row) + " |")
    lines.append("| **all** | " + " | ".join(f"**{v:.1f}** ({v / steady:.3f}x)" for v in out["pooled_us"]) + " |")
    path.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
