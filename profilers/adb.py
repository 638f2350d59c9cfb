"""ExecuTorch on an Android phone through ``adb``: push the ``.pte``, run ``executor_runner`` pinned
to the big cores with ``taskset``, parse its per-iteration times.

``executor_runner`` (built from ExecuTorch's examples with the XNNPACK backend and pushed to the
phone once, e.g. ``/data/local/tmp/executor_runner``) logs ``Iteration i of N: X ms`` per
execution and ``Model executed successfully N time(s) in X ms.`` at the end. The first
``warmup_runs`` iterations are dropped as warm-up. ``taskset`` mask ``f0`` = CPUs 4–7, the big
cluster on most phones (LiteRT and nn-Meter practice); the mask and thread count are recorded.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import Sequence

from profilers.base import Profiler, Shape
from profilers.errors import ProfilerError
from profilers.stats import Measurement, from_external_samples

_ITER = re.compile(r"Iteration\s+(\d+)\s+of\s+(\d+):\s*([0-9.]+)\s*ms")
_TOTAL = re.compile(r"Model executed successfully\s+(\d+)\s+time\(s\)\s+in\s+([0-9.]+)\s*ms")


def parse_executor_runner(text: str) -> list[float]:
    """Per-execution times (ms) from executor_runner's log; ``ProfilerError`` if there are none."""
    samples = [float(m.group(3)) for m in _ITER.finditer(text)]
    if samples:
        return samples
    m = _TOTAL.search(text)
    if m:  # older runners print the total only: one averaged sample is all there is
        n, total = int(m.group(1)), float(m.group(2))
        return [total / n] if n else []
    raise ProfilerError("adb: executor_runner printed no 'Iteration i of N: X ms' or 'Model executed successfully' line; "
                        "log tail: " + text.strip()[-300:])


class ADBExecuTorch(Profiler):
    name = "adb"
    artifact_suffix = ".pte"
    runtime = "executorch"

    def __init__(self, threads: int = 4, precision: str = "fp32", protocol=None, serial: str | None = None,
                 runner: str = "/data/local/tmp/executor_runner", device_dir: str = "/data/local/tmp/hwnas",
                 taskset: str | None = "f0", timeout_s: float = 600.0):
        super().__init__(threads, precision, protocol)
        self.serial, self.runner, self.device_dir, self.taskset = serial, runner, device_dir, taskset
        self.timeout_s = float(timeout_s)

    @classmethod
    def check_available(cls) -> tuple[bool, str]:
        if not shutil.which("adb"):
            return False, "adb not on PATH (Android platform-tools); also needs executor_runner pushed to the phone"
        return True, "adb found; needs a connected phone with executor_runner"

    def runtime_version(self) -> str:
        return "executor_runner"

    def settings(self) -> dict:
        return {"threads": self.threads, "taskset": self.taskset, "runner": self.runner, "serial": self.serial}

    def _adb(self) -> list[str]:
        return ["adb", "-s", self.serial] if self.serial else ["adb"]

    def push_argv(self, local: str) -> list[str]:
        return [*self._adb(), "push", local, f"{self.device_dir}/{Path(local).name}"]

    def run_command(self, device_artifact: str, input_shapes: Sequence[Shape] = ()) -> str:
        """The shell command run on the phone (quoted): warm-up and timed runs in one process."""
        n = self.protocol.warmup_runs + self.protocol.runs
        argv = [self.runner, f"--model_path={device_artifact}", f"--num_executions={n}",
                f"--cpu_threads={self.threads}", "--print_output=none"]
        if self.taskset:
            argv = ["taskset", self.taskset, *argv]
        return f"mkdir -p {shlex.quote(self.device_dir)} && " + shlex.join(argv)

    def run_argv(self, device_artifact: str, input_shapes: Sequence[Shape] = ()) -> list[str]:
        return [*self._adb(), "shell", self.run_command(device_artifact, input_shapes)]

    def parse(self, text: str) -> Measurement:
        samples = parse_executor_runner(text)
        warm = self.protocol.warmup_runs
        if len(samples) <= warm:
            raise ProfilerError(f"adb: {len(samples)} executions logged, fewer than the {warm} warm-up runs + 1")
        return from_external_samples(samples[warm:], warm, self.protocol, info=self.settings())

    def export(self, model, example_inputs: tuple, path: Path) -> Path:
        from deploy.executorch_export import export_pte

        return Path(export_pte(model, tuple(example_inputs), path))

    def _call(self, argv: list[str], what: str) -> str:
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout_s)
        except (OSError, subprocess.TimeoutExpired) as e:
            raise ProfilerError(f"adb: {what} failed: {e}") from None
        if r.returncode != 0:
            raise ProfilerError(f"adb: {what} failed (exit {r.returncode}): {(r.stderr or r.stdout).strip()[-300:]}")
        return r.stdout + r.stderr

    def measure_artifact(self, path: Path, input_shapes: Sequence[Shape]) -> Measurement:
        ok, reason = self.check_available()
        if not ok:
            raise ProfilerError(f"adb unavailable: {reason}")
        self._call([*self._adb(), "shell", f"mkdir -p {shlex.quote(self.device_dir)}"], "creating the device directory")
        self._call(self.push_argv(str(path)), f"pushing {Path(path).name}")
        device_artifact = f"{self.device_dir}/{Path(path).name}"
        return self.parse(self._call(self.run_argv(device_artifact, input_shapes), "running executor_runner"))

    def device_info(self) -> dict:
        info = {"runtime": self.runtime, "runtime_version": self.runtime_version(), "threads": self.threads,
                "precision": self.precision, "backend": self.name, "settings": self.settings(),
                "logical_cores": None, "gpu_name": None, "gpu_driver": None}
        try:
            out = self._call([*self._adb(), "shell", "getprop ro.product.model; getprop ro.soc.model; nproc"],
                             "reading the phone's properties").split("\n")
            info.update(phone_model=out[0].strip(), cpu_model=out[1].strip() or out[0].strip(),
                        logical_cores=int(out[2]) if len(out) > 2 and out[2].strip().isdigit() else None)
        except ProfilerError:
            info["cpu_model"] = None
        return info
