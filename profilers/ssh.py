"""Run any backend on a remote host over SSH (how a Jetson or another server is profiled).

The artifact is exported here with the inner backend's exporter and measured there by the
backend's own runner: for the Python runtimes one long-lived ``python -m profilers.runner
--serve`` over a single SSH connection receives every artifact on stdin and answers with one JSON
line each (a table build pays one round trip per block, not a connection and an interpreter
start-up); for TensorRT the ONNX file is copied with ``scp`` and ``trtexec`` runs on the target. Connection details come from the
user's own OpenSSH configuration (keys, known hosts, ``ProxyJump``, ports): this module only
calls the ``ssh``/``scp`` binaries with argument lists, ``BatchMode=yes`` so it never hangs on a
prompt, and quotes the remote command with ``shlex``. On a Jetson the power-model and clock state
(``nvpmodel -q``, ``jetson_clocks --show``) is recorded in the fingerprint when readable.
"""

from __future__ import annotations

import base64
import copy
import json
import queue
import shlex
import shutil
import subprocess
import threading
from collections import deque
from pathlib import Path
from typing import Sequence

from profilers.base import Profiler, Shape
from profilers.errors import ProfilerError
from profilers.stats import Measurement

# prints key=value lines; every probe tolerates its tool being absent
_SHELL_FINGERPRINT = "; ".join([
    "echo hostname=$(hostname)",
    "echo cpu_model=$(grep -m1 -E '^(model name|Hardware|Model)' /proc/cpuinfo 2>/dev/null | cut -d: -f2-)",
    "echo logical_cores=$(nproc 2>/dev/null)",
    "echo governor=$(cat /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor 2>/dev/null)",
    "echo gpu=$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1)",
    "echo l4t=$(head -1 /etc/nv_tegra_release 2>/dev/null)",
    "echo nvpmodel=$(nvpmodel -q 2>/dev/null | tr '\\n' ' ')",
    "echo jetson_clocks=$(jetson_clocks --show 2>/dev/null | head -8 | tr '\\n' ' ')",
])


def parse_shell_fingerprint(text: str) -> dict:
    raw = {}
    for line in text.splitlines():
        if "=" in line:
            k, v = line.split("=", 1)
            raw[k.strip()] = v.strip() or None
    info = {k: raw.get(k) for k in ("hostname", "cpu_model", "governor", "l4t", "nvpmodel", "jetson_clocks")}
    cores = raw.get("logical_cores")
    info["logical_cores"] = int(cores) if cores and cores.isdigit() else None
    gpu = raw.get("gpu")
    if gpu:
        name, _, driver = gpu.partition(",")
        info["gpu_name"], info["gpu_driver"] = name.strip(), driver.strip() or None
    else:
        info["gpu_name"] = info["gpu_driver"] = None
    return info


