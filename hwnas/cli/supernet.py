"""hwnas supernet train|info"""

from __future__ import annotations

from hwnas.cli.argtypes import device, int_list, non_negative_float, non_negative_int, positive_float, positive_int, threads_or_auto


def register(sub) -> None:
    p = sub.add_parser("supernet", help="train a weight-sharing supernet (sandwich rule), inspect a checkpoint",
                       description="Example: hwnas supernet train --space inas-tiny --data data/synth --out runs/tiny --minutes 10")
    s = p.add_subparsers(dest="supernet_command", metavar="ACTION", required=True)

    q = s.add_parser(
        "train", help="train or resume (RUN/supernet.pt) a supernet",
        description="Sandwich rule with in-place distillation, Adam + poly LR, multi-scale inputs. Rerunning the "
        "same command after an interruption resumes exactly. Multi-process: "
        "torchrun --nproc_per_node N -m hwnas supernet train ...",
    )
    q.add_argument("--space", required=True, help="built-in space name or YAML file")
    q.add_argument("--data", help="training set folder (its train/ split when there is one)")
    q.add_argument("--images", help="image folder (with --masks, instead of layout detection)")
    q.add_argument("--masks", help="mask folder")
    q.add_argument("--out", required=True, help="run folder: supernet.pt, log.jsonl, curve.png, config.json")
    budget = q.add_mutually_exclusive_group(required=True)
    budget.add_argument("--steps", type=positive_int, help="optimizer steps")
    budget.add_argument("--epochs", type=positive_float, help="passes over the training set")
    budget.add_argument("--minutes", type=positive_float, help="wall-clock budget of the whole run (set-up, steps, checkpoints); the learning rate decays "
                        "with the fraction of it spent and reaches its end value on the last step")
    q.add_argument("--batch-size", type=positive_int, default=16, help="images per step per process (default 16)")
    q.add_argument("--lr", type=positive_float, default=2e-3, help="peak Adam learning rate (default 2e-3)")
    q.add_argument("--weight-decay", type=non_negative_float, default=0.0)
    q.add_argument("--warmup-steps", type=non_negative_int, default=20)
    q.add_argument("--num-random", type=non_negative_int, default=2, help="random subnets per step besides largest and smallest")
    q.add_argument("--student-loss", choices=["bce", "mse"], default="bce",
                   help="distillation loss of the non-largest subnets vs the largest's prediction (default bce, soft targets)")
    q.add_argument("--grad-clip", type=non_negative_float, default=5.0, help="max gradient norm (0 = off)")
    q.add_argument("--resolutions", type=int_list, default=None,
                   help="comma-separated training resolutions (default: the space's)")
    q.add_argument("--no-augment", dest="augment", action="store_false", help="no flip/crop/colour jitter")
    q.add_argument("--seed", type=non_negative_int, default=0)
    q.add_argument("--save-every", type=positive_int, default=50, help="checkpoint every N steps (and at the end)")
    q.add_argument("--workers", type=non_negative_int, default=0, help="data-loading worker processes")
    q.add_argument("--device", type=device, default="auto", help="auto, cpu, cuda or cuda:N")
    q.add_argument("--threads", type=threads_or_auto, default=None,
                   help="torch intra-op threads per process; auto: the count that trains fastest now, probed "
                        "before training (another busy process makes 2 threads on 2 cores ~4x slower)")
    q.add_argument("--no-amp", dest="amp", action="store_false", help="no mixed precision on CUDA")
    q.add_argument("--no-progress", dest="progress", action="store_false")
    q.set_defaults(func=_train)

    q = s.add_parser("info", help="what a checkpoint holds")
    q.add_argument("checkpoint")
    q.set_defaults(func=_info)


def _train(args) -> int:
    import json

    from hwnas.supernet_training import TrainConfig, train

    cfg = TrainConfig(
        space=args.space, data=args.data, out=args.out, images=args.images, masks=args.masks,
        steps=args.steps, epochs=args.epochs, minutes=args.minutes, batch_size=args.batch_size, lr=args.lr,
        weight_decay=args.weight_decay, warmup_steps=args.warmup_steps, num_random=args.num_random,
        student_loss=args.student_loss, grad_clip=args.grad_clip or None, resolutions=args.resolutions,
        augment=args.augment, seed=args.seed, save_every=args.save_every, workers=args.workers,
        device=args.device, threads=args.threads, amp=args.amp, progress=args.progress,
    )
    if args.data is None and args.images is None:
        from hwnas.errors import DataError

        raise DataError("give --data or --images and --masks")
    summary = train(cfg)
    import os

    if int(os.environ.get("RANK", "0")) == 0:
        print(json.dumps(summary))
    return 0


def _info(args) -> int:
    import json

    from hwnas.checkpoint import load_checkpoint

    ck = load_checkpoint(args.checkpoint)
    n_params = sum(t.numel() for t in ck["model"].values() if hasattr(t, "numel"))
    print(json.dumps({
        "space": ck["space"]["name"], "space_hash": ck["space"]["hash"], "step": ck.get("step"),
        "total_steps": ck.get("total_steps"), "epoch": ck.get("epoch"), "elapsed_s": ck.get("elapsed_s"),
        "world_size": ck.get("world_size"), "tensor_elements": n_params, "config": ck.get("config"),
    }, indent=2))
    return 0
