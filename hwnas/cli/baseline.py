"""hwnas baseline ft"""

from __future__ import annotations

from hwnas.cli.argtypes import positive_int


def register(sub) -> None:
    p = sub.add_parser("baseline", help="classical, training-free saliency baselines",
                       description="Example: hwnas baseline ft --data data/synth")
    s = p.add_subparsers(dest="baseline_command", metavar="METHOD", required=True)
    q = s.add_parser("ft", help="frequency-tuned saliency (Achanta et al., CVPR 2009)",
                     description="Scores the FT baseline on a dataset (its val/ split when there is one).")
    q.add_argument("--data", help="dataset folder")
    q.add_argument("--images", help="image folder (with --masks, instead of layout detection)")
    q.add_argument("--masks", help="mask folder")
    q.add_argument("--split", default="val", help="use DATA/SPLIT when it exists (default val)")
    q.add_argument("--size", type=positive_int, default=None,
                   help="resize images and masks to SIZE x SIZE (default: each file's own size, one at a time)")
    q.add_argument("--json", action="store_true", help="print the metrics as JSON")
    q.set_defaults(func=_ft)


def _ft(args) -> int:
    import json

    import numpy as np

    from hwnas.baseline import evaluate_ft, ft_saliency
    from hwnas.data.folder import SODFolder, find_pairs, load_mask, load_rgb, resolve_split
    from hwnas.errors import DataError
    from hwnas.metrics import SODMetrics, format_table

    if args.data is None and args.images is None:
        raise DataError("give --data or --images and --masks")
    root = resolve_split(args.data, args.split) if args.data else None
    if args.size:
        results = evaluate_ft(SODFolder(root, args.size, images=args.images, masks=args.masks), progress=True)
    else:  # native resolution, as the paper and the benchmarks score it
        from tqdm import tqdm

        metrics = SODMetrics()
        for img_path, mask_path in tqdm(find_pairs(root, args.images, args.masks), desc="ft baseline", unit="img"):
            img, mask = load_rgb(img_path), load_mask(mask_path)
            if img.shape[:2] != mask.shape:
                raise DataError(f"{img_path.name}: image and mask sizes differ ({img.shape[:2]} vs {mask.shape})")
            metrics.update(ft_saliency(img), np.asarray(mask))
        results = metrics.results()
    print(json.dumps(results) if args.json else format_table({"frequency-tuned (Achanta 2009)": results}))
    return 0
