"""hwnas data synth|check"""

from __future__ import annotations

from hwnas.cli.argtypes import fraction_below_one, non_negative_int, positive_int


def register(sub) -> None:
    p = sub.add_parser("data", help="make a synthetic SOD set, check a dataset folder",
                       description="Example: hwnas data synth --out data/synth --n 1000 --seed 0")
    s = p.add_subparsers(dest="data_command", metavar="ACTION", required=True)

    q = s.add_parser("synth", help="write a synthetic salient-object set (train/ and val/, each images/ + masks/)",
                     description="Objects textured with real photographs on cluttered backgrounds cut from other "
                     "photographs, with distractors. Example: hwnas data synth --out data/synth --n 1000")
    q.add_argument("--out", required=True, help="output folder (an interrupted run resumes)")
    q.add_argument("--n", type=positive_int, required=True, help="number of image/mask pairs in all")
    q.add_argument("--seed", type=non_negative_int, default=0)
    q.add_argument("--size", type=positive_int, default=128, help="side in pixels (default 128)")
    q.add_argument("--val-fraction", type=fraction_below_one, default=0.2,
                   help="share of --n written to val/ (held out); 0 writes one flat images/ + masks/ set")
    q.add_argument("--workers", type=positive_int, default=1, help="parallel processes (default 1)")
    q.set_defaults(func=_synth)

    q = s.add_parser("check", help="detect a dataset's layout, pair images with masks, read every file",
                     description="Example: hwnas data check DUTS-TR/")
    q.add_argument("data", nargs="?", help="dataset folder (layout detected)")
    q.add_argument("--images", help="image folder (with --masks, instead of layout detection)")
    q.add_argument("--masks", help="mask folder")
    q.add_argument("--split", default=None, help="use DATA/SPLIT when it exists (e.g. train, val)")
    q.set_defaults(func=_check)


def _synth(args) -> int:
    from hwnas.data.synth import write_synthetic

    counts = write_synthetic(args.out, args.n, seed=args.seed, size=args.size, val_fraction=args.val_fraction,
                             progress=True, workers=args.workers)
    print(f"wrote {', '.join(f'{k}: {v}' for k, v in counts.items())} pairs of {args.size}x{args.size} to {args.out}")
    return 0


def _check(args) -> int:
    from hwnas.data.folder import check_pair_sizes, find_pairs, load_mask, load_rgb, resolve_split
    from hwnas.errors import DataError

    if args.data is None and args.images is None:
        raise DataError("give a dataset folder or --images and --masks")
    root = resolve_split(args.data, args.split) if args.data else None
    pairs = find_pairs(root, images=args.images, masks=args.masks)
    check_pair_sizes(pairs)  # from the headers, before the slow full read below
    from tqdm import tqdm

    sizes = set()
    for img_path, mask_path in tqdm(pairs, desc="check", unit="img"):
        img, mask = load_rgb(img_path), load_mask(mask_path)
        if img.shape[:2] != mask.shape:
            raise DataError(f"{img_path.name}: image is {img.shape[1]}x{img.shape[0]} but its mask "
                            f"{mask_path.name} is {mask.shape[1]}x{mask.shape[0]}")
        sizes.add(img.shape[:2])
    print(f"ok: {len(pairs)} pairs, images in {pairs[0][0].parent}, masks in {pairs[0][1].parent}, "
          f"{len(sizes)} distinct size(s)")
    return 0
