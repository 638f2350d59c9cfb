"""Re-parameterization speed-up: training form vs deploy form of inas-sod subnets on this CPU.

Thesis §3.2 (eq. 3.2) reports 1.30x on CPU for the largest subnet once every SMSU is merged into
one depthwise conv and every BN folded. This script measures the same comparison for the largest
and a median-FLOPs subnet at 320 px, in ONNX Runtime (1 and 2 intra-op threads) and in PyTorch
eager (1 and 2 threads):

* training form = ``SODExport(net)`` without re-parameterization (multi-branch SMSUs, BNs; eval
  mode; finest level + sigmoid only, so both forms compute the same output);
* deploy form = ``hwnas.model.for_export(net)``.

All configurations are measured side by side in one run: each round visits every configuration
in a fresh random order and times a short block of runs, so drift in machine load hits all of
them alike. Warm-up per configuration: >= 10 runs and >= 0.2 s. Raw samples are kept; medians are
the primary figure. ORT thread spinning is disabled (the CPU is shared; spinning distorts timings).

    .venv/bin/python bench/reparam_speedup.py            # → bench/results/reparam_speedup.json
    .venv/bin/python bench/reparam_speedup.py --quick    # fewer rounds, for a smoke test
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from deploy.fileio import atomic_write_json

RESULTS = Path(__file__).resolve().parent / "results" / "reparam_speedup.json"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def flops(model: torch.nn.Module, x: torch.Tensor) -> int:
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(x)
    return int(counter.get_total_flops())


def pick_archs(space, resolution: int, candidates: int, seed: int):
    """The largest arch and the median-FLOPs one of ``candidates`` uniform samples (deploy form)."""
    from hwnas.model import SODNet, for_export

    rng = random.Random(seed)
    x = torch.randn(1, 3, resolution, resolution)
    scored = []
    for _ in tqdm(range(candidates), desc="sampling for the median subnet", leave=False):
        arch = space.sample(rng, resolution=resolution)
        scored.append((flops(for_export(SODNet(space, arch)), x), arch))
    scored.sort(key=lambda t: t[0])
    median_flops, median_arch = scored[len(scored) // 2]
    return {"largest": space.largest(resolution=resolution), "median": median_arch}, median_flops


def randomize_bn(model: torch.nn.Module, seed: int) -> None:
    """Non-trivial BN statistics so both forms compute a realistic (not identity-BN) function."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) * 0.5 + 0.75)


def ort_session(path: Path, threads: int):
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def make_runner(kind: str, threads: int, module, onnx_path: Path, x: torch.Tensor):
    if kind == "onnxruntime":
        sess = ort_session(onnx_path, threads)
        feed = {sess.get_inputs()[0].name: x.numpy()}
        return lambda: sess.run(None, feed)

    def eager():
        torch.set_num_threads(threads)
        with torch.inference_mode():
            return module(x)

    return eager


def time_block(fn, runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1e3)
    return out


def warm_up(fn, min_runs: int = 10, min_s: float = 0.2) -> int:
    n, t0 = 0, time.perf_counter()
    while n < min_runs or time.perf_counter() - t0 < min_s:
        fn()
        n += 1
    return n


