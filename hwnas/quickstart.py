"""The main job end to end on this machine's CPU, with small defaults.

synthetic SOD data → ``inas-tiny`` supernet (sandwich rule, fixed wall-clock budget) → a latency
table of this CPU (ONNX Runtime, 1 thread) and its validation → LGS search (and a uniform-sampling
search beside it) → the best architecture under a latency budget, evaluated on the validation
images the search did not score and exported to every installed format with parity checked →
measured latency per runtime → a markdown report with plots.

Every stage is an ordinary ``hwnas`` command run as a subprocess (argument lists, never shell
strings), so the quickstart exercises exactly what a user runs, and each stage's own resume logic
applies. A stage that finished leaves ``.stages/<name>.json``; a rerun skips it. Ctrl-C kills the
running stage, whose own atomic writes leave nothing corrupt; the rerun continues from there.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from hwnas.errors import HwnasError


@dataclass
class QuickstartConfig:
    out: Path
    space: str = "inas-tiny"
    # 960 training and 480 validation images: the search scores on 240 of them (see val_images)
    images: int = 1440
    val_fraction: float = 1 / 3
    image_size: int = 128
    train_minutes: float = 5.0
    train_threads: int | str = "auto"  # probed: 2 threads beside a busy process train ~4x slower
    resolution: int = 64
    backend: str = "onnxruntime-cpu"
    threads: int = 1
    validate_models: int = 12
    calibrate_models: int = 6
    population: int = 100
    groups: int = 5
    keep: int = 20
    iterations: int = 4
    # LGS offspring pre-screened by a Gaussian process: on the seventh session's 1851 evaluated archs
    # (design data, 100 fitted / 200 scored, 6 random splits) it ranked at Kendall tau 0.65 vs mlp 0.62
    # and gbt 0.57, above mlp on every split; that session's selection search had chosen mlp (0.63 vs
    # gbt 0.59) before gp existed. Fresh-data figures: bench/results/predictor_search_val240.json
    predictor: str = "gp"
    max_latency_ms: float | None = None
    seed: int = 0
    # smaller work per stage, for a smoke test of the pipeline (None: each command's own default)
    lut_runs: int | None = None  # timed runs per block / whole model
    lut_min_time_s: float | None = None
    validate_rounds: int | None = None
    # The search scores candidates on the first `val_images` validation images (None: half of them,
    # 240 of the default 480); the chosen model's held-out metrics use the others. Two disjoint sets
    # of 32 rank the same archs with Kendall tau 0.64, of 120 with 0.80 (bench/fitness_repeatability.py):
    # the fitness's own noise caps what a search and its predictor can rank, so the search scores on
    # 240 (0.68 s per evaluation at 120 images here; 1.24 s at 240: 1803 evaluations in 1120 s on 2 workers).
    val_images: int | None = None
    search_workers: int | None = None
    formats: str | None = None  # exported and measured; None: every one of QUICKSTART_FORMATS whose runtime is here
    measure_runs: int | None = None  # timed runs per exported artifact
    in_process: bool = False  # run the stages' commands in this process (no interpreter start per stage)

    @classmethod
    def smoke(cls, out: Path) -> QuickstartConfig:
        """Tiny settings that run every stage in about a minute; the figures mean nothing."""
        return cls(out=out, space="inas-smoke", images=24, image_size=32, train_minutes=0.05, train_threads=1, resolution=32,
                   backend="torch-cpu", validate_models=2, calibrate_models=0, population=6, groups=2, keep=3,
                   iterations=1, lut_runs=1, lut_min_time_s=0.0, validate_rounds=1, val_images=4, search_workers=1,
                   formats="onnx", measure_runs=3, in_process=True)

    def protocol_args(self) -> list[str]:
        """``--runs``/``--min-time-s`` for the measuring stages when set."""
        out = [] if self.lut_runs is None else ["--runs", str(self.lut_runs)]
        return out + ([] if self.lut_min_time_s is None else ["--min-time-s", str(self.lut_min_time_s)])


from deploy.fileio import atomic_write_text as _atomic_write  # noqa: E402


class Stages:
    """Runs named stages once; records each finished one with its wall time."""

    def __init__(self, out: Path, in_process: bool = False):
        self.in_process = in_process
        self.dir = out / ".stages"
        self.dir.mkdir(parents=True, exist_ok=True)

    def done(self, name: str) -> dict | None:
        p = self.dir / f"{name}.json"
        return json.loads(p.read_text()) if p.is_file() else None

    def run(self, name: str, argv: list[str], title: str, stdout_to: Path | None = None) -> dict:
        prev = self.done(name)
        if prev is not None:
            print(f"[quickstart] {title}: done earlier ({prev['seconds']:.0f} s), reused", flush=True)
            return prev
        print(f"\n[quickstart] {title}\n  $ hwnas {' '.join(argv)}", flush=True)
        t0 = time.perf_counter()
        returncode, stdout = self._command(argv, capture=stdout_to is not None)
        if returncode == 0 and stdout_to is not None:  # the stage's answer is its stdout (`hwnas eval --json`)
            _atomic_write(stdout_to, stdout)
        if returncode != 0:
            raise HwnasError(f"stage '{name}' failed (exit {returncode}); fix the cause and rerun — finished stages are kept")
        record = {"argv": argv, "seconds": time.perf_counter() - t0}
        _atomic_write(self.dir / f"{name}.json", json.dumps(record))
        return record

    def _command(self, argv: list[str], capture: bool) -> tuple[int, str]:
        """Exit status (and stdout when ``capture``) of ``hwnas ARGV``: a subprocess, or ``hwnas.cli.main``
        in this process with ``in_process`` (the same parser and commands, without a new interpreter)."""
        if not self.in_process:
            proc = subprocess.run([sys.executable, "-m", "hwnas", *argv], stdout=subprocess.PIPE if capture else None,
                                  text=True)
            return proc.returncode, proc.stdout or ""
        import contextlib
        import io

        from hwnas.cli import main

        buf = io.StringIO()
        with contextlib.redirect_stdout(buf) if capture else contextlib.nullcontext():
            try:
                returncode = main(argv)
            except SystemExit as e:  # argparse refusals
                returncode = e.code if isinstance(e.code, int) else 2
        return returncode, buf.getvalue()

    def record(self, name: str, seconds: float, **extra) -> None:
        _atomic_write(self.dir / f"{name}.json", json.dumps({"seconds": seconds, **extra}))


def _pick_architecture(search_dir: Path, max_latency_ms: float | None) -> tuple[Path, dict]:
    """The best-metric Pareto architecture under the budget (default: the front's median latency)."""
    import pandas as pd

    front = pd.read_csv(search_dir / "pareto.csv")
    if front.empty:
        raise HwnasError(f"search in {search_dir} produced an empty Pareto front")
    # pareto.csv: file, latency_ms, <metric>, arch (hwnas.search.report)
    metric_col = next(c for c in front.columns if c not in ("file", "latency_ms", "arch"))
    budget = max_latency_ms if max_latency_ms is not None else float(front["latency_ms"].median())
    feasible = front[front["latency_ms"] <= budget + 1e-9]
    if feasible.empty:
        raise HwnasError(f"no Pareto architecture under {budget:.3f} ms; fastest is {front['latency_ms'].min():.3f} ms")
    row = feasible.sort_values(metric_col, ascending=False).iloc[0].to_dict()
    row["budget_ms"] = budget
    row["metric_name"] = metric_col
    return search_dir / row["file"], row


def run(cfg: QuickstartConfig) -> Path:
    out = cfg.out
    out.mkdir(parents=True, exist_ok=True)
    _atomic_write(out / "config.json", json.dumps({k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()}, indent=2))
    stages = Stages(out, in_process=cfg.in_process)
    t_start = time.perf_counter()
    data, sup, lut_dir = out / "data", out / "supernet", out / "lut"
    lut_file = lut_dir / f"{cfg.backend}-{cfg.threads}t.parquet"
    stages.run("data", ["data", "synth", "--out", str(data), "--n", str(cfg.images), "--size", str(cfg.image_size),
                        "--val-fraction", str(cfg.val_fraction), "--seed", str(cfg.seed)], "1/7 synthetic SOD data")
    from hwnas.quickstart_report import search_val_images

    val_k, _ = search_val_images(cfg)  # refused here, before training, when no image would be held out
    stages.run("train", ["supernet", "train", "--space", cfg.space, "--data", str(data), "--out", str(sup),
                         "--minutes", str(cfg.train_minutes), "--seed", str(cfg.seed), "--threads", str(cfg.train_threads),
                         # the only resolution searched and exported: a 96 px step of inas-tiny costs 1.4x a 64 px
                         # one (0.76 vs 1.08 s here), and the budget is better spent where the model will run
                         "--resolutions", str(cfg.resolution),
                         "--lr", "0.01", "--batch-size", "16"],
               f"2/7 supernet training ({cfg.train_minutes:g} min budget)")
    stages.run("lut", ["lut", "build", "--space", cfg.space, "--backend", cfg.backend, "--threads", str(cfg.threads),
                       "--resolutions", str(cfg.resolution), "--out", str(lut_file),
                       *cfg.protocol_args()],  # the default protocol unless set
               "3/7 latency table of this CPU")
    stages.run("lut-validate", ["lut", "validate", "--lut", str(lut_file), "--n", str(cfg.validate_models),
                                # calibration reported beside the prediction, not saved: the search uses the
                                # uncalibrated context model (nothing fitted on measured whole models)
                                "--calibrate", str(cfg.calibrate_models),
                                # torchscript export: ~50x faster to export than dynamo, same ONNX ops
                                "--exporter", "torchscript",
                                *([] if cfg.lut_runs is None else ["--runs", str(cfg.lut_runs)]),
                                *([] if cfg.validate_rounds is None else ["--rounds", str(cfg.validate_rounds)]),
                                "--out-dir", str(lut_dir / "validation")], "4/7 latency table validation (whole models measured)")
    search_common = ["--space", cfg.space, "--supernet", str(sup / "supernet.pt"), "--lut", str(lut_file),
                     "--data", str(data / "val"), "--calib", str(data / "train"), "--resolution", str(cfg.resolution),
                     "--population", str(cfg.population), "--groups", str(cfg.groups), "--keep", str(cfg.keep),
                     "--iterations", str(cfg.iterations), "--seed", str(cfg.seed),
                     "--val-images", str(val_k),
                     *([] if cfg.search_workers is None else ["--workers", str(cfg.search_workers)])]
    if cfg.max_latency_ms is not None:
        search_common += ["--max-latency-ms", str(cfg.max_latency_ms)]
    stages.run("search-lgs", ["search", *search_common, "--sampler", "lgs", "--predictor", cfg.predictor,
                              "--out", str(out / "search-lgs")], "5/7 LGS search")
    stages.run("search-uniform", ["search", *search_common, "--sampler", "uniform", "--out", str(out / "search-uniform")],
               "5/7 uniform-sampling search (baseline, same budget)")
    arch_path, picked = _pick_architecture(out / "search-lgs", cfg.max_latency_ms)
    best = out / "best-arch.json"
    if not best.exists():
        _atomic_write(best, arch_path.read_text())
    stages.run("eval", ["eval", "--supernet", str(sup / "supernet.pt"), "--arch", str(best), "--data", str(data),
                        "--calib", str(data / "train"), "--skip-images", str(val_k), "--json"],
               "6/7 held-out metrics of the chosen architecture", stdout_to=out / "eval.jsonl")
    formats = cfg.formats or ",".join(runnable_formats())
    stages.run("export", ["export", "--space", cfg.space, "--arch", str(best), "--supernet", str(sup / "supernet.pt"),
                          "--formats", formats, "--out", str(out / "export")], f"7/7 export ({formats}) with parity")
    if stages.done("measure") is None:
        t0 = time.perf_counter()
        measured = _measure_artifacts(out / "export", cfg.threads, cfg.measure_runs)
        _atomic_write(out / "measured.json", json.dumps(measured, indent=2))
        stages.record("measure", time.perf_counter() - t0)
    from hwnas.quickstart_report import write_quickstart_report

    report = write_quickstart_report(out, cfg, picked, lut_file)
    print(f"\n[quickstart] finished in {(time.perf_counter() - t_start) / 60:.1f} min (this run); report: {report}")
    return report


# the formats whose runtime runs on this kind of machine (TensorRT needs an NVIDIA GPU, Core ML macOS)
QUICKSTART_FORMATS = ("onnx", "executorch", "openvino", "tflite")


def runnable_formats() -> list[str]:
    """The quickstart formats whose runtime's profiler is installed here (``deploy.formats``' runtime)."""
    import profilers
    from deploy import formats

    ready = profilers.available()
    return [f for f in QUICKSTART_FORMATS if ready.get(formats.get(f).runtime, (False,))[0]]


def _measure_artifacts(export_dir: Path, threads: int, runs: int | None = None) -> dict:
    """Median latency of the exported artifacts, each in its own runtime, one after the other."""
    import profilers
    from deploy import formats

    manifest = json.loads((export_dir / "manifest.json").read_text())
    shapes = [tuple(i["shape"]) for i in manifest["inputs"]]
    files = {a["format"]: a["file"] for a in manifest["artifacts"] if a.get("file") and a.get("status") == "passed"}
    ready = profilers.available()
    results = {}
    for fmt in files:
        backend = formats.get(fmt).runtime
        if not ready.get(backend, (False,))[0]:
            continue
        if runs is None:
            prof = profilers.get(backend, threads=threads)
        else:
            from profilers.stats import Protocol

            prof = profilers.get(backend, threads=threads, protocol=Protocol(runs=runs, min_time_s=0.0))
        m = prof.measure_artifact(export_dir / files[fmt], shapes)
        results[backend] = {"median_ms": m.median_ms, "p90_ms": m.p90_ms, "iqr_over_median": m.iqr_over_median,
                            "runs": m.runs, "artifact": files[fmt]}
    return results
