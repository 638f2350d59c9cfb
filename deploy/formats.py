"""The export-format registry: a format is one :class:`Format` registration.

A registration names the format, the file it writes inside an export directory (plus companion
files, e.g. OpenVINO's ``.bin`` beside the ``.xml``), its aliases, the precisions it accepts, the
function that exports, the function that proves the artifact in its own runtime, and the pip extra
that installs its toolchain. ``deploy.export``, ``hwnas export`` and ``manifest.json`` read
everything from here, so adding a format is one new module that ends with ``FORMAT = Format(...)``
plus its module name in :data:`BUILTIN_MODULES` (or a :func:`register` call, as the tests do).

Contracts:

* ``export(model, example_inputs, target, *, precision, out_dir) -> dict | None`` writes ``target``
  (and the companions) from the eval-mode ``model``; returns details for the manifest (opset,
  delegation summary, …); raises :class:`~deploy.errors.ExportError` starting ``"<name>: "``.
  ``deploy.export`` removes every file of the format on failure, so a half-written artifact never
  stays.
* ``check(target, reference, inputs, tolerance) -> deploy.parity.Parity`` runs the artifact in
  its runtime (``SKIPPED`` with the reason where that runtime cannot run here).

Registering imports nothing heavy: toolchains are imported inside ``export`` / ``check``.
"""

from __future__ import annotations

import difflib
import importlib
from dataclasses import dataclass
from typing import Callable, Iterable

from deploy.errors import ExportError

# modules whose ``FORMAT`` is registered on first use, in the order ``hwnas export`` lists them
BUILTIN_MODULES = (
    "deploy.onnx_export",
    "deploy.executorch_export",
    "deploy.coreml_export",
    "deploy.tensorrt_export",
    "deploy.openvino_export",
    "deploy.tflite_export",
)


@dataclass(frozen=True)
class Format:
    name: str
    file: str  # the file (or directory) a runtime loads, inside the export directory
    export: Callable[..., dict | None]
    check: Callable[..., object]
    aliases: tuple[str, ...] = ()
    precisions: tuple[str, ...] = ("fp32",)
    extra: str | None = None  # ``pip install 'hwnas[<extra>]'`` installs the toolchain; None: core deps
    companions: tuple[str, ...] = ()  # files written beside ``file`` that it needs (OpenVINO weights)
    runtime: str = ""  # what the parity check runs in, for messages and docs

    @property
    def files(self) -> tuple[str, ...]:
        return (self.file, *self.companions)

    def install_hint(self) -> str:
        return f"pip install 'hwnas[{self.extra}]'" if self.extra else "pip install hwnas"


_REGISTRY: dict[str, Format] = {}
_ALIASES: dict[str, str] = {}
_loaded = False


def register(fmt: Format, *, replace: bool = False) -> Format:
    """Add ``fmt`` to the registry (``replace`` to overwrite a registration of the same name)."""
    _load_builtins()
    _register(fmt, replace)
    return fmt


def unregister(name: str) -> None:
    """Remove a format (tests register toy formats and take them out again)."""
    _load_builtins()
    fmt = _REGISTRY.pop(name, None)
    if fmt:
        for alias in fmt.aliases:
            _ALIASES.pop(alias, None)


def _register(fmt: Format, replace: bool) -> None:
    if not fmt.name or fmt.name != fmt.name.lower() or "," in fmt.name:
        raise ValueError(f"format name {fmt.name!r} must be lower case without commas")
    if fmt.name in _REGISTRY and not replace:
        raise ValueError(f"format {fmt.name!r} is already registered")
    if not fmt.precisions:
        raise ValueError(f"format {fmt.name!r} declares no precision")
    taken = {f for n, f in _ALIASES.items() if n in fmt.aliases and f != fmt.name}
    if taken or any(a in _REGISTRY for a in fmt.aliases):
        raise ValueError(f"format {fmt.name!r}: an alias of {sorted(fmt.aliases)} is taken")
    _REGISTRY[fmt.name] = fmt
    for alias in fmt.aliases:
        _ALIASES[alias] = fmt.name


def _load_builtins() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True  # set first: a module's import must not recurse into loading
    for module in BUILTIN_MODULES:
        _register(importlib.import_module(module).FORMAT, replace=False)


def names() -> list[str]:
    _load_builtins()
    return list(_REGISTRY)


def get(name: str) -> Format:
    """The format called ``name`` or one of its aliases (case-insensitive)."""
    _load_builtins()
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key not in _REGISTRY:
        guess = difflib.get_close_matches(key, list(_REGISTRY) + list(_ALIASES), n=1, cutoff=0.5)
        hint = f"; did you mean {_ALIASES.get(guess[0], guess[0])!r}?" if guess else ""
        raise ExportError(f"unknown export format {key!r}{hint} (allowed: {', '.join(_REGISTRY)})")
    return _REGISTRY[key]


def parse_formats(formats: str | Iterable[str]) -> list[str]:
    """``"onnx,executorch"`` or a list → validated, de-duplicated names; unknown names get a suggestion."""
    items = formats.split(",") if isinstance(formats, str) else list(formats)
    wanted = [f.strip() for f in items if f.strip()]
    if not wanted:
        raise ExportError(f"no export format given; allowed: {', '.join(names())}")
    out: list[str] = []
    for name in wanted:
        canonical = get(name).name
        if canonical not in out:
            out.append(canonical)
    return out


def parse_precisions(spec: str | dict | None, formats: Iterable[str]) -> dict[str, str]:
    """Precision per format: ``"tensorrt=fp16,coreml=fp16"`` or a dict; unnamed formats get their
    first (default) precision. A format or precision that does not exist is an :class:`ExportError`."""
    chosen: dict[str, str] = {}
    if isinstance(spec, str):
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            if "=" not in part:
                raise ExportError(f"precision {part!r}: expected FORMAT=PRECISION, e.g. tensorrt=fp16")
            name, value = (s.strip() for s in part.split("=", 1))
            chosen[get(name).name] = value.lower()
    elif spec:
        chosen = {get(k).name: str(v).lower() for k, v in spec.items()}
    out = {}
    for name in formats:
        fmt = get(name)
        value = chosen.pop(fmt.name, fmt.precisions[0])
        if value not in fmt.precisions:
            raise ExportError(f"{fmt.name}: precision {value!r} not supported; allowed: {list(fmt.precisions)}")
        out[fmt.name] = value
    if chosen:
        raise ExportError(f"precision given for {sorted(chosen)}, which is not among the formats exported")
    return out


# ----------------------------------------------------------------- I/O naming shared by exporters
def input_names(n: int) -> list[str]:
    """``input`` for one input, ``input0``, ``input1``, … for several (what every artifact uses)."""
    return ["input"] if n == 1 else [f"input{i}" for i in range(n)]


def output_names(n: int) -> list[str]:
    return ["output"] if n == 1 else [f"output{i}" for i in range(n)]


def count_outputs(out, fmt: str) -> int:
    """How many tensors a model's output holds (a tensor or nested lists/tuples of tensors)."""
    import torch

    if isinstance(out, torch.Tensor):
        return 1
    if isinstance(out, (list, tuple)):
        return sum(count_outputs(o, fmt) for o in out)
    raise ExportError(f"{fmt}: model output must be a tensor or a list/tuple of tensors, got {type(out).__name__}")
