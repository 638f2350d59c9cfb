"""hwnas profilers list|info|measure"""

from __future__ import annotations

import json

from hwnas.cli.argtypes import key_value, non_negative_float, positive_int


def add_backend_args(p, default_backend: str | None = "onnxruntime-cpu") -> None:
    """Options that pick and configure a profiler (shared by `profilers measure` and `lut build`)."""
    p.add_argument("--backend", default=default_backend, help="profiler backend (see `hwnas profilers list`)")
    p.add_argument("--threads", type=positive_int, default=1, help="intra-op / delegate threads (default 1)")
    p.add_argument("--precision", default="fp32", help="fp32 (default) or fp16 where the backend has it")
    p.add_argument("--host", default=None, help="measure on this SSH host (user@machine or a ~/.ssh/config alias)")
    p.add_argument("--remote-python", default="python3", help="python with hwnas's profilers on the remote host")
    p.add_argument("--ssh-config", default=None, help="ssh -F config file (default: your ~/.ssh/config)")
    p.add_argument("--runs", type=positive_int, default=None, help="timed runs at least (default 50, also per block and window in `lut build`)")
    p.add_argument("--min-time-s", type=non_negative_float, default=None, help="timed seconds at least (default 1.0; 0.2 per block in `lut build`)")
    p.add_argument("--max-attempts", type=positive_int, default=None, help="re-measure an unstable result up to this many times")
    p.add_argument("--backend-option", dest="backend_options", type=key_value, action="append", default=[],
                   metavar="KEY=VALUE", help="a constructor option of the backend, e.g. optimization=basic for "
                                             "onnxruntime-cpu (repeatable; recorded in the table)")
    p.add_argument("--clock", default=None, choices=["wall", "thread_cpu"],
                   help="wall (default) or thread_cpu: CPU time of the calling thread, robust to other jobs "
                        "on a shared machine; 1 thread only")


def make_profiler(args, protocol_defaults: dict | None = None, **backend_options):
    import profilers
    from profilers.stats import Protocol

    fields = dict(protocol_defaults or {})
    for name in ("runs", "min_time_s", "max_attempts", "clock", "rounds"):
        if getattr(args, name, None) is not None:
            fields[name] = getattr(args, name)
    protocol = Protocol(**fields)
    common = dict(threads=args.threads, precision=args.precision, protocol=protocol)
    backend_options = {**dict(getattr(args, "backend_options", None) or []), **backend_options}
    if args.host:
        return profilers.get("ssh", host=args.host, backend=args.backend, remote_python=args.remote_python,
                             ssh_config=args.ssh_config, **common, **backend_options)
    return profilers.get(args.backend, **common, **backend_options)


def register(sub) -> None:
    p = sub.add_parser("profilers", help="latency profilers: which backends work here; measure a model",
                       description="Example: hwnas profilers measure --space inas-tiny --largest --backend onnxruntime-cpu")
    s = p.add_subparsers(dest="profilers_command", metavar="ACTION", required=True)

    q = s.add_parser("list", help="every backend, available here or not and why")
    q.set_defaults(func=_list)

    q = s.add_parser("info", help="the device fingerprint a backend records")
    add_backend_args(q)
    q.set_defaults(func=_info)

    q = s.add_parser("measure", help="measure one architecture end to end (deploy form)")
    q.add_argument("--space", default="inas-tiny")
    g = q.add_mutually_exclusive_group(required=True)
    g.add_argument("--arch", help="ARCH.json or compact string")
    g.add_argument("--largest", action="store_true")
    g.add_argument("--smallest", action="store_true")
    q.add_argument("--resolution", type=positive_int, default=None)
    q.add_argument("--json", action="store_true", help="print the measurement as JSON (raw samples included)")
    add_backend_args(q)
    q.set_defaults(func=_measure)


def _list(args) -> int:
    import profilers

    for name, (ok, reason) in profilers.available().items():
        print(f"{'yes' if ok else 'no ':4s} {name:20s} {reason}")
    return 0


def _info(args) -> int:
    print(json.dumps(make_profiler(args).device_info(), indent=2, sort_keys=True))
    return 0


def _measure(args) -> int:
    import torch

    from hwnas.arch import load_arch
    from hwnas.model import SODNet, for_export
    from hwnas.space import create

    space = create(args.space)
    if args.arch:
        arch = load_arch(args.arch)
        space.validate(arch)
    else:
        arch = (space.largest if args.largest else space.smallest)(args.resolution)
    prof = make_profiler(args)
    model = for_export(SODNet(space, arch))
    m = prof.measure(model, (torch.randn(1, 3, arch.resolution, arch.resolution),))
    if args.json:
        print(json.dumps({"arch": arch.to_string(), "measurement": m.to_dict(), "device": prof.device_info()}))
    else:
        print(f"{arch.to_string()}\n{prof.name}: {m.summary()}")
    return 0
