"""How the parts of the latency model move a whole model's prediction: cache flush x share method.

For sampled architectures, one process: the whole model is timed against the reference, then
every block in context (``lut.context``) twice — warm, and after the cache flush a table build
would use (``SearchSpace.model_bytes``, ``profilers.cache``; pass ``--flush-bytes`` to force a
size) — each with the runtime's node profile. Predictions (call overhead + context costs, in units
of the reference) with the block's share taken by kernel time (``Attribution.share``) and with the
time outside the kernels spread over the nodes (``Attribution.share_with_dispatch``), as errors
against the whole model. A diagnostic for choosing the method: score the chosen method on fresh
models with ``bench/lut_accuracy.py``, not here.

    python bench/context_split.py --backend executorch-xnnpack --space inas-tiny --resolution 64 --archs 3 --seed 5
    → bench/results/context_split_<space>_<backend>_s<seed>.json
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import write_result  # noqa: E402  (bench/ is on the path of a script run from it)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", default="onnxruntime-cpu", help="a backend with a per-node profiler")
    ap.add_argument("--space", default="inas-tiny")
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--archs", type=int, default=3)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--flush-bytes", type=int, default=None, help="default: the space's model bytes (flushed only "
                                                                      "where they do not stay cached)")
    args = ap.parse_args(argv)

    import torch

    import profilers
    from hwnas.model import SODNet, for_export
    from hwnas.space import create
    from lut.context import attribute, in_context
    from lut.reference import call_model, reference_model
    from profilers.cache import flush_bytes

    protocol = profilers.Protocol(runs=100, min_time_s=0.2, max_attempts=2)  # hwnas lut build's
    artifacts = {"exporter": "torchscript"} if args.backend == "onnxruntime-cpu" else {}
    prof = profilers.from_identity({"name": args.backend, "options": {}}, threads=1, precision="fp32",
                                   protocol=protocol, artifacts=artifacts)
    space = create(args.space)
    res = args.resolution
    model_bytes = args.flush_bytes if args.flush_bytes is not None else space.model_bytes(res)
    flush = model_bytes if args.flush_bytes is not None else flush_bytes(model_bytes)
    rng = random.Random(args.seed)
    sfx = prof.artifact_suffix
    rows = []
    with tempfile.TemporaryDirectory() as d:
        d = Path(d)
        ref = (prof.export(*reference_model(), d / f"ref{sfx}"), [tuple(t.shape) for t in reference_model()[1]])
        call = (prof.export(*call_model(), d / f"call{sfx}"), [tuple(t.shape) for t in call_model()[1]])
        got = prof.measure_together({"call": call, "ref": ref})
        call_rel = got["call"].median_ms / got["ref"].median_ms
        for i in range(args.archs):
            arch = space.sample(rng, resolution=res)
            whole = prof.export(for_export(SODNet(space, arch)), (torch.randn(1, 3, res, res),), d / f"w{i}{sfx}")
            got = prof.measure_together({"whole": (whole, [(1, 3, res, res)]), "ref": ref})
            whole_rel = got["whole"].median_ms / got["ref"].median_ms
            pred = {f"{c}_{s}": call_rel for c in ("warm", "flushed") for s in ("kernel_share", "dispatch_share")}
            for j, b in enumerate(space.blocks(arch)):
                module, inputs = in_context(b)
                path, shapes = prof.export(module, inputs, d / f"c{i}_{j}{sfx}"), list(b.input_shapes)
                for cache, nbytes in (("warm", 0), ("flushed", flush)):
                    got = prof.measure_together({"ctx": (path, shapes), "ref": ref},
                                                flush_bytes={"ctx": nbytes} if nbytes else None)
                    ref_ms = got["ref"].median_ms
                    a = attribute(prof.node_profile(path, shapes, runs=100, flush_bytes=nbytes), not b.model_input,
                                  not b.model_output, len(shapes), module.n_outputs)
                    base = max(got["ctx"].median_ms / ref_ms - call_rel, 0.0)
                    pred[f"{cache}_kernel_share"] += base * a.share
                    pred[f"{cache}_dispatch_share"] += base * a.share_with_dispatch(got["ctx"].median_ms * 1e3,
                                                                                     call_rel * ref_ms * 1e3)
            err = {k: v / whole_rel - 1 for k, v in pred.items()}
            rows.append({"arch": arch.to_string(), "whole_over_ref": whole_rel, "error": err})
            print(f"arch {i}: " + "  ".join(f"{k} {v:+.1%}" for k, v in err.items()), flush=True)
    result = {"backend": args.backend, "space": args.space, "resolution": res, "seed": args.seed,
              "model_bytes": model_bytes, "flush_bytes": flush, "host": {"cpus": os.cpu_count(),
                                                                          "load_average": os.getloadavg()},
              "archs": rows}
    write_result(Path(__file__).resolve().parent / "results" / f"context_split_{args.space}_{args.backend}_s{args.seed}.json", result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
