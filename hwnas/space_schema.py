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

The backbone's part of the definition is checked by its class (``check_schema`` in
:mod:`hwnas.backbones`, with the :class:`Schema` helpers below): a new backbone brings its own
rules. A cell backbone's genotype is checked by :mod:`hwnas.cells.genotype`.
"""

from __future__ import annotations

from typing import Any

from hwnas import backbones
from hwnas.errors import SpaceError
from hwnas.levels import NUM_LEVELS

KERNEL_SIZES = (1, 3, 5, 7, 9)  # odd and single-digit: see the module docstring
TOP_LEVEL_KEYS = ("name", "description", "resolutions", "stem", "se_ratio", "stages", "head", "backbone")
HEAD_KEYS = ("level_stages", "channels", "transport_kernel_sizes", "decoder_kernel_sizes")


class Schema:
    """Field checks that raise :class:`SpaceError` naming the field and what is allowed."""

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

    def head(self, head: Any, level_stages: bool) -> dict:
        """The ``head`` mapping: 5 channel counts and the kernel choices (and ``level_stages`` when the
        backbone has stages to pick from; it is then returned unchecked for the backbone to check)."""
        head = self.mapping(head, "head", HEAD_KEYS if level_stages else HEAD_KEYS[1:], HEAD_KEYS)
        self.integers(head["channels"], "head.channels", length=NUM_LEVELS, distinct=False)
        for key in ("transport_kernel_sizes", "decoder_kernel_sizes"):
            self.integers(head[key], f"head.{key}", kernel=True)
        return head

    @staticmethod
    def show(value: Any) -> str:
        return _show(value)


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_space_config(config: Any, source: str) -> None:
    """Raise :class:`SpaceError` for the first field of ``config`` outside the schema."""
    s = Schema(source)
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
    if kind not in backbones.names():
        return  # SearchSpace names the allowed ones
    total_stride = backbones.backbone_class(kind, source).check_schema(s, config)
    for r in resolutions:
        if r % total_stride:
            raise s.fail("resolutions", f"{r} is not divisible by the network's total stride {total_stride}")
