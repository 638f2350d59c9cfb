"""Search spaces: loaded from YAML, they sample, bound, validate and hash architectures.

``hwnas/spaces/<name>.yaml`` holds the built-in spaces (``inas-sod``, ``inas-tiny``,
``inas-tiny-cells``); any other YAML file of the same schema can be loaded with
:meth:`SearchSpace.from_yaml`.

Backbones: ``backbone: {type: NAME, ...}`` picks the object that parses the backbone's part of the
definition and answers every backbone question (:mod:`hwnas.backbones`; ``space.backbone``). By
default (``backbone: {type: mbconv}`` or no ``backbone`` key) it is the searchable MBConv+SMSU
stack of ``stem`` and ``stages`` (:mod:`hwnas.backbones.mbconv_smsu`); ``backbone: {type: cells,
genotype: FILE or mapping, channels: C, cells_per_level: N}`` fixes a DARTS-family cell backbone
(:mod:`hwnas.backbones.darts_cells`) and keeps only the transport, decoder and resolution
searchable: such a space has no ``stages`` and one stem width (the backbone's).
``create("inas-tiny:cells=GENOTYPE.json")`` derives such a space from a built-in one's head.
"""

from __future__ import annotations

import copy
import hashlib
import json
import random
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

import yaml

from deploy.fileio import first_line
from hwnas import backbones
from hwnas.arch import Arch, KernelSet, LevelArch
from hwnas.errors import ArchError, SpaceError
from hwnas.levels import NUM_LEVELS, decoder_input_choices, subsets, transport_input_choices

SPACES_DIR = Path(__file__).parent / "spaces"


@dataclass(frozen=True)
class HeadSpec:
    level_stages: tuple[int, ...]  # 1-based backbone stage feeding head level 1..5 (the backbone's)
    channels: tuple[int, ...]  # fixed head width per level
    transport_kernel_sizes: tuple[int, ...]
    decoder_kernel_sizes: tuple[int, ...]

    @property
    def transport_kernel_sets(self) -> list[KernelSet]:
        return subsets(self.transport_kernel_sizes)

    @property
    def decoder_kernel_sets(self) -> list[KernelSet]:
        return subsets(self.decoder_kernel_sizes)