class SSHProfiler(Profiler):
    """``profilers.get("ssh", host="jetson", backend="tensorrt", remote_python="python3")``."""

    name = "ssh"

    def __init__(self, host: str | None = None, backend: str = "onnxruntime-cpu", threads: int = 1,
                 precision: str = "fp32", protocol=None, remote_python: str = "python3",
                 ssh_config: str | None = None, port: int | None = None, timeout_s: float = 600.0, **backend_options):
        from profilers import get

        if not host:
            raise ProfilerError("ssh: a host is required (--host user@machine or a Host alias from ~/.ssh/config)")
        if backend == "ssh":
            raise ProfilerError("ssh: the inner backend cannot itself be ssh")
        self.inner = get(backend, threads=threads, precision=precision, protocol=protocol, **backend_options)
        super().__init__(threads, precision, self.inner.protocol)
        self.host, self.backend = host, backend
        self.remote_python = remote_python
        self.ssh_config, self.port, self.timeout_s = ssh_config, port, float(timeout_s)
        self.artifact_suffix = self.inner.artifact_suffix
        self.runtime = self.inner.runtime
        self._remote_dir: str | None = None
        self._device: dict | None = None
        self._server: subprocess.Popen | None = None
        self._lines: queue.Queue = queue.Queue()
        self._stderr: deque = deque(maxlen=20)

    def precisions(self) -> tuple[str, ...]:  # type: ignore[override]
        return ("fp32", "fp16")

    @classmethod
    def check_available(cls) -> tuple[bool, str]:
        missing = [b for b in ("ssh", "scp") if not shutil.which(b)]
        if missing:
            return False, f"OpenSSH client missing ({', '.join(missing)} not on PATH)"
        return True, "OpenSSH client found; needs --host and the inner --backend on the remote"

    # ------------------------------------------------------------------ transport
    def _opts(self, port_flag: str) -> list[str]:
        opts = ["-o", "BatchMode=yes"]
        if self.ssh_config:
            opts += ["-F", str(self.ssh_config)]
        if self.port:
            opts += [port_flag, str(self.port)]
        return opts

    def ssh_argv(self, remote_command: str) -> list[str]:
        return ["ssh", *self._opts("-p"), self.host, remote_command]

    def scp_argv(self, local: str, remote: str) -> list[str]:
        return ["scp", "-q", *self._opts("-P"), local, f"{self.host}:{remote}"]

    def _run(self, argv: list[str], what: str) -> str:
        try:
            r = subprocess.run(argv, capture_output=True, text=True, timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            raise ProfilerError(f"ssh {self.host}: {what} timed out after {self.timeout_s:.0f} s") from None
        except OSError as e:
            raise ProfilerError(f"ssh {self.host}: cannot run {argv[0]}: {e.strerror}") from None
        if r.returncode != 0:
            err = (r.stderr.strip() or r.stdout.strip())[-400:]
            raise ProfilerError(f"ssh {self.host}: {what} failed (exit {r.returncode}): {err}")
        return r.stdout

    def remote_dir(self) -> str:
        if self._remote_dir is None:
            out = self._run(self.ssh_argv("mktemp -d /tmp/hwnas-profile.XXXXXX"), "creating a remote work directory")
            self._remote_dir = out.strip().splitlines()[-1]
        return self._remote_dir

    # ------------------------------------------------------- persistent runner (python backends)
    def _serve_argv(self) -> list[str]:
        return [self.remote_python, "-m", "profilers.runner", "--serve", "--backend", self.backend,
                "--threads", str(self.threads), "--precision", self.precision,
                "--protocol", json.dumps(self.protocol.to_dict(), sort_keys=True),
                "--options", json.dumps(self.inner.options(), sort_keys=True)]

    def _next_line(self, what: str) -> dict:
        try:
            line = self._lines.get(timeout=self.timeout_s)
        except queue.Empty:
            self._stop_server()
            raise ProfilerError(f"ssh {self.host}: {what} timed out after {self.timeout_s:.0f} s") from None
        if line is None:  # the reader hit EOF: the remote runner exited
            err = " | ".join(self._stderr) or "no output"
            self._stop_server()
            raise ProfilerError(f"ssh {self.host}: the remote runner stopped during {what}: {err[-400:]}")
        return json.loads(line)

    def _start_server(self) -> None:
        cmd = f"cd {shlex.quote(self.remote_dir())} && {shlex.join(self._serve_argv())}"
        try:
            proc = subprocess.Popen(self.ssh_argv(cmd), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, bufsize=1)
        except OSError as e:
            raise ProfilerError(f"ssh {self.host}: cannot run ssh: {e.strerror}") from None
        self._server, self._lines = proc, queue.Queue()

        def pump_out(stream, q):
            for line in stream:
                if line.lstrip().startswith("{"):
                    q.put(line)
            q.put(None)

        def pump_err(stream, buf):
            for line in stream:
                buf.append(line.strip())

        threading.Thread(target=pump_out, args=(proc.stdout, self._lines), daemon=True).start()
        threading.Thread(target=pump_err, args=(proc.stderr, self._stderr), daemon=True).start()
        ready = self._next_line("starting the remote runner")
        if self._device is None:
            self._device = dict(ready["device"], backend=self.backend, via="ssh", host=self.host,
                                settings=self.settings())

    def _stop_server(self) -> None:
        proc, self._server = self._server, None
        if proc is None:
            return
        try:
            proc.stdin.close()
            proc.wait(timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()

    def close(self) -> None:
        self._stop_server()
        if self._remote_dir is not None:
            try:
                self._run(self.ssh_argv(f"rm -rf {shlex.quote(self._remote_dir)}"), "removing the remote work directory")
            except ProfilerError:
                pass  # cleanup of /tmp on a remote is best effort
            self._remote_dir = None

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    # -------------------------------------------------------------------- identity
    def runtime_version(self) -> str:
        return self.device_info().get("runtime_version", "unknown")

    def settings(self) -> dict:
        return dict(self.inner.settings(), via="ssh", host=self.host)

    def identity(self) -> dict:
        return dict(self.inner.identity(), settings=self.settings())

    def device_info(self) -> dict:
        if self._device is None:
            if self.inner.runtime == "tensorrt":
                info = parse_shell_fingerprint(self._run(self.ssh_argv(_SHELL_FINGERPRINT), "reading the fingerprint"))
                info.update(runtime=self.inner.runtime, runtime_version=self.inner.runtime_version(),
                            threads=self.threads, precision=self.precision)
            else:
                argv = [self.remote_python, "-m", "profilers.runner", "--device-info", "--backend", self.backend,
                        "--threads", str(self.threads), "--precision", self.precision,
                        "--options", json.dumps(self.inner.options(), sort_keys=True)]
                out = self._run(self.ssh_argv(shlex.join(argv)), "reading the fingerprint")
                info = json.loads(out.strip().splitlines()[-1])["device"]
            info.update(backend=self.backend, via="ssh", host=self.host, settings=self.settings())
            self._device = info
        return self._device

    # ------------------------------------------------------------------ measuring
    def export(self, model, example_inputs: tuple, path: Path) -> Path:
        return self.inner.export(model, example_inputs, path)

    def exporting_as(self, artifacts: dict | None) -> Profiler:
        inner = self.inner.exporting_as(artifacts)
        if inner is self.inner:
            return self
        clone = copy.copy(self)  # exports here with the other setting; measures over the same connection
        clone.inner = inner
        return clone

    @property
    def can_interleave(self) -> bool:  # the remote runner interleaves, where the inner backend can
        return self.inner.can_interleave and self.inner.runtime != "tensorrt"

    @property
    def has_node_profile(self) -> bool:
        return self.inner.has_node_profile and self.inner.runtime != "tensorrt"

    @staticmethod
    def _artifact(path: Path, input_shapes: Sequence[Shape], name: str) -> dict:
        from profilers.base import shapes_to_str

        return {"name": name, "shapes": shapes_to_str(input_shapes), "data_b64": base64.b64encode(Path(path).read_bytes()).decode()}

    def _ask(self, req: dict, what: str) -> dict:
        """One request to the persistent remote runner (``profilers.runner --serve``), one reply."""
        if self._server is None or self._server.poll() is not None:
            self._start_server()
        try:
            self._server.stdin.write(json.dumps(req) + "\n")
            self._server.stdin.flush()
        except OSError as e:
            self._stop_server()
            raise ProfilerError(f"ssh {self.host}: sending a request for {what} failed: {e}") from None
        reply = self._next_line(f"{what} on {self.backend}")
        if "error" in reply:
            raise ProfilerError(f"ssh {self.host}: remote {self.backend}: {reply['error']}")
        return reply

    def _remote(self, m: Measurement) -> Measurement:
        m.info = dict(m.info, via="ssh", host=self.host)
        return m

    def measure_artifact(self, path: Path, input_shapes: Sequence[Shape]) -> Measurement:
        if self.inner.runtime == "tensorrt":
            return self._measure_by_copy(path, input_shapes)
        reply = self._ask(self._artifact(path, input_shapes, f"model{self.artifact_suffix}"), "measuring")
        return self._remote(Measurement.from_dict(reply["measurement"]))

    def measure_together(self, artifacts: dict, seed: int = 0,
                         flush_bytes: dict[str, int] | None = None, reference: str | None = None) -> dict[str, Measurement]:
        if not self.can_interleave:
            raise ProfilerError(f"ssh {self.host}: {self.backend} cannot time artifacts interleaved")
        req = {"op": "together", "seed": int(seed), "flush_bytes": {k: int(v) for k, v in (flush_bytes or {}).items()},
               "reference": reference,
               "artifacts": {k: self._artifact(p, s, f"a{i}{self.artifact_suffix}") for i, (k, (p, s)) in enumerate(artifacts.items())}}
        reply = self._ask(req, "measuring interleaved")
        return {k: self._remote(Measurement.from_dict(m)) for k, m in reply["measurements"].items()}

    def node_profile(self, path: Path, input_shapes: Sequence[Shape], runs: int = 20, flush_bytes: int = 0):
        from profilers.base import NodeProfile

        if not self.has_node_profile:
            return None
        req = dict(self._artifact(path, input_shapes, f"profiled{self.artifact_suffix}"), op="node_profile", runs=int(runs),
                   flush_bytes=int(flush_bytes))
        got = self._ask(req, "profiling nodes")["node_profile"]
        return NodeProfile.from_dict(got) if got is not None else None

    def _measure_by_copy(self, path: Path, input_shapes: Sequence[Shape]) -> Measurement:
        remote = f"{self.remote_dir()}/model{self.artifact_suffix}"
        self._run(self.scp_argv(str(path), remote), f"copying {Path(path).name}")
        cmd = f"cd {shlex.quote(self.remote_dir())} && " + self.inner.remote_command(remote, input_shapes,
                                                                                      self.remote_python)
        out = self._run(self.ssh_argv(cmd), f"measuring on {self.backend}")
        m, remote_device = self.inner.parse_runner_output(out)
        if self._device is None and remote_device and self.inner.runtime != "tensorrt":
            self._device = dict(remote_device, backend=self.backend, via="ssh", host=self.host, settings=self.settings())
        m.info = dict(m.info, via="ssh", host=self.host)
        return m
