"""Architectures of the iNAS SOD search space as typed, immutable values.

An :class:`Arch` fixes every searchable choice of the integral SOD space (thesis §3.2.1):

* ``resolution`` — square input side in pixels;
* ``stem_width`` — output channels of the stride-2 3x3 stem conv;
* ``stages`` — one :class:`StageArch` per backbone MBConv stage: ``width`` (output channels of
  every layer of the stage) and, per layer, the SMSU kernel set (its length is the stage depth);
  empty in a space whose backbone is a fixed cell stack (``backbone: {type: cells}``);
* ``transport`` — one :class:`LevelArch` per head level 1..5: ``inputs`` are the levels whose
  backbone features this level aggregates (always including itself), ``kernel_sizes`` the SMSU
  kernel set of its fusion;
* ``decoder`` — likewise; ``inputs`` always holds the level itself and (below level 5) level
  ``i+1``, which are fixed, plus any searchable coarser levels.

Levels are numbered 1..5 as in the thesis (level 1 = stride 2, level 5 = stride 32).

Compact string form (documented, lossless, what logs and file names use)::

    r320_c32_b[16:3|24:3.3|40:35.3579|...]_t[12:357|123:3|...]_d[12:3|234:35|...]

``r`` resolution, ``c`` stem width, ``b[...]`` backbone stages separated by ``|``, each
``width:kernels`` with one kernel set per layer separated by ``.`` (a kernel set is its sorted
single-digit kernels, so ``35`` = {3, 5}); ``t[...]``/``d[...]`` transport/decoder levels 1..5,
each ``input-levels:kernels``.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass
from typing import Any

from hwnas.errors import ArchError

KernelSet = tuple[int, ...]


def _kernel_set(value: Any, field: str) -> KernelSet:
    if isinstance(value, int):
        value = [value]
    if not isinstance(value, (list, tuple)) or not value:
        raise ArchError(f"{field}: expected a non-empty list of kernel sizes, got {value!r}")
    out = []
    for k in value:
        if not isinstance(k, int) or isinstance(k, bool):
            raise ArchError(f"{field}: kernel sizes must be integers, got {k!r}")
        out.append(k)
    if len(set(out)) != len(out):
        raise ArchError(f"{field}: kernel sizes must be distinct, got {list(value)}")
    return tuple(sorted(out))


def _levels(value: Any, field: str) -> tuple[int, ...]:
    if not isinstance(value, (list, tuple)) or not value:
        raise ArchError(f"{field}: expected a non-empty list of levels, got {value!r}")
    out = []
    for level in value:
        if not isinstance(level, int) or isinstance(level, bool):
            raise ArchError(f"{field}: levels must be integers, got {level!r}")
        out.append(level)
    if len(set(out)) != len(out):
        raise ArchError(f"{field}: levels must be distinct, got {list(value)}")
    return tuple(sorted(out))


def _int(value: Any, field: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ArchError(f"{field}: expected an integer, got {value!r}")
    return value


@dataclass(frozen=True)
class StageArch:
    """One backbone stage: every layer has ``width`` output channels; ``depth`` = len(layers)."""

    width: int
    kernel_sizes: tuple[KernelSet, ...]  # one SMSU kernel set per layer

    @property
    def depth(self) -> int:
        return len(self.kernel_sizes)


@dataclass(frozen=True)
class LevelArch:
    """One head level (transport or decoder): the levels it fuses and its SMSU kernel set."""

    inputs: tuple[int, ...]
    kernel_sizes: KernelSet


@dataclass(frozen=True)
class Arch:
    resolution: int
    stem_width: int
    stages: tuple[StageArch, ...]
    transport: tuple[LevelArch, ...]
    decoder: tuple[LevelArch, ...]

    # ----------------------------------------------------------------------------------- JSON
    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        # tuples become lists in JSON; keep the structure explicit and stable
        return json.loads(json.dumps(d))

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, d: Any) -> Arch:
        if not isinstance(d, dict):
            raise ArchError(f"architecture: expected a JSON object, got {type(d).__name__}")
        expected = {"resolution", "stem_width", "stages", "transport", "decoder"}
        missing = expected - d.keys()
        if missing:
            raise ArchError(f"architecture: missing field(s) {sorted(missing)}")
        unknown = d.keys() - expected
        if unknown:
            raise ArchError(f"architecture: unknown field(s) {sorted(unknown)}; allowed: {sorted(expected)}")
        stages = d["stages"]
        if not isinstance(stages, list):  # empty in a space with a fixed (cell) backbone
            raise ArchError("stages: expected a list")
        parsed_stages = []
        for i, s in enumerate(stages, start=1):
            if not isinstance(s, dict) or set(s) != {"width", "kernel_sizes"}:
                raise ArchError(f"stages[{i}]: expected an object with 'width' and 'kernel_sizes', got {s!r}")
            ks = s["kernel_sizes"]
            if not isinstance(ks, list) or not ks:
                raise ArchError(f"stages[{i}].kernel_sizes: expected one kernel set per layer, got {ks!r}")
            parsed_stages.append(
                StageArch(
                    width=_int(s["width"], f"stages[{i}].width"),
                    kernel_sizes=tuple(_kernel_set(k, f"stages[{i}].kernel_sizes[{j}]") for j, k in enumerate(ks, 1)),
                )
            )

        def levels(name: str) -> tuple[LevelArch, ...]:
            items = d[name]
            if not isinstance(items, list) or not items:
                raise ArchError(f"{name}: expected a non-empty list of levels")
            out = []
            for i, lv in enumerate(items, start=1):
                if not isinstance(lv, dict) or set(lv) != {"inputs", "kernel_sizes"}:
                    raise ArchError(f"{name}[{i}]: expected an object with 'inputs' and 'kernel_sizes', got {lv!r}")
                out.append(
                    LevelArch(
                        inputs=_levels(lv["inputs"], f"{name}[{i}].inputs"),
                        kernel_sizes=_kernel_set(lv["kernel_sizes"], f"{name}[{i}].kernel_sizes"),
                    )
                )
            return tuple(out)

        return cls(
            resolution=_int(d["resolution"], "resolution"),
            stem_width=_int(d["stem_width"], "stem_width"),
            stages=tuple(parsed_stages),
            transport=levels("transport"),
            decoder=levels("decoder"),
        )

    @classmethod
    def from_json(cls, text: str) -> Arch:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ArchError(f"architecture JSON is malformed: {e}") from None
        except RecursionError:
            raise ArchError("architecture JSON is nested too deeply to be an architecture") from None
        return cls.from_dict(data)

    # ------------------------------------------------------------------------- compact string
    def to_string(self) -> str:
        def ks(k: KernelSet) -> str:
            return "".join(str(x) for x in k)

        stages = "|".join(f"{s.width}:" + ".".join(ks(k) for k in s.kernel_sizes) for s in self.stages)
        t = "|".join("".join(str(x) for x in lv.inputs) + ":" + ks(lv.kernel_sizes) for lv in self.transport)
        dec = "|".join("".join(str(x) for x in lv.inputs) + ":" + ks(lv.kernel_sizes) for lv in self.decoder)
        return f"r{self.resolution}_c{self.stem_width}_b[{stages}]_t[{t}]_d[{dec}]"

    _STRING_RE = re.compile(r"^r(\d+)_c(\d+)_b\[([^\]]*)\]_t\[([^\]]*)\]_d\[([^\]]*)\]$")

    @classmethod
    def from_string(cls, text: str) -> Arch:
        m = cls._STRING_RE.match(text.strip())
        if not m:
            raise ArchError(
                f"architecture string {text!r} does not match 'r<res>_c<stem>_b[w:k.k|...]_t[levels:k|...]_d[levels:k|...]'"
            )

        def digits(s: str, field: str) -> list[int]:
            if not s.isdigit():
                raise ArchError(f"{field}: expected digits, got {s!r}")
            return [int(c) for c in s]

        stages = []
        for i, part in enumerate(m.group(3).split("|") if m.group(3) else [], 1):
            if ":" not in part:
                raise ArchError(f"stage {i}: expected 'width:kernels', got {part!r}")
            w, layers = part.split(":", 1)
            if not w.isdigit():
                raise ArchError(f"stage {i}: width {w!r} is not a number")
            stages.append({"width": int(w), "kernel_sizes": [digits(x, f"stage {i} kernels") for x in layers.split(".")]})

        def levels(group: str, name: str) -> list[dict]:
            out = []
            for i, part in enumerate(group.split("|"), 1):
                if ":" not in part:
                    raise ArchError(f"{name} level {i}: expected 'levels:kernels', got {part!r}")
                a, k = part.split(":", 1)
                out.append({"inputs": digits(a, f"{name} level {i} inputs"), "kernel_sizes": digits(k, f"{name} level {i} kernels")})
            return out

        return cls.from_dict(
            {
                "resolution": int(m.group(1)),
                "stem_width": int(m.group(2)),
                "stages": stages,
                "transport": levels(m.group(4), "transport"),
                "decoder": levels(m.group(5), "decoder"),
            }
        )

    def __str__(self) -> str:  # the compact form is what people want to see in logs
        return self.to_string()


def load_arch(path_or_text: str) -> Arch:
    """Read an architecture from a JSON file, a JSON string, or the compact string form."""
    from pathlib import Path

    text = path_or_text
    p = Path(path_or_text)
    try:
        is_file, is_dir = p.is_file(), p.is_dir()
    except (OSError, ValueError):  # too long for a path, or a NUL byte: it is meant as text
        is_file = is_dir = False
    if is_dir:
        raise ArchError(f"architecture file {p} is a directory")
    if is_file:
        try:
            text = p.read_text()
        except UnicodeDecodeError:
            raise ArchError(f"architecture file {p} is not a text (JSON) file") from None
        except OSError as e:
            raise ArchError(f"cannot read architecture file {p}: {e.strerror or e}") from None
    elif path_or_text.endswith(".json"):
        raise ArchError(f"architecture file not found: {path_or_text}")
    text = text.strip()
    if text.startswith(("{", "[")):
        return Arch.from_json(text)
    if text.startswith("r"):
        return Arch.from_string(text)
    raise ArchError(f"cannot read an architecture from {path_or_text[:80]!r}: expected a JSON file/object or a compact string")
