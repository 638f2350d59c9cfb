"""The schema of a search-space definition, checked once when a space is loaded.

:func:`check_space_config` walks the raw mapping (a YAML file's content, or the definition a
checkpoint stores) before anything is built from it, and raises :class:`SpaceError` naming the
field (``stages[2].stride``) and what is allowed. Every integer field must be a YAML integer:
``64.5`` or ``"64"`` is refused rather than truncated or converted, and ``true`` is not 1.

What it enforces, and why:

* non-empty, duplicate-free choice lists (an empty list has nothing to sample);
* widths, depths, expand ratios, channels and resolutions >= 1, strides >= 1;
* kernel sizes odd and in 1..9: "same" padding needs an odd kernel, and the compact architecture
  string writes a kernel set as single digits (``35`` = {3, 5});
* head level ``i`` is fed by a stage whose output stride is 2**i (the head upsamples by 2 per
  level), and every resolution is divisible by the network's total stride;
* no unknown keys in the parts this schema describes, so a typo (``kernel_size`` for
  ``kernel_sizes``) is named instead of ignored.

A cell backbone's genotype is checked by :mod:`hwnas.cells.genotype`; this module checks its
numeric options.
"""

from __future__ import annotations

import math
from typing import Any

from hwnas.errors import SpaceError

NUM_LEVELS = 5
KERNEL_SIZES = (1, 3, 5, 7, 9)  # odd and single-digit: see the module docstring
TOP_LEVEL_KEYS = ("name", "description", "resolutions", "stem", "se_ratio", "stages", "head", "backbone")
STEM_KEYS = ("widths", "kernel_size", "stride")
STAGE_KEYS = ("expand_ratio", "stride", "widths", "depths", "kernel_sizes")
HEAD_KEYS = ("level_stages", "channels", "transport_kernel_sizes", "decoder_kernel_sizes")
CELL_BACKBONE_INT_KEYS = ("channels", "cells_per_level", "stem_channels")


class _Schema:
    def __init__(self, source: str):
        self.source = source

    def fail(self, field: str, problem: str) -> SpaceError:
        return SpaceError(f"search space {self.source}: {field}: {problem}")

    def mapping(self, value: Any, field: str, required: tuple[str, ...], allowed: tuple[str, ...]) -> dict:
        if not isinstance(value, dict):
            raise self.fail(field, f"expected a mapping with keys {list(allowed)}, got {_show(value)}")
        unknown = [k for k in value if k not in allowed]
        if unknown:
            raise self.fail(field, f"unknown key(s) {unknown}; allowed: {list(allowed)}")
        missing = [k for k in required if k not in value]
        if missing:
            raise self.fail(field, f"missing key(s) {missing}")
        return value

    def integer(self, value: Any, field: str, minimum: int = 1, kernel: bool = False, entry: bool = False) -> int:
        """``entry``: ``value`` is one element of the list ``field``."""
        got = f"got {'entry ' if entry else ''}{_show(value)}"
        if isinstance(value, bool) or not isinstance(value, int):
            expected = "odd kernel sizes" if kernel else f"integers >= {minimum}"
            raise self.fail(field, f"expected {expected}, {got}")
        if kernel and value not in KERNEL_SIZES:
            raise self.fail(field, f"kernel size {value} not allowed; allowed: {list(KERNEL_SIZES)} (odd, single digit)")
        if value < minimum:
            raise self.fail(field, f"must be >= {minimum}, {got}")
        return value

    def integers(self, value: Any, field: str, minimum: int = 1, kernel: bool = False,
                 length: int | None = None, distinct: bool = True) -> list[int]:
        if not isinstance(value, list) or not value:
            raise self.fail(field, f"expected a non-empty list of integers, got {_show(value)}")
        out = [self.integer(v, field, minimum, kernel, entry=True) for v in value]
        if length is not None and len(out) != length:
            raise self.fail(field, f"expected {length} entries (one per head level), got {len(out)}")
        if distinct and len(set(out)) != len(out):
            raise self.fail(field, f"choices must be distinct, got {out}")
        return out


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_space_config(config: Any, source: str) -> None:
    """Raise :class:`SpaceError` for the first field of ``config`` outside the schema."""
    s = _Schema(source)
    if not isinstance(config, dict):
        raise SpaceError(f"search space {source}: expected a mapping at the top level, got {type(config).__name__}")
    unknown = [k for k in config if k not in TOP_LEVEL_KEYS]
    if unknown:
        raise SpaceError(f"search space {source}: unknown top-level key(s) {unknown}; allowed: {list(TOP_LEVEL_KEYS)}")
    for key in ("name", "resolutions", "head"):
        if key not in config:
            raise SpaceError(f"search space {source}: missing top-level key {key!r}")
    if not isinstance(config["name"], str) or not config["name"].strip():
        raise s.fail("name", f"expected a non-empty string, got {_show(config['name'])}")
    if not isinstance(config.get("description", ""), str):
        raise s.fail("description", f"expected a string, got {_show(config['description'])}")
    resolutions = s.integers(config["resolutions"], "resolutions")

    backbone = config.get("backbone")
    kind = "mbconv"
    if backbone is not None:
        if not isinstance(backbone, dict) or not isinstance(backbone.get("type", "mbconv"), str):
            raise s.fail("backbone", f"expected a mapping with a 'type' (mbconv or cells), got {_show(backbone)}")
        kind = backbone.get("type", "mbconv")
    if kind == "cells":
        for key in CELL_BACKBONE_INT_KEYS:
            if key in backbone:
                s.integer(backbone[key], f"backbone.{key}")
        head = s.mapping(config["head"], "head", HEAD_KEYS[1:], HEAD_KEYS)
        _check_head_widths(s, head)
        total_stride = 2**NUM_LEVELS
    elif kind == "mbconv":
        total_stride = _check_mbconv(s, config)
    else:
        return  # another backbone type: SearchSpace names the allowed ones
    for r in resolutions:
        if r % total_stride:
            raise s.fail("resolutions", f"{r} is not divisible by the network's total stride {total_stride}")


