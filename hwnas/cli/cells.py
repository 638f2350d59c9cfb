"""hwnas cells search|train|random — differentiable cell search on small classification data."""

from __future__ import annotations

import json

from hwnas.cli.argtypes import device, non_negative_int, positive_float, positive_int


def _option(text: str):
    """``KEY=VALUE`` with VALUE parsed as JSON when it parses (numbers, true/false, null), else a string."""
    from hwnas.errors import HwnasError

    key, sep, value = text.partition("=")
    if not sep or not key:
        raise HwnasError(f"--option expects KEY=VALUE, got {text!r}")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def register(sub) -> None:
    p = sub.add_parser("cells", help="cell search: DARTS, DOTS, EoiNAS, MS-DARTS; train a genotype",
                       description="Example: hwnas cells search --method dots --data digits --epochs 6 --out runs/cells/dots")
    s = p.add_subparsers(dest="cells_command", metavar="ACTION", required=True)

    q = s.add_parser("search", help="search a normal + reduction cell; writes genotype.json and genotype.png",
                     description="Resumable: rerun the same command after an interruption. "
                                 "Example: hwnas cells search --method eoinas --data digits --epochs 8 --out runs/eoinas")
    q.add_argument("--method", required=True, help="darts | dots | eoinas | msdarts")
    q.add_argument("--data", default="digits", help="digits | cifar10:DIR | cifar100:DIR (python-pickle folder)")
    q.add_argument("--epochs", type=positive_int, default=10)
    q.add_argument("--out", required=True, help="run directory (checkpoint, history, genotype)")
    q.add_argument("--seed", type=non_negative_int, default=0)
    q.add_argument("--image-size", type=positive_int, default=None, help="pixels (default: digits 16, CIFAR 32)")
    q.add_argument("--batch-size", type=positive_int, default=64)
    q.add_argument("--channels", type=positive_int, default=8, help="initial cell channels")
    q.add_argument("--layers", type=positive_int, default=5, help="cells; reduction at 1/3 and 2/3 depth")
    q.add_argument("--lr", type=positive_float, default=0.025)
    q.add_argument("--arch-lr", type=positive_float, default=3e-4)
    q.add_argument("--max-samples", type=positive_int, default=None, help="cap each search half (quick runs; default: no cap)")
    q.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                   help="method option, e.g. dots: edges=any, op_epochs=3; eoinas: oii=false, markov=false; "
                        "msdarts: samples=3, iterations=2, bandwidth=0.1; darts/msdarts: arch_warmup_epochs=1")
    q.add_argument("--device", type=device, default="cpu", help="cpu | cuda | cuda:N")
    q.add_argument("--no-progress", action="store_true")
    q.set_defaults(func=_search)

    q = s.add_parser("train", help="train a genotype's network from scratch and report test accuracy",
                     description="Example: hwnas cells train --genotype runs/dots/genotype.json --data digits --epochs 10")
    q.add_argument("--genotype", required=True, help="genotype.json")
    q.add_argument("--data", default="digits")
    q.add_argument("--epochs", type=positive_int, default=10)
    q.add_argument("--seed", type=non_negative_int, default=0)
    q.add_argument("--image-size", type=positive_int, default=None)
    q.add_argument("--batch-size", type=positive_int, default=64)
    q.add_argument("--channels", type=positive_int, default=8)
    q.add_argument("--layers", type=positive_int, default=5)
    q.add_argument("--lr", type=positive_float, default=0.05)
    q.add_argument("--out", default=None, help="write the result as JSON here")
    q.add_argument("--device", type=device, default="cpu", help="cpu | cuda | cuda:N")
    q.add_argument("--no-progress", action="store_true")
    q.set_defaults(func=_train)

    q = s.add_parser("random", help="a uniformly random genotype (the baseline), as JSON")
    q.add_argument("--seed", type=non_negative_int, default=0)
    q.add_argument("--out", default=None, help="write genotype.json (+ .png) here instead of printing")
    q.set_defaults(func=_random)


def _search(args) -> int:
    from hwnas.cells.cell_search import CellSearchConfig, run_search

    cfg = CellSearchConfig(method=args.method, data=args.data, image_size=args.image_size, epochs=args.epochs,
                       batch_size=args.batch_size, channels=args.channels, layers=args.layers, seed=args.seed,
                       lr=args.lr, arch_lr=args.arch_lr, max_samples=args.max_samples,
                       options=dict(_option(o) for o in args.option), device=args.device)
    result = run_search(cfg, args.out, progress=not args.no_progress)
    print(f"genotype: {result.genotype}")
    print(f"wrote {result.out_dir / 'genotype.json'} and genotype.png ({result.seconds:.1f} s of search)")
    return 0


def _train(args) -> int:
    from hwnas.cells.classification_data import load_data
    from hwnas.cells.genotype import load_genotype
    from hwnas.cells.genotype_training import GenotypeTrainConfig, train_genotype

    genotype = load_genotype(args.genotype)
    data = load_data(args.data, args.image_size)
    cfg = GenotypeTrainConfig(epochs=args.epochs, batch_size=args.batch_size, channels=args.channels, layers=args.layers,
                      lr=args.lr, seed=args.seed, device=args.device)
    result = train_genotype(genotype, data, cfg, progress=not args.no_progress)
    result["genotype"] = genotype.to_dict()
    result["data"] = args.data
    print(f"test accuracy {result['test_accuracy']:.4f} (train {result['train_accuracy']:.4f}), "
          f"{result['params']} params, {result['seconds']} s")
    if args.out:
        from deploy.fileio import atomic_write_json

        atomic_write_json(args.out, result)
    return 0


def _random(args) -> int:
    from hwnas.cells.genotype import plot_genotype, random_genotype

    g = random_genotype(args.seed)
    if args.out:
        from pathlib import Path

        path = g.save(Path(args.out))
        plot_genotype(g, path.with_suffix(".png"), title=f"random (seed {args.seed})")
        print(f"wrote {path}")
    else:
        print(g.to_json())
    return 0
