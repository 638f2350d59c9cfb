"""hwnas export: re-parameterized deployable artifacts of one architecture, each proven in its runtime."""

from __future__ import annotations

import sys
from hwnas.cli.argtypes import non_negative_int, positive_int


def register(sub) -> None:
    p = sub.add_parser(
        "export", help="export an architecture (deploy form) to ONNX / ExecuTorch / Core ML / TensorRT / OpenVINO / "
                       "LiteRT with parity checks",
        description="Example: hwnas export --space inas-tiny --arch smallest --formats onnx,executorch "
        "--out runs/export/tiny (no --supernet: random weights). One row per format: passed / exported "
        "but parity failed / not verifiable here / export failed; one failure never stops the other formats. "
        "Writes OUT/manifest.json.",
    )
    p.add_argument("--space", required=True, help="space name or YAML file")
    p.add_argument("--arch", required=True, help="ARCH.json, a compact arch string, 'largest' or 'smallest'")
    p.add_argument("--supernet", default=None, help="supernet checkpoint to take weights from (default: random weights)")
    p.add_argument("--calib", default=None,
                   help="image folder to recalibrate the subnet's BN statistics on before export (with --supernet)")
    p.add_argument("--calib-batches", type=positive_int, default=20, help="batches for BN recalibration (default 20)")
    p.add_argument("--formats", default=None,
                   help="comma-separated format names or aliases (default: every registered format, see "
                        "deploy/formats.py: onnx, executorch, coreml, tensorrt, openvino, tflite, …)")
    p.add_argument("--out", required=True, help="output directory (artifacts + manifest.json)")
    p.add_argument("--precision", default=None, metavar="FORMAT=PREC[,...]",
                   help="per-format precision, e.g. tensorrt=fp16,coreml=fp16 (default fp32 everywhere; "
                        "fp16 exists for coreml, tensorrt, openvino)")
    p.add_argument("--seed", type=non_negative_int, default=0, help="seed of the random weights when no --supernet (default 0)")
    p.set_defaults(func=_export)


def _export(args) -> int:
    import time

    import torch

    from deploy import parse_formats, parse_precisions
    from deploy.formats import names as format_names
    from hwnas.errors import HwnasError
    from hwnas.space import create

    formats = parse_formats(args.formats or format_names())  # fail on a typo before any slow work
    precision = parse_precisions(args.precision, formats)
    if args.calib and not args.supernet:
        raise HwnasError("--calib recalibrates a trained subnet's BN; it needs --supernet")
    if args.calib_batches < 1:
        raise HwnasError(f"--calib-batches must be >= 1, got {args.calib_batches}")

    from hwnas.cli.eval import resolve_arch

    if args.supernet:
        from hwnas.checkpoint import load_supernet

        supernet = load_supernet(args.supernet, space=args.space)
        space = supernet.space
        arch = resolve_arch(space, args.arch)
        net = supernet.subnet(arch)
        weights = {"source": "supernet", "checkpoint": str(args.supernet)}
        if args.calib:
            _recalibrate(net, args.calib, arch.resolution, args.calib_batches)
            weights["bn_recalibrated_on"] = str(args.calib)
    else:
        from hwnas.model import SODNet

        space = create(args.space)
        arch = resolve_arch(space, args.arch)
        torch.manual_seed(args.seed)
        net = SODNet(space, arch)
        weights = {"source": "random", "seed": args.seed}
        print("note: no --supernet: exporting random weights (structure and runtimes are still verified)", flush=True)

    from hwnas.data import IMAGENET_MEAN, IMAGENET_STD
    from hwnas.model import for_export

    deployed = for_export(net.eval())
    example = (torch.randn(1, 3, arch.resolution, arch.resolution, generator=torch.Generator().manual_seed(0)),)
    meta = {
        "arch": arch.to_dict(),
        "arch_string": arch.to_string(),
        "space": space.name,
        "space_hash": space.hash,
        "weights": weights,
        "normalisation": {"mean": list(map(float, IMAGENET_MEAN)), "std": list(map(float, IMAGENET_STD)),
                          "how": "RGB scaled to [0, 1], then (x - mean) / std per channel"},
        "output": {"name": "output", "shape": [1, 1, arch.resolution, arch.resolution],
                   "meaning": "saliency probability in [0, 1] (sigmoid of the finest decoder level's logits), "
                              "same size as the input"},
    }
    return run_export(deployed, example, formats, args.out, meta,
                      precision=precision,
                      title=f"{space.name} {arch.to_string()} @ {arch.resolution}px", clock=time.perf_counter)


def run_export(model, example, formats, out, meta, *, title: str, clock, **options) -> int:
    """Export and print one row per format; exit code 1 when any format failed or disagreed."""
    from pathlib import Path

    from deploy import export
    from deploy.api import FAILED, PARITY_FAILED, PASSED

    print(f"exporting {title} → {out}", flush=True)
    start = clock()
    results = export(model, example, formats, out, meta,
                     progress=lambda name: print(f"  {name} ...", flush=True), **options)
    marks = {PASSED: "✅", PARITY_FAILED: "❎", FAILED: "❌"}
    print(f"\n{'format':11s} {'result':30s} {'size_MB':>8s} {'time_s':>7s} {'max_abs_diff':>12s}  file / reason")
    for r in results:
        size = f"{r.size_bytes / 1e6:8.2f}" if r.size_bytes is not None else f"{'-':>8s}"
        secs = f"{r.export_s:7.1f}" if r.export_s is not None else f"{'-':>7s}"
        diff = r.parity.get("max_abs_diff") if r.parity else None
        diff_s = f"{diff:12.2e}" if diff is not None else f"{'-':>12s}"
        where = str(r.path) if r.path and r.status == PASSED else r.message
        extra = r.details.get("warning")
        label = f"{marks.get(r.status, '⚠️')} {r.label}"
        print(f"{r.format:11s} {label:30s} {size} {secs} {diff_s}  {where}" + (f" [{extra}]" if extra else ""))
    print(f"\nmanifest: {Path(out) / 'manifest.json'}  ({clock() - start:.1f} s)")
    bad = [r.format for r in results if r.status in (FAILED, PARITY_FAILED)]
    if bad:
        print(f"not deployable from here: {', '.join(bad)}", file=sys.stderr)
        return 1
    return 0


def _recalibrate(net, folder, resolution: int, batches: int) -> None:
    import torch

    from hwnas.bn import recalibrate_bn
    from hwnas.data import SODFolder, resolve_split
    from hwnas.errors import DataError

    data = SODFolder(resolve_split(folder, "train"), resolution)
    if len(data) == 0:
        raise DataError(f"--calib {folder}: no image/mask pairs found")
    g = torch.Generator().manual_seed(0)
    loader = torch.utils.data.DataLoader(data, batch_size=16, shuffle=True, generator=g)
    recalibrate_bn(net, loader, batches)
    net.eval()