class SearchSpace:
    """One search space. Build with :func:`create` (built-in name) or :meth:`from_yaml`."""

    def __init__(self, config: dict[str, Any], source: str = "<dict>", base_dir: str | Path | None = None):
        """``base_dir``: where a relative ``backbone.genotype`` path is looked up (the YAML's folder)."""
        self.source = source
        from hwnas.space_schema import check_space_config

        check_space_config(config, source)  # every field's type and range, named, before anything is built
        try:
            # the backbone parses its own part of the definition (see hwnas.backbones)
            self.backbone, config = backbones.from_config(config, source, Path(base_dir) if base_dir is not None else None)
            self.name = str(config["name"])
            self.description = str(config.get("description", ""))
            self.resolutions = tuple(int(r) for r in config["resolutions"])
            head = config["head"]
            self.head = HeadSpec(
                level_stages=tuple(self.backbone.level_stages),
                channels=tuple(int(c) for c in head["channels"]),
                transport_kernel_sizes=tuple(sorted(int(k) for k in head["transport_kernel_sizes"])),
                decoder_kernel_sizes=tuple(sorted(int(k) for k in head["decoder_kernel_sizes"])),
            )
        except (KeyError, TypeError, ValueError, AttributeError) as e:
            raise SpaceError(f"search space {source}: malformed definition ({type(e).__name__}: {e})") from None
        self.config = config

    # what an architecture's backbone fields may be (``Arch.stem_width``, ``Arch.stages``)
    @property
    def stem_widths(self) -> tuple[int, ...]:
        return self.backbone.stem_widths

    @property
    def stages(self) -> tuple:
        """Searchable backbone stages (:class:`~hwnas.backbones.mbconv_smsu.StageSpec`); empty when fixed."""
        return self.backbone.stages

    @property
    def stem_kernel_size(self) -> int:
        return self.backbone.stem_kernel_size

    @property
    def stem_stride(self) -> int:
        return self.backbone.stem_stride

    @property
    def se_ratio(self) -> float:
        return self.backbone.se_ratio

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
            raise SpaceError(f"search space file {p} is not valid YAML: {first_line(e)}") from None
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
        """Cumulative stride at the output of each searchable backbone stage (stem included)."""
        return self.backbone.stage_strides() if self.stages else []

    # -------------------------------------------------------------------------- validation
    def validate(self, arch: Arch) -> None:
        """Raise :class:`ArchError` naming the first field outside the space and its allowed values."""
        if arch.resolution not in self.resolutions:
            raise ArchError(f"resolution={arch.resolution} is not in space {self.name}; allowed: {list(self.resolutions)}")
        self.backbone.validate(arch, self.name)
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
        stages = self.backbone.sample_stages(rng)
        tk, dk = self.head.transport_kernel_sets, self.head.decoder_kernel_sets
        transport = tuple(LevelArch(rng.choice(transport_input_choices(i)), rng.choice(tk)) for i in range(1, NUM_LEVELS + 1))
        decoder = tuple(LevelArch(rng.choice(decoder_input_choices(i)), rng.choice(dk)) for i in range(1, NUM_LEVELS + 1))
        arch = Arch(res, rng.choice(self.stem_widths), stages, transport, decoder)
        self.validate(arch)
        return arch

    def _extreme(self, largest: bool, resolution: int | None) -> Arch:
        pick = max if largest else min
        res = resolution if resolution is not None else pick(self.resolutions)
        stages = self.backbone.extreme_stages(largest)

        def levels(choices_fn, kernel_sizes):
            ks = tuple(kernel_sizes) if largest else (min(kernel_sizes),)
            return tuple(
                LevelArch(max(choices_fn(i), key=len) if largest else min(choices_fn(i), key=len), ks)
                for i in range(1, NUM_LEVELS + 1)
            )

        arch = Arch(
            res,
            pick(self.stem_widths),
            stages,
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

    def model_bytes(self, resolution: int) -> int:
        """Distinct bytes one inference of a typical model at ``resolution`` touches (the mean of the
        smallest and the largest architecture's, ``lut.footprint``): the cache flush its blocks'
        context runs follow where it outgrows the last-level cache (``profilers.cache``)."""
        from lut.footprint import model_bytes

        return (model_bytes(self.blocks(self.smallest(resolution)))
                + model_bytes(self.blocks(self.largest(resolution)))) // 2

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


def _on_backbone(base: SearchSpace, backbone: dict[str, Any], spec_text: str) -> SearchSpace:
    """``base``'s head and resolutions on the backbone ``backbone`` (a space's ``backbone:`` mapping)."""
    cls = backbones.backbone_class(backbone["type"], spec_text)
    if base.backbone.type == cls.type:
        raise SpaceError(f"space {spec_text!r}: {base.name} already has a {getattr(cls, 'describe', cls.type)} backbone")
    cfg = {k: copy.deepcopy(v) for k, v in base.config.items() if k not in ("stem", "stages", "se_ratio", "backbone")}
    cfg["name"] = f"{base.name}+{cls.type}"
    cfg["description"] = f"{base.name}'s head on a fixed {getattr(cls, 'describe', cls.type)} backbone"
    cfg["head"] = {k: v for k, v in cfg["head"].items() if k != "level_stages"}
    cfg["backbone"] = backbone
    return SearchSpace(cfg, source=spec_text, base_dir=Path.cwd())


def create(name: str) -> SearchSpace:
    """A built-in space by name, a YAML file by path, or ``NAME:TYPE=...`` — that space's head on a
    backbone of type TYPE configured by the options (``NAME:cells=GENOTYPE.json[:channels=C]...``, see
    :meth:`hwnas.backbones.Backbone.mapping_from_options`)."""
    base, sep, options = name.partition(":")
    kind = options.partition("=")[0]
    if sep and kind in backbones.names():
        mapping = backbones.backbone_class(kind, name).mapping_from_options(options, name)
        return _on_backbone(create(base), mapping, name)
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
