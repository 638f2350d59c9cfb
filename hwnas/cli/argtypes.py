"""Checked argparse types for every numeric, list and device option of ``hwnas``.

A bad value is refused while the command line is parsed, as one line naming the option and what
it accepts (``argument --batch-size: expected an integer >= 1, got '0'``), before any slow work
starts. Use these instead of ``type=int``/``type=float`` so that no user mistake reaches the code
as a value it cannot handle (a zero batch size, a NaN learning rate, ``cuda:7`` on a one-GPU box).
"""

from __future__ import annotations

import argparse
import math


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None


def positive_int(text: str) -> int:
    """An integer >= 1 (batch sizes, counts, epochs, steps)."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected an integer >= 1, got {text!r}")
    return value


def threads_or_auto(text: str) -> int | str:
    """An integer >= 1, or ``auto`` (chosen by a probe where it is used)."""
    return "auto" if text == "auto" else positive_int(text)


def non_negative_int(text: str) -> int:
    """An integer >= 0 (worker processes where 0 = in-process, optional extras)."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return value


def _float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
    return value


def positive_float(text: str) -> float:
    """A finite number > 0 (learning rates, minutes, latency caps); nan and inf are refused."""
    value = _float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (weight decay, gradient clip where 0 = off, minimum seconds)."""
    value = _float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, got {text!r}")
    return value


def probability(text: str) -> float:
    """A number in [0, 1]."""
    value = _float(text)
    if not 0 <= value <= 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1], got {text!r}")
    return value


def fraction_below_one(text: str) -> float:
    """A number in [0, 1) (a held-out share: 1 would leave nothing to train on)."""
    value = _float(text)
    if not 0 <= value < 1:
        raise argparse.ArgumentTypeError(f"expected a number in [0, 1), got {text!r}")
    return value


def int_list(text: str) -> list[int]:
    """Comma-separated integers >= 1, at least one (``320`` or ``256,320``); duplicates are dropped."""
    parts = [p.strip() for p in text.split(",")]
    if not any(parts):
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, e.g. 320 or 256,320; got {text!r}")
    out: list[int] = []
    for part in parts:
        if not part:
            raise argparse.ArgumentTypeError(f"empty entry in {text!r}; expected comma-separated integers, e.g. 256,320")
        value = _int(part)
        if value < 1:
            raise argparse.ArgumentTypeError(f"expected integers >= 1, got {part!r} in {text!r}")
        if value not in out:
            out.append(value)
    return out


def shard(text: str) -> tuple[int, int]:
    """``I/K``: part I of K (1 <= I <= K) of work split over K processes."""
    try:
        i, k = (int(x) for x in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected I/K, e.g. 1/3; got {text!r}") from None
    if not 1 <= i <= k:
        raise argparse.ArgumentTypeError(f"need 1 <= I <= K, got {text!r}")
    return i, k


def device(text: str) -> str:
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N``, refused unless that device exists here.

    Returns the spec as given (``auto`` is resolved where it is used: a torchrun process maps
    ``cuda`` to its local rank); :func:`hwnas.devices.resolve_device` turns it into a device.
    """
    from hwnas.devices import check_device_spec
    from hwnas.errors import HwnasError

    try:
        return check_device_spec(text)
    except HwnasError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def key_value(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` (a backend option); the value is read as JSON when it parses (``2``, ``true``,
    ``"x"``), else kept as text."""
    import json

    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not key.strip().isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with a Python-style key, got {text!r}")
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value
