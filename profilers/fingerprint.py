"""Device fingerprint: what a latency number is only valid for.

Every measurement and every latency table carries one. :func:`identity` picks the fields that
must match for two numbers to be comparable (CPU model and cores, GPU and driver, runtime and
version, threads, precision); the rest (governor, host name, kernel) is recorded for the reader.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

# the fields two tables must share to be mixed or compared; order = order of the error message
IDENTITY_FIELDS = ("cpu_model", "logical_cores", "gpu_name", "gpu_driver", "runtime", "runtime_version",
                   "threads", "precision")


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def cpu_model() -> str:
    text = _read("/proc/cpuinfo") or ""
    for line in text.splitlines():
        if line.lower().startswith(("model name", "hardware", "cpu model")):
            return line.split(":", 1)[1].strip()
    if platform.system() == "Darwin":
        try:
            return subprocess.run(["sysctl", "-n", "machdep.cpu.brand_string"], capture_output=True, text=True,
                                  timeout=5).stdout.strip() or platform.processor()
        except (OSError, subprocess.SubprocessError):
            pass
    return platform.processor() or platform.machine()


def physical_cores() -> int | None:
    text = _read("/proc/cpuinfo")
    if not text:
        return None
    pairs = set()
    phys = core = None
    for line in text.splitlines() + [""]:
        if line.startswith("physical id"):
            phys = line.split(":", 1)[1].strip()
        elif line.startswith("core id"):
            core = line.split(":", 1)[1].strip()
        elif not line.strip():
            if core is not None:
                pairs.add((phys, core))
            phys = core = None
    return len(pairs) or None


def host_info() -> dict:
    """CPU side of the fingerprint, readable without any ML runtime."""
    try:
        affinity = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    return {
        "hostname": platform.node(),
        "os": f"{platform.system()} {platform.release()}",
        "machine": platform.machine(),
        "cpu_model": cpu_model(),
        "logical_cores": os.cpu_count(),
        "physical_cores": physical_cores(),
        "usable_cores": affinity,
        "governor": _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "cpu_max_mhz": (lambda v: int(v) // 1000 if v and v.isdigit() else None)(
            _read("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq")),
        "python": platform.python_version(),
        "gpu_name": None,
        "gpu_driver": None,
    }


def nvidia_smi_info() -> dict:
    """GPU name, driver and clocks from nvidia-smi, or {} where there is none."""
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=name,driver_version,clocks.sm,clocks.max.sm", "--format=csv,noheader,nounits"],
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return {}
    if out.returncode != 0 or not out.stdout.strip():
        return {}
    name, driver, sm, sm_max = [x.strip() for x in out.stdout.splitlines()[0].split(",")][:4]
    return {"gpu_name": name, "gpu_driver": driver, "gpu_sm_clock_mhz": sm, "gpu_max_sm_clock_mhz": sm_max}


def identity(fingerprint: dict) -> dict:
    return {k: fingerprint.get(k) for k in IDENTITY_FIELDS}


def mismatch(a: dict, b: dict) -> str | None:
    """A readable description of the first identity field where two fingerprints differ, or None."""
    ia, ib = identity(a), identity(b)
    diffs = [f"{k}: {ia[k]!r} vs {ib[k]!r}" for k in IDENTITY_FIELDS if ia[k] != ib[k]]
    return "; ".join(diffs) if diffs else None
