"""hwnas space list|show|sample|validate"""

from __future__ import annotations

import json
import sys
from hwnas.cli.argtypes import non_negative_int, positive_int


def register(sub) -> None:
    p = sub.add_parser("space", help="inspect search spaces, sample and validate architectures",
                       description="Example: hwnas space sample inas-tiny --n 3 --seed 0")
    s = p.add_subparsers(dest="space_command", metavar="ACTION", required=True)

    q = s.add_parser("list", help="built-in spaces")
    q.set_defaults(func=_list)

    q = s.add_parser("show", help="a space's definition, size and hash")
    q.add_argument("name", help="built-in name or a YAML file")
    q.set_defaults(func=_show)

    q = s.add_parser("sample", help="uniformly sampled architectures as JSON lines")
    q.add_argument("name")
    q.add_argument("--n", type=positive_int, default=1)
    q.add_argument("--seed", type=non_negative_int, default=0)
    q.add_argument("--resolution", type=positive_int, default=None)
    q.add_argument("--format", choices=["json", "string"], default="json")
    q.set_defaults(func=_sample)

    q = s.add_parser("validate", help="check that an architecture (JSON file or compact string) belongs to a space")
    q.add_argument("name")
    q.add_argument("arch", help="ARCH.json or a compact architecture string")
    q.set_defaults(func=_validate)


def _list(args) -> int:
    from hwnas.space import create, list_spaces

    for name in list_spaces():
        sp = create(name)
        print(f"{name:12s} {sp.hash}  {sp.description}")
    return 0


def _show(args) -> int:
    import yaml

    from hwnas.space import create

    sp = create(args.name)
    print(f"# {sp.name}  hash={sp.hash}  source={sp.source}")
    print(yaml.safe_dump(sp.config, sort_keys=False).rstrip())
    print(f"# smallest: {sp.smallest().to_string()}")
    print(f"# largest:  {sp.largest().to_string()}")
    return 0


def _sample(args) -> int:
    import random

    from hwnas.errors import ArchError
    from hwnas.space import create

    sp = create(args.name)
    if args.n < 1:
        raise ArchError(f"--n must be >= 1, got {args.n}")
    if args.resolution is not None and args.resolution not in sp.resolutions:
        raise ArchError(f"--resolution {args.resolution} not in space {sp.name}; allowed: {list(sp.resolutions)}")
    rng = random.Random(args.seed)
    for _ in range(args.n):
        arch = sp.sample(rng, resolution=args.resolution)
        print(arch.to_string() if args.format == "string" else json.dumps(arch.to_dict()))
    return 0


def _validate(args) -> int:
    from hwnas.arch import load_arch
    from hwnas.space import create

    sp = create(args.name)
    arch = load_arch(args.arch)
    sp.validate(arch)
    print(f"ok: {arch.to_string()} is in {sp.name}", file=sys.stdout)
    return 0
