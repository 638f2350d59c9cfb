"""Acceptance run: an inas-tiny supernet trained on `hwnas data synth` within a CPU time budget.

Steps: write the synthetic set (skipped when present) → score the frequency-tuned baseline and the
untrained supernet → train (sandwich rule) for ``--steps`` (or ``--minutes``) → BN-recalibrate and score the
largest and smallest subnets on the held-out val split → bench/results/train_tiny.json and the
training-curve PNG. The machine's load (``os.getloadavg``) is recorded before and after, because
the CPU may be shared.

    .venv/bin/python bench/train_tiny.py --steps 450 --lr 1e-2 --threads 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import time
from pathlib import Path

from deploy.fileio import Journal, atomic_write_json

REPO = Path(__file__).resolve().parents[1]


def _hwnas(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "hwnas", *args], check=True, cwd=REPO)


def _score(net, space, arch, data: Path, calib_batches: int, batch_size: int) -> dict:
    import torch

    from hwnas.data import SODFolder
    from hwnas.evaluate import evaluate_arch

    val = SODFolder(data / "val", arch.resolution, mask_size=max(space.resolutions))
    calib = SODFolder(data / "train", arch.resolution)
    g = torch.Generator().manual_seed(0)
    calib_loader = torch.utils.data.DataLoader(calib, batch_size=batch_size, shuffle=True, generator=g)
    val_loader = torch.utils.data.DataLoader(val, batch_size=batch_size)
    return evaluate_arch(net, arch, val_loader, calib_loader, calib_batches)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # under runs/ (git-ignored): the data set and the run are recreated by this script
    ap.add_argument("--data", default=str(REPO / "runs" / "bench_synth"))
    ap.add_argument("--out", default=str(REPO / "runs" / "train_tiny"))
    ap.add_argument("--n", type=int, default=1200)
    ap.add_argument("--size", type=int, default=128)
    budget = ap.add_mutually_exclusive_group()
    budget.add_argument("--minutes", type=float, default=None, help="wall-clock training budget")
    budget.add_argument("--steps", type=int, default=None, help="fixed number of sandwich steps (default 450)")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-2)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--calib-batches", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fresh", action="store_true", help="delete --out first (otherwise a rerun resumes)")
    ap.add_argument("--results", default=str(REPO / "bench" / "results" / "train_tiny.json"))
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from hwnas.baseline import evaluate_ft
    from hwnas.checkpoint import load_supernet
    from hwnas.data import SODFolder
    from hwnas.space import create
    from hwnas.supernet import Supernet

    data, out = Path(args.data), Path(args.out)
    if args.fresh and out.exists():
        shutil.rmtree(out)
    _hwnas("data", "synth", "--out", str(data), "--n", str(args.n), "--size", str(args.size), "--seed", str(args.seed))
    space = create("inas-tiny")
    result: dict = {"command": " ".join([Path(sys.executable).name, *sys.argv]), "space": space.name,
                    "space_hash": space.hash, "torch": torch.__version__, "threads": args.threads,
                    "cpu": platform.processor() or platform.machine(), "cpu_count": os.cpu_count(),
                    "loadavg_before": os.getloadavg()}

    result["ft_baseline_val"] = evaluate_ft(SODFolder(data / "val", max(space.resolutions)))
    torch.manual_seed(args.seed)
    untrained = Supernet(space)
    result["untrained_largest_val"] = _score(untrained, space, space.largest(), data, args.calib_batches, args.batch_size)

    t0 = time.time()
    _hwnas("supernet", "train", "--space", space.name, "--data", str(data), "--out", str(out),
           *(["--minutes", str(args.minutes)] if args.minutes else ["--steps", str(args.steps or 450)]), "--batch-size", str(args.batch_size), "--lr", str(args.lr),
           "--threads", str(args.threads), "--seed", str(args.seed), "--no-progress")
    result["train_command_wall_s"] = round(time.time() - t0, 1)  # includes start-up; a resumed run counts only its rest
    summary = json.loads((out / "summary.json").read_text())
    result["train"] = summary
    result["loadavg_after_train"] = os.getloadavg()
    log = Journal(out / "log.jsonl", None, what="training log").read()
    loads = [row.get("loadavg_1m", 0.0) for row in log]
    result["loadavg_1m_during_train_mean"] = round(sum(loads) / max(1, len(loads)), 2)
    result["train_step_s_median"] = sorted(row["step_s"] for row in log)[len(loads) // 2]

    net = load_supernet(out / "supernet.pt", space)
    result["largest_val"] = _score(net, space, space.largest(), data, args.calib_batches, args.batch_size)
    result["smallest_val"] = _score(net, space, space.smallest(), data, args.calib_batches, args.batch_size)
    result["largest_arch"] = space.largest().to_string()
    result["smallest_arch"] = space.smallest().to_string()
    result["acceptance"] = {
        "largest_max_f>=0.85": result["largest_val"]["max_f"] >= 0.85,
        "smallest_max_f>=0.80": result["smallest_val"]["max_f"] >= 0.80,
        "ft_max_f<=0.75": result["ft_baseline_val"]["max_f"] <= 0.75,
        "untrained_below_trained": result["untrained_largest_val"]["max_f"] < result["smallest_val"]["max_f"],
        "train_minutes<=10": summary["elapsed_s"] <= 600,  # wall time of the steps (data loading included)
    }
    results = Path(args.results)
    results.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(out / "curve.png", results.with_name("train_tiny_curve.png"))
    atomic_write_json(results, result)
    print(json.dumps({k: result[k] for k in ("ft_baseline_val", "untrained_largest_val", "largest_val",
                                             "smallest_val", "acceptance", "train_command_wall_s")}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
