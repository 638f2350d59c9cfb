"""Measure an artifact on this machine and print one JSON line: what ssh/adb targets run.

``python -m profilers.runner --backend onnxruntime-cpu --threads 1 --shapes 1x3x64x64 model.onnx``
prints ``{"measurement": {...}, "device": {...}}``. ``--device-info`` prints the fingerprint only.
``--serve`` keeps one process (and one SSH connection) for many artifacts: each stdin line is
``{"name": ..., "data_b64": ..., "shapes": "1x3x64x64"}``, each answer one JSON line — a remote
table build then costs one round trip per block instead of an scp, an ssh and a Python start-up.
``"op": "together"`` (``{"artifacts": {key: request}}``) times several artifacts interleaved and
``"op": "node_profile"`` returns the runtime's per-node times (``Profiler.measure_together`` /
``node_profile``), so a remote table gets the same latency model as a local one.
Needs only the backend's runtime and this package (no torch for onnxruntime-cpu).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> int:
    from profilers import get
    from profilers.base import shapes_from_str
    from profilers.errors import ProfilerError
    from profilers.stats import Protocol

    p = argparse.ArgumentParser(prog="python -m profilers.runner", description=__doc__.splitlines()[0])
    p.add_argument("--backend", required=True)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--precision", default="fp32")
    p.add_argument("--protocol", default="{}", help="JSON of profilers.stats.Protocol fields")
    p.add_argument("--options", default="{}", help="JSON of backend constructor options")
    p.add_argument("--shapes", default="", help="input shapes, e.g. 1x3x64x64,1x8x32x32")
    p.add_argument("--device-info", action="store_true", help="print the device fingerprint and exit")
    p.add_argument("--serve", action="store_true", help="measure artifacts sent as JSON lines on stdin")
    p.add_argument("artifact", nargs="?")
    a = p.parse_args(argv)
    try:
        prof = get(a.backend, threads=a.threads, precision=a.precision,
                   protocol=Protocol.from_dict(json.loads(a.protocol)), **json.loads(a.options))
        if a.device_info:
            print(json.dumps({"device": prof.device_info()}))
            return 0
        if a.serve:
            return _serve(prof)
        if not a.artifact:
            raise ProfilerError("an artifact path is required")
        m = prof.measure_artifact(Path(a.artifact), shapes_from_str(a.shapes))
        print(json.dumps({"measurement": m.to_dict(), "device": prof.device_info()}))
    except ProfilerError as e:
        print(f"profilers.runner: error: {e}", file=sys.stderr)
        return 2
    return 0


def _serve(prof) -> int:
    from profilers.base import shapes_from_str
    from profilers.errors import ProfilerError

    device = prof.device_info()
    print(json.dumps({"ready": True, "device": device}), flush=True)
    for line in sys.stdin:
        if not line.strip():
            continue
        try:
            req = json.loads(line)
            op = req.get("op", "measure")
            if op == "together":  # several artifacts timed interleaved (a block, its context, the reference)
                arts = {k: (_receive(a), shapes_from_str(a["shapes"])) for k, a in req["artifacts"].items()}
                got = prof.measure_together(arts, seed=int(req.get("seed", 0)),
                                            flush_bytes={k: int(v) for k, v in req.get("flush_bytes", {}).items()},
                                            reference=req.get("reference"))
                reply = {"measurements": {k: m.to_dict() for k, m in got.items()}, "device": device}
            elif op == "node_profile":
                prof_nodes = prof.node_profile(_receive(req), shapes_from_str(req["shapes"]), runs=int(req.get("runs", 20)),
                                               flush_bytes=int(req.get("flush_bytes", 0)))
                reply = {"node_profile": prof_nodes.to_dict() if prof_nodes is not None else None, "device": device}
            else:
                m = prof.measure_artifact(_receive(req), shapes_from_str(req["shapes"]))
                reply = {"measurement": m.to_dict(), "device": device}
        except (ProfilerError, KeyError, ValueError, TypeError) as e:
            reply = {"error": f"{type(e).__name__}: {e}"}
        print(json.dumps(reply), flush=True)
    return 0


def _receive(req: dict) -> Path:
    """Write an artifact sent in a request to the work directory (a file name there, never a path)."""
    import base64

    name = Path(req["name"]).name
    Path(name).write_bytes(base64.b64decode(req["data_b64"]))
    return Path(name)


if __name__ == "__main__":
    sys.exit(main())
