"""TensorRT through ``trtexec``: build an engine from ONNX on the target and time it there.

Engines are tied to the GPU, TensorRT version and precision they were built for, so the engine
is always built on the machine that measures (locally, or on a Jetson through ``profilers.ssh``).
Timing follows trtexec's own advice: ``--noDataTransfers --useCudaGraph --useSpinWait``, warm-up
and duration from the protocol, per-inference times exported with ``--exportTimes`` (a JSON list
of records with ``latencyMs``/``computeMs``), from which the statistics are computed. The
TensorRT version, the device trtexec selected and the precision it built are parsed from its log.

TensorRT is not installable from PyPI in a usable form: where ``trtexec`` is missing, the
backend is listed unavailable with that reason.
"""

from __future__ import annotations

import json
import math
import re
import shlex
import subprocess
import tempfile
from pathlib import Path
from typing import Sequence

from deploy.tensorrt_export import JETSON_TRTEXEC as JETPACK_TRTEXEC  # one lookup of trtexec, in deploy
from deploy.tensorrt_export import find_trtexec
from profilers.base import Profiler, Shape
from profilers.errors import ProfilerError
from profilers.fingerprint import nvidia_smi_info
from profilers.stats import Measurement, from_external_samples

TIMES_MARK = "@@HWNAS-TRTEXEC-TIMES@@"


def parse_times(text: str) -> list[float]:
    """Per-inference latencies (ms) from a ``--exportTimes`` JSON document."""
    try:
        records = json.loads(text)
    except json.JSONDecodeError as e:
        raise ProfilerError(f"tensorrt: --exportTimes output is not JSON ({e})") from None
    if not isinstance(records, list):
        raise ProfilerError("tensorrt: --exportTimes output is not a JSON list")
    out = []
    for r in records:
        if not isinstance(r, dict):
            continue
        v = r.get("latencyMs", r.get("computeMs"))  # some versions open with a {"count": N} record
        if isinstance(v, (int, float)):
            out.append(float(v))
    if not out:
        raise ProfilerError("tensorrt: --exportTimes holds no per-inference latencyMs/computeMs records")
    return out


def parse_log(text: str) -> dict:
    """TensorRT version, selected device and precision flags from trtexec's log."""
    info = {}
    m = re.search(r"TensorRT version:\s*([\d.]+)", text)
    if m:
        info["tensorrt_version"] = m.group(1)
    m = re.search(r"Selected Device:\s*(.+)", text)
    if m:
        info["gpu_name"] = m.group(1).strip()
    m = re.search(r"Precision:\s*(.+)", text)
    if m:
        info["precision_line"] = m.group(1).strip()
    m = re.search(r"&&&& (PASSED|FAILED)", text)
    if m:
        info["status"] = m.group(1)
    return info


class TensorRT(Profiler):
    name = "tensorrt"
    artifact_suffix = ".onnx"
    runtime = "tensorrt"

    def __init__(self, threads: int = 1, precision: str = "fp32", protocol=None, trtexec: str | None = None,
                 use_cuda_graph: bool = True):
        super().__init__(threads, precision, protocol)
        self.trtexec = trtexec
        self.use_cuda_graph = bool(use_cuda_graph)
        self._log_info: dict = {}

    @classmethod
    def precisions(cls) -> tuple[str, ...]:
        return ("fp32", "fp16")

    @classmethod
    def check_available(cls) -> tuple[bool, str]:
        exe = find_trtexec()
        if exe:
            return True, f"trtexec at {exe}"
        return False, ("TensorRT not found: no trtexec on PATH or at /usr/src/tensorrt/bin/trtexec (PyPI's tensorrt "
                       "is not usable here; install NVIDIA's packages or JetPack, or profile a Jetson with --host)")

    def _exe(self) -> str:
        exe = self.trtexec or find_trtexec()
        if not exe:
            raise ProfilerError(self.check_available()[1])
        return exe

    def runtime_version(self) -> str:
        return self._log_info.get("tensorrt_version", "unknown")

    def settings(self) -> dict:
        return {"precision": self.precision, "use_cuda_graph": self.use_cuda_graph, "no_data_transfers": True,
                "spin_wait": True}

    def options(self) -> dict:
        return {"use_cuda_graph": self.use_cuda_graph}

    def device_info(self) -> dict:
        info = super().device_info()
        info.update(nvidia_smi_info())
        if self._log_info.get("gpu_name"):
            info["gpu_name"] = self._log_info["gpu_name"]
        return info

    def export(self, model, example_inputs: tuple, path: Path) -> Path:
        from deploy.onnx_export import export_onnx

        return Path(export_onnx(model, example_inputs, path))

    def trtexec_argv(self, onnx: str, times_json: str, exe: str = "trtexec") -> list[str]:
        p = self.protocol
        argv = [exe, f"--onnx={onnx}", f"--warmUp={max(200, int(p.warmup_s * 1000))}",
                f"--iterations={p.runs}", f"--duration={max(1, math.ceil(p.min_time_s))}", "--avgRuns=1",
                f"--exportTimes={times_json}", "--noDataTransfers", "--useSpinWait", "--separateProfileRun"]
        if self.use_cuda_graph:
            argv.append("--useCudaGraph")
        if self.precision == "fp16":
            argv.append("--fp16")
        return argv

    def _measurement(self, times_text: str, log_text: str) -> Measurement:
        self._log_info = parse_log(log_text)
        if self._log_info.get("status") == "FAILED":
            raise ProfilerError("tensorrt: trtexec reported FAILED; log tail: " + log_text.strip()[-300:])
        samples = parse_times(times_text)
        # trtexec's warm-up is time-based (--warmUp ms); the run count is not reported, so record 0
        return from_external_samples(samples, 0, self.protocol, info=dict(self.settings(), **self._log_info))

    def measure_artifact(self, path: Path, input_shapes: Sequence[Shape]) -> Measurement:
        exe = self._exe()
        with tempfile.TemporaryDirectory(prefix="hwnas-trt-") as d:
            times = Path(d) / "times.json"
            r = subprocess.run(self.trtexec_argv(str(path), str(times), exe), capture_output=True, text=True)
            log = r.stdout + r.stderr
            if r.returncode != 0 or not times.exists():
                raise ProfilerError(f"tensorrt: trtexec exited {r.returncode}; log tail: {log.strip()[-300:]}")
            return self._measurement(times.read_text(), log)

    # remote (Jetson): trtexec's log goes first, then a marker line, then the times JSON
    def remote_command(self, artifact: str, input_shapes: Sequence[Shape], python: str = "python3") -> str:
        times = artifact + ".times.json"
        args = shlex.join(self.trtexec_argv(artifact, times)[1:])
        # the user's trtexec if given, else one on PATH, else JetPack's location
        exe = shlex.quote(self.trtexec) if self.trtexec else f"\"$(command -v trtexec || echo {JETPACK_TRTEXEC})\""
        return f"{exe} {args} 2>&1; echo {TIMES_MARK}; cat {shlex.quote(times)}"

    def parse_runner_output(self, stdout: str) -> tuple[Measurement, dict]:
        if TIMES_MARK not in stdout:
            raise ProfilerError(f"tensorrt: remote trtexec printed no times; output ends with: {stdout.strip()[-300:]!r}")
        log, times = stdout.split(TIMES_MARK, 1)
        m = self._measurement(times.strip(), log)
        return m, {k: v for k, v in self._log_info.items() if k in ("gpu_name", "tensorrt_version")}
