"""Search spaces: loaded from YAML, they sample, bound, validate and hash architectures.

``hwnas/spaces/<name>.yaml`` holds the built-in spaces (``inas-sod``, ``inas-tiny``,
``inas-tiny-cells``); any other YAML file of the same schema can be loaded with
:meth:`SearchSpace.from_yaml`.

Backbones: by default (``backbone: {type: mbconv}`` or no ``backbone`` key) the backbone is the
searchable MBConv+SMSU stack of ``stem`` and ``stages``. ``backbone: {type: cells, genotype: FILE
or mapping, channels: C, cells_per_level: N}`` instead fixes a DARTS-family cell backbone
(:class:`hwnas.cells.backbone.CellBackbone`, papers digest §5) and keeps only the transport,
decoder and resolution searchable: such a space has no ``stages`` (an architecture's ``stages``
is empty) and one stem width (the backbone's). The genotype's content (not its path) is stored
in :attr:`SearchSpace.config`, so it enters the hash and a checkpoint rebuilds the space alone.
``create("inas-tiny:cells=GENOTYPE.json")`` derives such a space from a built-in one's head.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import random
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import yaml

from hwnas.arch import Arch, KernelSet, LevelArch, StageArch
from hwnas.errors import ArchError, SpaceError

SPACES_DIR = Path(__file__).parent / "spaces"
NUM_LEVELS = 5


def _subsets(items: Sequence[int], must: Sequence[int] = ()) -> list[tuple[int, ...]]:
    """All subsets of ``items`` that contain every element of ``must`` (sorted tuples)."""
    free = [x for x in items if x not in must]
    out = []
    for r in range(len(free) + 1):
        for combo in itertools.combinations(free, r):
            s = tuple(sorted((*must, *combo)))
            if s:
                out.append(s)
    return out


@dataclass(frozen=True)
class StageSpec:
    expand_ratio: int
    stride: int
    widths: tuple[int, ...]
    depths: tuple[int, ...]
    kernel_sizes: tuple[int, ...]  # kernels an SMSU may combine; any non-empty subset is allowed

    @property
    def kernel_sets(self) -> list[KernelSet]:
        return _subsets(self.kernel_sizes)


@dataclass(frozen=True)
class HeadSpec:
    level_stages: tuple[int, ...]  # 1-based backbone stage feeding head level 1..5
    channels: tuple[int, ...]  # fixed head width per level
    transport_kernel_sizes: tuple[int, ...]
    decoder_kernel_sizes: tuple[int, ...]

    @property
    def transport_kernel_sets(self) -> list[KernelSet]:
        return _subsets(self.transport_kernel_sizes)

    @property
    def decoder_kernel_sets(self) -> list[KernelSet]:
        return _subsets(self.decoder_kernel_sizes)


@dataclass(frozen=True)
class CellBackboneSpec:
    """A fixed cell-searched backbone: a genotype stacked into the 5-level pyramid (not searched)."""

    genotype_json: str  # canonical JSON of the genotype without its meta: what identifies it
    channels: int  # cell width at level 1 (doubles at every reduction)
    cells_per_level: int
    stem_channels: int

    def genotype(self):
        from hwnas.cells.genotype import Genotype

        return Genotype.from_json(self.genotype_json)

    @property
    def genotype_hash(self) -> str:
        return hashlib.sha256(self.genotype_json.encode()).hexdigest()[:10]

    @property
    def level_widths(self) -> tuple[int, ...]:
        """Output channels of levels 1..5: a cell concatenates its ``steps`` nodes of width C·2^(level-1)."""
        steps = len(json.loads(self.genotype_json)["normal"])
        return tuple(steps * self.channels * 2**i for i in range(NUM_LEVELS))


def _cell_backbone(backbone: dict[str, Any], base_dir: Path | None, source: str) -> tuple[CellBackboneSpec, dict]:
    """The spec and the normalised ``backbone`` mapping (genotype inlined, meta dropped)."""
    from hwnas.cells.genotype import Genotype, load_genotype

    allowed = {"type", "genotype", "channels", "cells_per_level", "stem_channels"}
    unknown = set(backbone) - allowed
    if unknown:
        raise SpaceError(f"search space {source}: unknown backbone key(s) {sorted(unknown)}; allowed: {sorted(allowed)}")
    g = backbone.get("genotype")
    try:
        if isinstance(g, str):
            path = Path(g)
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            genotype = load_genotype(path)
        elif isinstance(g, dict):
            genotype = Genotype.from_dict(g)
        else:
            raise SpaceError(f"search space {source}: backbone.genotype must be a genotype JSON file or mapping, got {g!r}")
    except ArchError as e:
        raise SpaceError(f"search space {source}: backbone.genotype: {e}") from None
    channels = int(backbone.get("channels", 8))
    cells_per_level = int(backbone.get("cells_per_level", 1))
    stem_channels = int(backbone.get("stem_channels", 2 * channels))
    if min(channels, cells_per_level, stem_channels) < 1:
        raise SpaceError(f"search space {source}: backbone channels, cells_per_level and stem_channels must be >= 1")
    gdict = {k: v for k, v in genotype.to_dict().items() if k != "meta"}
    spec = CellBackboneSpec(json.dumps(gdict, sort_keys=True, separators=(",", ":")), channels, cells_per_level, stem_channels)
    normalised = {"type": "cells", "genotype": gdict, "channels": channels, "cells_per_level": cells_per_level,
                  "stem_channels": stem_channels}
    return spec, normalised


def transport_input_choices(level: int) -> list[tuple[int, ...]]:
    """Transport level ``level`` aggregates any subset of the 5 levels that includes itself."""
    return _subsets(range(1, NUM_LEVELS + 1), must=(level,))


def decoder_input_choices(level: int) -> list[tuple[int, ...]]:
    """Decoder level i: own level and level i+1 fixed; any of the coarser levels i+2..5 optional."""
    fixed = (level,) if level == NUM_LEVELS else (level, level + 1)
    return _subsets(range(level, NUM_LEVELS + 1), must=fixed)


class SearchSpace:
    """One search space. Build with :func:`create` (built-in name) or :meth:`from_yaml`."""

    def __init__(self, config: dict[str, Any], source: str = "<dict>", base_dir: str | Path | None = None):
        """``base_dir``: where a relative ``backbone.genotype`` path is looked up (the YAML's folder)."""
        self.source = source
        self.cell_backbone: CellBackboneSpec | None = None
        from hwnas.space_schema import check_space_config

        check_space_config(config, source)  # every field's type and range, named, before anything is built
        backbone = config.get("backbone") or {"type": "mbconv"}
        kind = backbone.get("type", "mbconv") if isinstance(backbone, dict) else backbone
        if kind not in ("mbconv", "cells"):
            raise SpaceError(f"search space {source}: backbone.type {kind!r} unknown; allowed: mbconv, cells")
        if kind == "cells":
            config = copy.deepcopy(config)
            self.cell_backbone, config["backbone"] = _cell_backbone(
                backbone, Path(base_dir) if base_dir is not None else None, source)
        self.config = config
        try:
            self.name = str(config["name"])
            self.description = str(config.get("description", ""))
            self.resolutions = tuple(int(r) for r in config["resolutions"])
            if self.cell_backbone is not None:
                # the cell backbone's own stem (3x3, stride 2); its width is fixed, not searched
                self.stem_widths = (self.cell_backbone.stem_channels,)
                self.stem_kernel_size, self.stem_stride, self.se_ratio = 3, 2, 0.0
            else:
                stem = config["stem"]
                self.stem_widths = tuple(int(w) for w in stem["widths"])
                self.stem_kernel_size = int(stem.get("kernel_size", 3))
                self.stem_stride = int(stem.get("stride", 2))
                self.se_ratio = float(config.get("se_ratio", 0.25))
            self.stages = () if self.cell_backbone is not None else tuple(
                StageSpec(
                    expand_ratio=int(s["expand_ratio"]),
                    stride=int(s["stride"]),
                    widths=tuple(int(w) for w in s["widths"]),
                    depths=tuple(int(d) for d in s["depths"]),
                    kernel_sizes=tuple(sorted(int(k) for k in s["kernel_sizes"])),
                )
                for s in config["stages"]
            )
            head = config["head"]
            self.head = HeadSpec(
                # a cell backbone emits the 5 levels itself: level i is its output i
                level_stages=(tuple(range(1, NUM_LEVELS + 1)) if self.cell_backbone is not None
                              else tuple(int(x) for x in head["level_stages"])),
                channels=tuple(int(c) for c in head["channels"]),
                transport_kernel_sizes=tuple(sorted(int(k) for k in head["transport_kernel_sizes"])),
                decoder_kernel_sizes=tuple(sorted(int(k) for k in head["decoder_kernel_sizes"])),
            )
        except (KeyError, TypeError, ValueError) as e:
            raise SpaceError(f"search space {source}: malformed definition ({type(e).__name__}: {e})") from None
        self._check_definition()

    def _check_definition(self) -> None:
        src = self.source
        if self.cell_backbone is not None:
            if len(self.head.channels) != NUM_LEVELS:
                raise SpaceError(f"search space {src}: head.channels needs {NUM_LEVELS} entries")
            for r in self.resolutions:
                if r % 2**NUM_LEVELS:
                    raise SpaceError(f"search space {src}: resolution {r} is not divisible by the total stride {2**NUM_LEVELS}")
            return
        if not self.resolutions or not self.stem_widths or not self.stages:
            raise SpaceError(f"search space {src}: resolutions, stem widths and stages must be non-empty")
        if len(self.head.level_stages) != NUM_LEVELS or len(self.head.channels) != NUM_LEVELS:
            raise SpaceError(f"search space {src}: head.level_stages and head.channels need {NUM_LEVELS} entries")
        if sorted(self.head.level_stages) != list(self.head.level_stages) or not all(
            1 <= s <= len(self.stages) for s in self.head.level_stages
        ):
            raise SpaceError(f"search space {src}: head.level_stages must be increasing stage numbers 1..{len(self.stages)}")
        for i, st in enumerate(self.stages, 1):
            if not st.widths or not st.depths or not st.kernel_sizes or min(st.depths) < 1:
                raise SpaceError(f"search space {src}: stage {i} needs widths, depths >= 1 and kernel_sizes")
            if any(k % 2 == 0 for k in st.kernel_sizes):
                raise SpaceError(f"search space {src}: stage {i} kernel sizes must be odd, got {st.kernel_sizes}")
        total_stride = self.stem_stride
        for st in self.stages:
            total_stride *= st.stride
        for r in self.resolutions:
            if r % total_stride:
                raise SpaceError(f"search space {src}: resolution {r} is not divisible by the total stride {total_stride}")

    # ------------------------------------------------------------------------------ loading
    @classmethod
    def from_yaml(cls, path: str | Path) -> SearchSpace:
        p = Path(path)
        try:
            data = yaml.safe_load(p.read_text())
        except OSError as e:
            raise SpaceError(f"cannot read search space file {p}: {e.strerror or e}") from None
        except UnicodeDecodeError:
            raise SpaceError(f"search space file {p} is not a text (UTF-8 YAML) file") from None
        except yaml.YAMLError as e:
            raise SpaceError(f"search space file {p} is not valid YAML: {str(e).splitlines()[0]}") from None
        if not isinstance(data, dict):
            raise SpaceError(f"search space file {p}: expected a mapping at the top level")
        return cls(data, source=str(p), base_dir=p.parent)

    # ---------------------------------------------------------------------------- identity
    @cached_property
    def hash(self) -> str:
        """Content hash of the definition: LUTs and checkpoints record it and refuse a mismatch."""
        canonical = json.dumps(self.config, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def __repr__(self) -> str:
        return f"SearchSpace({self.name!r}, hash={self.hash})"

    @property
    def num_levels(self) -> int:
        return NUM_LEVELS

    def level_resolution(self, resolution: int, level: int) -> int:
        """Side of the feature map at head level 1..5 for an input of ``resolution`` pixels."""
        return resolution // (2**level)

    def stage_strides(self) -> list[int]:
        """Cumulative stride at the output of each stage (stem included)."""
        out, s = [], self.stem_stride
        for st in self.stages:
            s *= st.stride
            out.append(s)
        return out

    # -------------------------------------------------------------------------- validation
    def validate(self, arch: Arch) -> None:
        """Raise :class:`ArchError` naming the first field outside the space and its allowed values."""
        if arch.resolution not in self.resolutions:
            raise ArchError(f"resolution={arch.resolution} is not in space {self.name}; allowed: {list(self.resolutions)}")
        if arch.stem_width not in self.stem_widths:
            raise ArchError(f"stem_width={arch.stem_width} is not in space {self.name}; allowed: {list(self.stem_widths)}")
        if self.cell_backbone is not None and arch.stages:
            raise ArchError(f"stages: space {self.name} has a fixed cell backbone; stages must be empty, "
                            f"got {len(arch.stages)}")
        if len(arch.stages) != len(self.stages):
            raise ArchError(f"stages: space {self.name} has {len(self.stages)} stages, the architecture {len(arch.stages)}")
        for i, (s, spec) in enumerate(zip(arch.stages, self.stages), 1):
            if s.width not in spec.widths:
                raise ArchError(f"stages[{i}].width={s.width} not allowed; allowed: {list(spec.widths)}")
            if s.depth not in spec.depths:
                raise ArchError(f"stages[{i}] depth={s.depth} not allowed; allowed: {list(spec.depths)}")
            for j, ks in enumerate(s.kernel_sizes, 1):
                if not set(ks) <= set(spec.kernel_sizes):
                    raise ArchError(
                        f"stages[{i}].kernel_sizes[{j}]={list(ks)} not allowed; "
                        f"allowed: non-empty subsets of {list(spec.kernel_sizes)}"
                    )
        for name, levels, choices_fn, kernels in (
            ("transport", arch.transport, transport_input_choices, self.head.transport_kernel_sizes),
            ("decoder", arch.decoder, decoder_input_choices, self.head.decoder_kernel_sizes),
        ):
            if len(levels) != NUM_LEVELS:
                raise ArchError(f"{name}: expected {NUM_LEVELS} levels, got {len(levels)}")
            for i, lv in enumerate(levels, 1):
                allowed = choices_fn(i)
                if lv.inputs not in allowed:
                    raise ArchError(f"{name}[{i}].inputs={list(lv.inputs)} not allowed; allowed: {[list(a) for a in allowed]}")
                if not set(lv.kernel_sizes) <= set(kernels):
                    raise ArchError(
                        f"{name}[{i}].kernel_sizes={list(lv.kernel_sizes)} not allowed; allowed: non-empty subsets of {list(kernels)}"
                    )

    def contains(self, arch: Arch) -> bool:
        try:
            self.validate(arch)
        except ArchError:
            return False
        return True

    # ---------------------------------------------------------------------------- sampling
    def sample(self, rng: random.Random | int | None = None, resolution: int | None = None) -> Arch:
        """Layer-wise uniform sample: every field drawn independently and uniformly."""
        rng = rng if isinstance(rng, random.Random) else random.Random(rng)
        res = resolution if resolution is not None else rng.choice(self.resolutions)
        stages = []
        for spec in self.stages:
            depth = rng.choice(spec.depths)
            kernel_sets = spec.kernel_sets
            stages.append(StageArch(rng.choice(spec.widths), tuple(rng.choice(kernel_sets) for _ in range(depth))))
        tk, dk = self.head.transport_kernel_sets, self.head.decoder_kernel_sets
        transport = tuple(LevelArch(rng.choice(transport_input_choices(i)), rng.choice(tk)) for i in range(1, NUM_LEVELS + 1))
        decoder = tuple(LevelArch(rng.choice(decoder_input_choices(i)), rng.choice(dk)) for i in range(1, NUM_LEVELS + 1))
        arch = Arch(res, rng.choice(self.stem_widths), tuple(stages), transport, decoder)
        self.validate(arch)
        return arch

    def _extreme(self, largest: bool, resolution: int | None) -> Arch:
        pick = max if largest else min
        res = resolution if resolution is not None else pick(self.resolutions)
        stages = []
        for spec in self.stages:
            ks = tuple(spec.kernel_sizes) if largest else (min(spec.kernel_sizes),)
            stages.append(StageArch(pick(spec.widths), tuple(ks for _ in range(pick(spec.depths)))))

        def levels(choices_fn, kernel_sizes):
            ks = tuple(kernel_sizes) if largest else (min(kernel_sizes),)
            return tuple(
                LevelArch(max(choices_fn(i), key=len) if largest else min(choices_fn(i), key=len), ks)
                for i in range(1, NUM_LEVELS + 1)
            )

        arch = Arch(
            res,
            pick(self.stem_widths),
            tuple(stages),
            levels(transport_input_choices, self.head.transport_kernel_sizes),
            levels(decoder_input_choices, self.head.decoder_kernel_sizes),
        )
        self.validate(arch)
        return arch

    def largest(self, resolution: int | None = None) -> Arch:
        """Widest, deepest, every kernel, every fusion branch (at the largest resolution unless given)."""
        return self._extreme(True, resolution)

    def smallest(self, resolution: int | None = None) -> Arch:
        """Narrowest, shallowest, smallest single kernel, minimal fusion (smallest resolution unless given)."""
        return self._extreme(False, resolution)

    # ----------------------------------------------------------------------- LUT interface
    def blocks(self, arch: Arch) -> list:
        """The deploy-form blocks an architecture is made of (``lut.BlockSpec``), in forward order."""
        from hwnas.blocks import arch_blocks

        self.validate(arch)
        return arch_blocks(self, arch)

    def all_blocks(self, resolutions: Sequence[int] | None = None) -> list:
        """Every distinct block of the space (unique keys) at the given resolutions (default: all)."""
        from hwnas.blocks import space_blocks

        res = tuple(resolutions) if resolutions is not None else self.resolutions
        bad = [r for r in res if r not in self.resolutions]
        if bad:
            raise ArchError(f"resolution(s) {bad} not in space {self.name}; allowed: {list(self.resolutions)}")
        return space_blocks(self, res)


# ------------------------------------------------------------------------------- registry
def list_spaces() -> list[str]:
    return sorted(p.stem for p in SPACES_DIR.glob("*.yaml"))


def _with_cells(base: SearchSpace, options: str, spec_text: str) -> SearchSpace:
    """``base``'s head and resolutions on a cell backbone (``cells=PATH[:channels=C][:cells_per_level=N]``)."""
    allowed = ("cells", "channels", "cells_per_level", "stem_channels")
    backbone: dict[str, Any] = {"type": "cells"}
    for part in options.split(":"):
        key, sep, value = part.partition("=")
        if not sep or key not in allowed or not value:
            raise SpaceError(f"space {spec_text!r}: bad option {part!r}; expected NAME:cells=GENOTYPE.json"
                             f"[:channels=C][:cells_per_level=N][:stem_channels=S]")
        if key == "cells":
            backbone["genotype"] = value
        else:
            try:
                backbone[key] = int(value)
            except ValueError:
                raise SpaceError(f"space {spec_text!r}: {key} must be an integer, got {value!r}") from None
    if "genotype" not in backbone:
        raise SpaceError(f"space {spec_text!r}: needs cells=GENOTYPE.json")
    if base.cell_backbone is not None:
        raise SpaceError(f"space {spec_text!r}: {base.name} already has a cell backbone")
    cfg = {k: copy.deepcopy(v) for k, v in base.config.items() if k not in ("stem", "stages", "se_ratio", "backbone")}
    cfg["name"] = f"{base.name}+cells"
    cfg["description"] = f"{base.name}'s head on a fixed cell backbone"
    cfg["head"] = {k: v for k, v in cfg["head"].items() if k != "level_stages"}
    cfg["backbone"] = backbone
    return SearchSpace(cfg, source=spec_text, base_dir=Path.cwd())


def create(name: str) -> SearchSpace:
    """A built-in space by name, a YAML file by path, or ``NAME:cells=GENOTYPE.json[:...]`` (that
    space's head on a fixed cell backbone; see the module docstring)."""
    base, sep, options = name.partition(":")
    if sep and options.startswith("cells="):
        return _with_cells(create(base), options, name)
    p = Path(name)
    if p.suffix in (".yaml", ".yml"):
        return SearchSpace.from_yaml(p)
    path = SPACES_DIR / f"{name}.yaml"
    if not path.is_file():
        import difflib

        close = difflib.get_close_matches(name, list_spaces(), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SpaceError(f"unknown search space {name!r}{hint}; available: {', '.join(list_spaces())}")
    return SearchSpace.from_yaml(path)
