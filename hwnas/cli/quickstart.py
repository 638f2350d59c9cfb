"""hwnas quickstart — the main job end to end on this machine's CPU."""

from __future__ import annotations

from hwnas.cli.argtypes import non_negative_int, positive_float, positive_int


def register(sub) -> None:
    from dataclasses import fields

    from hwnas.quickstart import QuickstartConfig
    from hwnas.search.predictor import PREDICTORS

    default = {f.name: f.default for f in fields(QuickstartConfig)}  # help texts cannot drift from the config
    p = sub.add_parser(
        "quickstart",
        help="synthetic data → supernet → CPU latency table → LGS search → export, with a report",
        description="Runs every stage with small defaults on this machine's CPU (about 15 minutes on 2 cores). "
        "Finished stages are reused on a rerun. Example: hwnas quickstart --out runs/quickstart",
    )
    p.add_argument("--out", default="runs/quickstart", help="run folder (default runs/quickstart)")
    p.add_argument("--train-minutes", type=positive_float, default=None, help=f"supernet training budget in minutes (default {default['train_minutes']:g})")
    p.add_argument("--max-latency-ms", type=positive_float, default=None,
                   help="latency budget for the exported model (default: the median latency of the Pareto front)")
    p.add_argument("--images", type=positive_int, default=None, help=f"synthetic images in all (default {default['images']})")
    p.add_argument("--iterations", type=positive_int, default=None, help=f"evolution iterations (default {default['iterations']})")
    p.add_argument("--population", type=positive_int, default=None, help=f"initial population (default {default['population']})")
    p.add_argument("--predictor", choices=PREDICTORS, default=None,
                   help="accuracy predictor that pre-screens the LGS search's offspring "
                        f"(default {default['predictor']}; none = plain LGS)")
    p.add_argument("--seed", type=non_negative_int, default=0)
    p.add_argument("--smoke", action="store_true",
                   help="tiny settings (space inas-smoke, 24 images, 3 s of training, 1 timed run per block, ONNX only, "
                        "stages in this process): checks that every stage works in about a minute; its figures mean nothing")
    p.set_defaults(func=_run)


def _run(args) -> int:
    from pathlib import Path

    from hwnas.quickstart import QuickstartConfig, run

    cfg = QuickstartConfig.smoke(Path(args.out)) if args.smoke else QuickstartConfig(out=Path(args.out))
    cfg.seed, cfg.max_latency_ms = args.seed, args.max_latency_ms
    for name in ("train_minutes", "images", "iterations", "population", "predictor"):
        value = getattr(args, name)
        if value is not None:
            setattr(cfg, name, value)
    run(cfg)
    return 0