def stats(samples: list[float]) -> dict:
    a = np.asarray(samples)
    q1, med, q3 = np.percentile(a, [25, 50, 75])
    return {"median_ms": float(med), "mean_ms": float(a.mean()), "std_ms": float(a.std(ddof=1)) if len(a) > 1 else 0.0,
            "min_ms": float(a.min()), "p90_ms": float(np.percentile(a, 90)), "p99_ms": float(np.percentile(a, 99)),
            "iqr_over_median": float((q3 - q1) / med), "runs": int(a.size)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--space", default="inas-sod")
    p.add_argument("--resolution", type=int, default=320)
    p.add_argument("--rounds", type=int, default=12, help="interleaved rounds (default 12)")
    p.add_argument("--block", type=int, default=3, help="timed runs per configuration per round (default 3)")
    p.add_argument("--candidates", type=int, default=15, help="sampled archs to pick the median-FLOPs one from")
    p.add_argument("--threads", default="1,2", help="thread counts (default 1,2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--quick", action="store_true", help="3 rounds of 2 runs, 5 candidates (smoke test)")
    args = p.parse_args(argv)
    if args.quick:
        args.rounds, args.block, args.candidates = 3, 2, 5

    from deploy.onnx_export import export_onnx
    from hwnas.model import SODExport, SODNet, for_export
    from hwnas.space import create

    torch.manual_seed(args.seed)
    space = create(args.space)
    threads = [int(t) for t in args.threads.split(",")]
    load_before = os.getloadavg()
    archs, median_flops = pick_archs(space, args.resolution, args.candidates, args.seed)
    x = torch.randn(1, 3, args.resolution, args.resolution, generator=torch.Generator().manual_seed(1))

    tmp = Path(tempfile.mkdtemp(prefix="reparam-bench-"))
    configs, models_info = {}, {}
    for label, arch in archs.items():
        net = SODNet(space, arch)
        randomize_bn(net, args.seed)
        net.eval()
        forms = {"training": SODExport(net).eval(), "deploy": for_export(net)}
        with torch.no_grad():
            diff = (forms["training"](x) - forms["deploy"](x)).abs().max().item()
        models_info[label] = {
            "arch": arch.to_string(),
            "flops": {f: flops(m, x) for f, m in forms.items()},
            "params": {f: sum(p.numel() for p in m.parameters()) for f, m in forms.items()},
            "max_abs_diff_training_vs_deploy": diff,
        }
        for form, module in forms.items():
            onnx_path = export_onnx(module, (x,), tmp / f"{label}-{form}.onnx")
            models_info[label].setdefault("onnx_bytes", {})[form] = onnx_path.stat().st_size
            for runtime in ("onnxruntime", "torch-eager"):
                for n in threads:
                    configs[(label, form, runtime, n)] = make_runner(runtime, n, module, onnx_path, x)

    warmups = {}
    for key, fn in tqdm(configs.items(), desc="warm-up"):
        warmups[key] = warm_up(fn)
    samples: dict = {key: [] for key in configs}
    rng = random.Random(args.seed)
    order = list(configs)
    for _ in tqdm(range(args.rounds), desc="interleaved rounds"):
        rng.shuffle(order)
        for key in order:
            samples[key] += time_block(configs[key], args.block)
    torch.set_num_threads(1)
    del configs  # drop the ORT sessions before removing their model files
    shutil.rmtree(tmp, ignore_errors=True)

    rows, speedups = [], {}
    for key, s in samples.items():
        label, form, runtime, n = key
        rows.append({"model": label, "form": form, "runtime": runtime, "threads": n, "warmup_runs": warmups[key],
                     **stats(s), "samples_ms": [round(v, 4) for v in s]})
    by = {(r["model"], r["form"], r["runtime"], r["threads"]): r for r in rows}
    for label in archs:
        for runtime in ("onnxruntime", "torch-eager"):
            for n in threads:
                t, d = by[(label, "training", runtime, n)], by[(label, "deploy", runtime, n)]
                speedups[f"{label}/{runtime}/{n}t"] = round(t["median_ms"] / d["median_ms"], 3)

    import onnxruntime

    result = {
        "what": "median latency, training form vs deploy form (re-parameterized), interleaved in one run",
        "space": space.name, "space_hash": space.hash, "resolution": args.resolution,
        "median_pick": {"candidates": args.candidates, "seed": args.seed, "deploy_flops": median_flops},
        "device": {"cpu": cpu_model(), "logical_cpus": os.cpu_count(), "system": platform.platform(),
                   "loadavg_before": load_before, "loadavg_after": os.getloadavg(),
                   "torch": torch.__version__, "onnxruntime": onnxruntime.__version__,
                   "ort_allow_spinning": False, "ort_graph_optimization": "ORT_ENABLE_ALL"},
        "protocol": {"rounds": args.rounds, "block": args.block, "warmup": ">= 10 runs and >= 0.2 s",
                     "order": "shuffled every round"},
        "models": models_info,
        "speedup_training_over_deploy": speedups,
        "goal": "largest subnet >= 1.3x (thesis: 1.30x on CPU)",
        "results": rows,
    }
    out = Path(args.out)
    atomic_write_json(out, result, indent=1)

    print(f"\n{space.name} @ {args.resolution}px on {cpu_model()} (load {load_before[0]:.2f} → {os.getloadavg()[0]:.2f})")
    print(f"{'model':8s} {'runtime':12s} {'thr':>3s} {'train_ms':>9s} {'deploy_ms':>9s} {'speedup':>8s}")
    for label in archs:
        for runtime in ("onnxruntime", "torch-eager"):
            for n in threads:
                t, d = by[(label, "training", runtime, n)], by[(label, "deploy", runtime, n)]
                print(f"{label:8s} {runtime:12s} {n:3d} {t['median_ms']:9.2f} {d['median_ms']:9.2f} "
                      f"{speedups[f'{label}/{runtime}/{n}t']:7.3f}x")
    print(f"→ {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
