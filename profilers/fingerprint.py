"""Device fingerprint: what a latency number is only valid for.

Every measurement and every latency table carries one. :func:`identity` picks the fields that
must match for two numbers to be comparable (CPU model and cores, CPU signature and vector
extensions, GPU and driver, runtime and version, threads, precision); the rest (governor, host
name, kernel) is recorded for the reader.

The CPU's *name* is not enough: a hypervisor may show every host as "AMD EPYC". Its signature
(vendor, family, model, stepping) and its vector extensions (which kernels XNNPACK, oneDNN and
ONNX Runtime pick) tell hosts apart that the name does not. Fingerprints written before hwnas
recorded them lack these two fields; a field missing on either side is not compared (it cannot
tell), every other field still is. This does not catch a host of the same CPU that runs slower
(a busy neighbour, a lower clock): the tables' reference model does (``lut validate`` reports how
the reference's speed compares with the build's).
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

# the fields two tables must share to be mixed or compared; order = order of the error message
IDENTITY_FIELDS = ("cpu_model", "logical_cores", "cpu_signature", "cpu_vector_extensions", "gpu_name", "gpu_driver",
                   "runtime", "runtime_version", "threads", "precision")
# identity fields that fingerprints of earlier hwnas versions lack: compared only where both have them
_LATER_FIELDS = ("cpu_signature", "cpu_vector_extensions")
# the flags that change which kernels a runtime runs (x86 SIMD; Arm's are in "Features")
_VECTOR_FLAGS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
                 "avx512_fp16", "avx_vnni", "amx_tile", "amx_bf16", "amx_int8", "asimd", "asimddp", "sve", "sve2", "i8mm",
                 "bf16", "fphp", "asimdhp")


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


def _cpuinfo_first() -> dict[str, str]:
    """The first processor's ``key: value`` lines of /proc/cpuinfo (lower-case keys), or {}."""
    out: dict[str, str] = {}
    for line in (_read("/proc/cpuinfo") or "").splitlines():
        if not line.strip():
            if out:
                break
            continue
        if ":" in line:
            k, v = line.split(":", 1)
            out.setdefault(k.strip().lower(), v.strip())
    return out


def cpu_signature() -> str | None:
    """``vendor family/model/stepping`` (x86) or ``implementer/part/variant`` (Arm) from /proc/cpuinfo."""
    info = _cpuinfo_first()
    if "cpu family" in info:
        return (f"{info.get('vendor_id', '?')} family {info['cpu family']} model {info.get('model', '?')} "
                f"stepping {info.get('stepping', '?')}")
    if "cpu implementer" in info:
        return f"arm implementer {info['cpu implementer']} part {info.get('cpu part', '?')} variant {info.get('cpu variant', '?')}"
    return None


def cpu_vector_extensions() -> str | None:
    """The vector extensions among the CPU's flags that change which kernels run, space-separated."""
    info = _cpuinfo_first()
    flags = set((info.get("flags") or info.get("features") or "").split())
    if not flags:
        return None
    return " ".join(f for f in _VECTOR_FLAGS if f in flags)


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
        "cpu_signature": cpu_signature(),
        "cpu_vector_extensions": cpu_vector_extensions(),
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
    diffs = [f"{k}: {ia[k]!r} vs {ib[k]!r}" for k in IDENTITY_FIELDS if ia[k] != ib[k]
             and not (k in _LATER_FIELDS and (k not in a or k not in b))]
    return "; ".join(diffs) if diffs else None
