"""Sandwich-rule training throughput (steps/s) of the supernets, on CPU and optionally CUDA.

One step = largest + smallest + 2 random subnets, forward and backward each, one Adam step
(exactly :meth:`hwnas.supernet_training.Trainer.train_step`), on random tensors so data loading is not timed.
Multi-scale as in training: each step draws one of the space's resolutions.

    .venv/bin/python bench/train_throughput.py                      # CPU, inas-tiny and inas-sod
    python bench/train_throughput.py --device cuda --spaces inas-sod --batch-size 32
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from deploy.fileio import atomic_write_json

REPO = Path(__file__).resolve().parents[1]


class _NoData:
    """Stands in for the dataset: the benchmark feeds random tensors to ``train_step`` directly."""

    def __len__(self) -> int:
        return 1 << 20


def measure(space_name: str, device: str, batch_size: int, steps: int, warmup: int, threads: int | None,
            amp: bool) -> dict:
    import torch

    from hwnas.supernet_training import TrainConfig, Trainer

    cfg = TrainConfig(space=space_name, data=None, out="/nonexistent", steps=steps + warmup, batch_size=batch_size,
                      device=device, threads=threads, amp=amp, progress=False, augment=False)
    trainer = Trainer(cfg, dataset=_NoData())
    res = max(trainer.resolutions)
    g = torch.Generator().manual_seed(0)
    images = torch.randn(batch_size, 3, res, res, generator=g)
    masks = (torch.rand(batch_size, 1, res, res, generator=g) > 0.5).float()
    times, resolutions = [], []
    for i in range(warmup + steps):
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        row = trainer.train_step(images, masks)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        trainer.step += 1
        if i >= warmup:
            times.append(time.perf_counter() - t0)
            resolutions.append(row["resolution"])
    med = statistics.median(times)
    return {
        "space": space_name, "device": str(trainer.device), "batch_size": batch_size, "threads": torch.get_num_threads(),
        "amp": str(trainer.amp_dtype) if trainer.amp_dtype else None, "warmup_steps": warmup, "steps": steps,
        "resolutions": sorted(set(resolutions)), "median_step_s": round(med, 4), "mean_step_s": round(statistics.mean(times), 4),
        "min_step_s": round(min(times), 4), "steps_per_s": round(1 / med, 3),
        "images_per_s": round(batch_size / med, 1), "samples_step_s": [round(t, 4) for t in times],
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spaces", default="inas-tiny,inas-sod")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--batch-size", type=int, default=None, help="default: 16 for inas-tiny, 2 (CPU) / 32 (CUDA) for inas-sod")
    ap.add_argument("--steps", type=int, default=None, help="timed steps (default 10 CPU, 30 CUDA)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--no-amp", dest="amp", action="store_false")
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "train_throughput.json"))
    args = ap.parse_args()

    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print("--device cuda: no CUDA device here", file=sys.stderr)
        return 2
    rows = []
    for name in args.spaces.split(","):
        bs = args.batch_size or (16 if name == "inas-tiny" else (32 if args.device == "cuda" else 2))
        steps = args.steps or (30 if args.device == "cuda" else (10 if name == "inas-tiny" else 3))
        row = measure(name, args.device, bs, steps, args.warmup, args.threads, args.amp)
        print(json.dumps({k: v for k, v in row.items() if k != "samples_step_s"}), flush=True)
        rows.append(row)
    env = {"python": platform.python_version(), "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
           "cpu_count": os.cpu_count(), "loadavg": os.getloadavg(),
           "gpu": torch.cuda.get_device_name() if args.device == "cuda" else None}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    existing = json.loads(out.read_text()) if out.exists() else {}
    existing[args.device] = {"env": env, "results": rows}
    atomic_write_json(out, existing)
    return 0


if __name__ == "__main__":
    sys.exit(main())
