"""hwnas eval"""

from __future__ import annotations

from hwnas.cli.argtypes import device, non_negative_int, positive_int


def register(sub) -> None:
    p = sub.add_parser(
        "eval", help="score architectures of a trained supernet (BN recalibrated) on a dataset",
        description="Example: hwnas eval --space inas-tiny --supernet runs/tiny/supernet.pt --arch largest "
        "--arch smallest --data data/synth",
    )
    p.add_argument("--space", help="space name or YAML (checked against the checkpoint's; default: the checkpoint's)")
    p.add_argument("--supernet", required=True, help="checkpoint written by `hwnas supernet train`")
    p.add_argument("--arch", action="append", required=True,
                   help="ARCH.json, a compact arch string, 'largest' or 'smallest' (repeatable)")
    p.add_argument("--data", required=True, help="evaluation set (its val/ split when there is one)")
    p.add_argument("--split", default="val", help="use DATA/SPLIT when it exists (default val)")
    p.add_argument("--skip-images", type=non_negative_int, default=0,
                   help="leave out the first N evaluation images by file stem: the ones `hwnas search "
                   "--val-images N` scored candidates on, so the scores are held out from the search (default 0)")
    p.add_argument("--calib", default=None,
                   help="BN recalibration images (default: DATA's train/ split when there is one, else DATA)")
    p.add_argument("--calib-batches", type=positive_int, default=20, help="batches for BN recalibration (default 20)")
    p.add_argument("--batch-size", type=positive_int, default=16)
    p.add_argument("--device", type=device, default="cpu", help="cpu, cuda, cuda:N or auto")
    p.add_argument("--json", action="store_true", help="print the metrics as JSON lines")
    p.set_defaults(func=_eval)


def resolve_arch(space, text: str):
    """An architecture from 'largest', 'smallest', a JSON file or a compact string (validated)."""
    from hwnas.arch import load_arch

    if text == "largest":
        return space.largest()
    if text == "smallest":
        return space.smallest()
    arch = load_arch(text)
    space.validate(arch)
    return arch


def _eval(args) -> int:
    import json
    from pathlib import Path

    import torch

    from hwnas.checkpoint import load_supernet
    from hwnas.data import SODFolder, resolve_split
    from hwnas.errors import DataError, HwnasError
    from hwnas.evaluate import evaluate_arch
    from hwnas.metrics import format_table

    if args.calib_batches < 1:
        raise HwnasError(f"--calib-batches must be >= 1, got {args.calib_batches}")
    from hwnas.devices import resolve_device

    device = resolve_device(args.device)
    net = load_supernet(args.supernet, space=args.space).to(device)
    space = net.space
    archs = [(text, resolve_arch(space, text)) for text in args.arch]
    data_root = resolve_split(args.data, args.split)
    if args.calib:
        calib_root = resolve_split(args.calib, "train")
    else:
        calib_root = resolve_split(args.data, "train")
        if calib_root == Path(args.data) and data_root == Path(args.data):
            print("note: no --calib and no train/ split: recalibrating BN on the evaluation images", flush=True)
    mask_size = max(space.resolutions)  # every subnet scored against the same ground truth
    rows = {}
    for text, arch in archs:
        res = arch.resolution
        val = SODFolder(data_root, res, mask_size=mask_size)
        calib = SODFolder(calib_root, res)
        if len(calib) == 0 or len(val) == 0:
            raise DataError("empty evaluation or calibration set")
        if args.skip_images >= len(val):
            raise DataError(f"--skip-images {args.skip_images} leaves no image of the {len(val)} in {data_root}")
        if args.skip_images:
            val = torch.utils.data.Subset(val, range(args.skip_images, len(val)))
        g = torch.Generator().manual_seed(0)  # fixed calibration batches: scores are reproducible
        calib_loader = torch.utils.data.DataLoader(calib, batch_size=args.batch_size, shuffle=True, generator=g)
        val_loader = torch.utils.data.DataLoader(val, batch_size=args.batch_size)
        r = evaluate_arch(net, arch, val_loader, calib_loader, args.calib_batches, device=device, progress=True)
        name = text if len(text) <= 28 else arch.to_string()[:25] + "..."
        rows[name] = r
        if args.json:
            print(json.dumps({"arch": arch.to_string(), **r}))
    if not args.json:
        print(format_table(rows))
    return 0
