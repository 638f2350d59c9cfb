"""Does the drift reference run at the same speed whichever ONNX exporter made it? Both timed interleaved.

A table build exports its reference with the blocks' exporter (TorchScript, the build's default on
ONNX Runtime); ``lut validate`` exports whole models with dynamo (what ``hwnas export`` writes) and,
before the thirty-third session, its reference that way too. Both references are one network, so
any ratio between them moves every drift-compensated whole model by that factor.

The table's reference for ``--space`` at ``--resolution`` (``hwnas.cli.lut._reference_for``) is
exported both ways and timed in ``--windows`` windows of the build protocol (``measure_together``,
randomised interleaving, ONNX Runtime ``--threads``); per window the dynamo median over the
TorchScript one. The optimized graphs' node counts come with it.

    .venv/bin/python bench/reference_exporter.py --windows 20
    → bench/results/reference_exporter_<space>_<res>.{json,md}
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _common import build_and_model_profilers, write_result  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--space", default="inas-tiny")
    ap.add_argument("--resolution", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--windows", type=int, default=20)
    args = ap.parse_args(argv)

    import numpy as np
    import onnx
    import torch

    import hwnas.reference  # noqa: F401  (registers the space-model references)
    from hwnas.cli.lut import _reference_for
    from hwnas.space import create
    from lut.reference import reference_model

    torch.set_num_threads(1)
    prof = dict(zip(("torchscript", "dynamo"), build_and_model_profilers(threads=args.threads)))
    name = _reference_for(create(args.space), [args.resolution])
    load_before = os.getloadavg()
    windows = []
    with tempfile.TemporaryDirectory() as d:
        module, inputs = reference_model(name)
        shapes = [tuple(t.shape) for t in inputs]
        arts = {e: (p.export(module, inputs, Path(d) / f"reference_{e}.onnx"), shapes) for e, p in prof.items()}
        nodes = {e: len(onnx.load(str(a)).graph.node) for e, (a, _) in arts.items()}
        for w in range(args.windows):
            got = prof["torchscript"].measure_together(arts, seed=w)
            windows.append({e: got[e].median_ms for e in arts})
    ratio = np.array([w["dynamo"] / w["torchscript"] for w in windows])
    result = {"args": vars(args), "reference": name, "onnx_nodes": nodes, "windows": windows,
              "dynamo_over_torchscript": {"median": float(np.median(ratio)), "min": float(ratio.min()), "max": float(ratio.max())},
              "host": {"device": prof["torchscript"].device_info().get("cpu_model"), "cpus": os.cpu_count(),
                       "load_before": load_before, "load_after": os.getloadavg()}}
    stem = Path(__file__).resolve().parent / "results" / f"reference_exporter_{args.space}_{args.resolution}"
    write_result(f"{stem}.json", result)
    ts = np.median([w["torchscript"] for w in windows])
    dy = np.median([w["dynamo"] for w in windows])
    lines = [f"# The drift reference by exporter: {args.space} at {args.resolution} px, ONNX Runtime {args.threads} thread(s)", "",
             f"`python bench/reference_exporter.py --space {args.space} --resolution {args.resolution} --threads {args.threads} "
             f"--windows {args.windows}`; {result['host']['device']}, {os.cpu_count()} CPUs, load {load_before[0]:.2f} before.", "",
             f"Reference `{name[:60]}…`: ONNX nodes as exported, TorchScript {nodes['torchscript']}, dynamo {nodes['dynamo']}.", "",
             f"Medians over {args.windows} windows: TorchScript {ts:.4f} ms, dynamo {dy:.4f} ms; per window dynamo / TorchScript "
             f"median **{np.median(ratio):.4f}** (min {ratio.min():.4f}, max {ratio.max():.4f})."]
    Path(f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
