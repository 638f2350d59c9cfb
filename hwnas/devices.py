"""Where torch work runs: one parser for the ``--device`` spec of every command.

Specs: ``auto`` (the first GPU when CUDA is available, else the CPU), ``cpu``, ``cuda`` (the
current GPU; a torchrun process uses its local rank) and ``cuda:N``. A spec naming a GPU this
machine does not have is refused with the GPUs it does have, instead of failing deep inside torch.
"""

from __future__ import annotations

import re

from hwnas.errors import HwnasError

_SPEC = re.compile(r"^(auto|cpu|cuda(?::(\d+))?)$")


def _cuda_count() -> int:
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def check_device_spec(spec: str) -> str:
    """``spec`` unchanged when it names a device that exists here; :class:`HwnasError` otherwise."""
    m = _SPEC.match(spec.strip())
    if not m:
        raise HwnasError(f"unknown device {spec!r}; allowed: auto, cpu, cuda, cuda:N")
    if spec.startswith("cuda"):  # auto and cpu need no torch import at parse time
        count = _cuda_count()
        if count == 0:
            raise HwnasError(f"device {spec!r}: no CUDA GPU is available here; use cpu")
        if m.group(2) is not None and int(m.group(2)) >= count:
            raise HwnasError(f"device {spec!r}: this machine has {count} CUDA GPU(s), cuda:0..cuda:{count - 1}")
    return spec.strip()


def resolve_device(spec: str, local_rank: int | None = None):
    """The :class:`torch.device` of a checked spec; ``cuda`` means ``cuda:<local_rank>`` when given."""
    import torch

    spec = check_device_spec(spec)
    if spec == "auto":
        spec = "cuda" if _cuda_count() else "cpu"
    if spec == "cuda" and local_rank is not None:
        spec = f"cuda:{local_rank}"
    return torch.device(spec)