def _check_head_widths(s: _Schema, head: dict) -> None:
    s.integers(head["channels"], "head.channels", length=NUM_LEVELS, distinct=False)
    for key in ("transport_kernel_sizes", "decoder_kernel_sizes"):
        s.integers(head[key], f"head.{key}", kernel=True)


def _check_mbconv(s: _Schema, config: dict) -> int:
    """Check stem, se_ratio, stages and head of an MBConv backbone; the network's total stride."""
    for key in ("stem", "stages"):
        if key not in config:
            raise s.fail(key, "missing (an MBConv backbone needs stem and stages)")
    stem = s.mapping(config["stem"], "stem", ("widths",), STEM_KEYS)
    s.integers(stem["widths"], "stem.widths")
    s.integer(stem.get("kernel_size", 3), "stem.kernel_size", kernel=True)
    stride = s.integer(stem.get("stride", 2), "stem.stride")
    se_ratio = config.get("se_ratio", 0.25)
    if isinstance(se_ratio, bool) or not isinstance(se_ratio, (int, float)) or not math.isfinite(se_ratio) \
            or not 0 <= se_ratio < 1:
        raise s.fail("se_ratio", f"expected a number in [0, 1) (0 = no squeeze-excite), got {_show(se_ratio)}")
    stages = config["stages"]
    if not isinstance(stages, list) or not stages:
        raise s.fail("stages", f"expected a non-empty list of stages, got {_show(stages)}")
    strides = []
    for i, st in enumerate(stages, 1):
        field = f"stages[{i}]"
        st = s.mapping(st, field, STAGE_KEYS, STAGE_KEYS)
        s.integer(st["expand_ratio"], f"{field}.expand_ratio")
        stride *= s.integer(st["stride"], f"{field}.stride")
        strides.append(stride)
        s.integers(st["widths"], f"{field}.widths")
        s.integers(st["depths"], f"{field}.depths")
        s.integers(st["kernel_sizes"], f"{field}.kernel_sizes", kernel=True)
    head = s.mapping(config["head"], "head", HEAD_KEYS, HEAD_KEYS)
    levels = s.integers(head["level_stages"], "head.level_stages", length=NUM_LEVELS)
    if levels != sorted(levels) or levels[-1] > len(stages):
        raise s.fail("head.level_stages", f"expected increasing stage numbers in 1..{len(stages)}, got {levels}")
    for level, stage in enumerate(levels, 1):
        if strides[stage - 1] != 2**level:
            raise s.fail("head.level_stages",
                         f"head level {level} needs features at stride {2**level}; stage {stage}'s output "
                         f"has stride {strides[stage - 1]}")
    _check_head_widths(s, head)
    return strides[-1]
