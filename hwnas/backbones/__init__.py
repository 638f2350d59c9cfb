"""Backbones: what turns an image into the 5-level feature pyramid the iNAS SOD head fuses.

A search space (:mod:`hwnas.space`) names its backbone with ``backbone: {type: NAME, ...}`` (no
``backbone`` key = ``mbconv``). Everything the rest of the code needs from a backbone goes through
one :class:`Backbone` object (``space.backbone``), so the space, the static network
(:mod:`hwnas.model`), the supernet (:mod:`hwnas.supernet`) and the latency-table blocks
(:mod:`hwnas.blocks`) never ask *which* backbone they hold:

- check and parse its part of the space definition (:meth:`Backbone.check_schema`, :meth:`Backbone.from_config`);
- validate, sample and bound the backbone fields of an :class:`~hwnas.arch.Arch`
  (``stem_width``, ``stages``);
- the channels and sides of the 5 levels it emits (:meth:`Backbone.level_widths`, ...);
- its modules: static ones for one architecture, elastic (weight-shared) ones for the supernet,
  how to activate a path and copy the shared weights into a static network;
- its latency-table blocks (``lut.BlockSpec``, with the module path computing each).

Two implementations: ``mbconv`` (:class:`~hwnas.backbones.mbconv_smsu.MBConvBackbone`, the searchable
MBConv+SMSU stages of iNAS) and ``cells`` (:class:`~hwnas.backbones.darts_cells.CellsBackbone`,
a fixed DARTS-family cell stack). A fixed (not searched) backbone derives from
:class:`FixedBackbone` and writes four things: parse, widths, build, block key.

Adding one: write the class, :func:`register` it (a built-in one also gets a line in
``BUILT_IN``), and test it as ``tests/test_backbones.py`` tests its toy backbone.

Nothing here imports torch: loading a space stays fast; modules are built lazily.
"""

from __future__ import annotations

import functools
import importlib
import random
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Iterable

from hwnas.arch import Arch, StageArch
from hwnas.errors import ArchError, SpaceError
from hwnas.levels import NUM_LEVELS, TOTAL_STRIDE

if TYPE_CHECKING:  # typing only: building modules imports torch lazily
    import torch
    from torch import nn

    from lut.blocks import BlockSpec

DEFAULT_TYPE = "mbconv"
# built-in backbones, imported when a space names them ("module:Class")
BUILT_IN: dict[str, str] = {
    "mbconv": "hwnas.backbones.mbconv_smsu:MBConvBackbone",
    "cells": "hwnas.backbones.darts_cells:CellsBackbone",
}
_registered: dict[str, type[Backbone]] = {}


class Backbone:
    """One backbone of one search space (immutable after construction).

    Subclasses set ``type`` and implement every method that raises ``NotImplementedError``.
    The attributes below are what :class:`~hwnas.space.SearchSpace` exposes of its backbone.
    """

    type: ClassVar[str] = ""
    stem_widths: tuple[int, ...] = ()  # the choices for Arch.stem_width
    stages: tuple = ()  # searchable stage specs (Arch.stages has one entry per spec); () = none
    level_stages: tuple[int, ...] = tuple(range(1, NUM_LEVELS + 1))  # 1-based stage feeding each level
    stem_kernel_size: int = 3
    stem_stride: int = 2
    se_ratio: float = 0.0
    module_names: ClassVar[tuple[str, ...]] = ()  # attributes of a network holding this backbone's modules

    # ----------------------------------------------------------------------- definition
    @classmethod
    def from_config(cls, config: dict[str, Any], source: str, base_dir: Path | None) -> tuple[Backbone, dict[str, Any]]:
        """The backbone of a space definition and the definition as the space stores (and hashes) it.

        ``config`` is the whole space mapping; ``base_dir`` is where relative paths are looked up.
        KeyError / TypeError / ValueError are reported by the space as a malformed definition.
        """
        raise NotImplementedError

    @classmethod
    def check_schema(cls, schema, config: dict[str, Any]) -> int:
        """Check the types and ranges of this backbone's part of a raw space definition (and the head)
        with :class:`hwnas.space_schema.Schema` ``schema``, before anything is built; return the
        network's total stride (every resolution must divide by it)."""
        schema.head(config["head"], level_stages=False)
        return TOTAL_STRIDE

    @classmethod
    def mapping_from_options(cls, options: str, spec_text: str) -> dict[str, Any]:
        """The ``backbone:`` mapping that ``create("NAME:<type>=...")`` puts under space NAME's head,
        from its option string (``<type>=VALUE[:key=VALUE...]``)."""
        raise SpaceError(f"space {spec_text!r}: a {cls.type} backbone cannot be put under another space's head")

    @property
    def total_stride(self) -> int:
        """Stride of the coarsest level: every resolution of the space must divide by it."""
        return TOTAL_STRIDE

    # -------------------------------------------------------------------- architectures
    def validate(self, arch: Arch, space_name: str) -> None:
        """Raise :class:`ArchError` naming the first backbone field of ``arch`` outside the space."""
        raise NotImplementedError

    def sample_stages(self, rng: random.Random) -> tuple[StageArch, ...]:
        raise NotImplementedError

    def extreme_stages(self, largest: bool) -> tuple[StageArch, ...]:
        raise NotImplementedError

    def level_widths(self, arch: Arch) -> tuple[int, ...]:
        """Channels of the features ``arch``'s backbone feeds head levels 1..5."""
        raise NotImplementedError

    def level_width_choices(self) -> tuple[tuple[int, ...], ...]:
        """Every channel count level 1..5 can have in this space (sorted as enumerated)."""
        raise NotImplementedError

    def level_sizes(self, resolution: int) -> list[int]:
        """Sides of the 5 level features for an input of ``resolution`` pixels."""
        return [resolution // 2**i for i in range(1, NUM_LEVELS + 1)]

    # -------------------------------------------------------------------------- modules
    def static_modules(self, arch: Arch) -> dict[str, nn.Module]:
        """The modules of ``arch``'s backbone, by attribute name (``module_names``), random init."""
        raise NotImplementedError

    def elastic_modules(self) -> dict[str, nn.Module]:
        """The supernet's modules: every architecture's backbone is a view of their weights."""
        raise NotImplementedError

    def set_active(self, net: nn.Module, arch: Arch) -> None:
        """Make the supernet ``net``'s elastic modules compute ``arch``'s backbone."""
        raise NotImplementedError

    def copy_into(self, supernet: nn.Module, subnet: nn.Module) -> None:
        """Copy the shared weights of the supernet's active path into the static ``subnet``."""
        raise NotImplementedError

    def levels(self, net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
        """The 5 features of ``net``'s backbone modules for input ``x``, finest first."""
        raise NotImplementedError

    # ------------------------------------------------------------------------ LUT blocks
    def arch_blocks(self, arch: Arch) -> list[tuple[BlockSpec, str]]:
        """``arch``'s backbone as latency-table blocks in forward order, each with the path of the
        module computing it in ``hwnas.model.for_export``'s network."""
        raise NotImplementedError

    def space_blocks(self, resolution: int) -> Iterable[BlockSpec]:
        """Every distinct backbone block any architecture of the space has at ``resolution``."""
        raise NotImplementedError


class FixedBackbone(Backbone):
    """A backbone that is not searched: one module (attribute ``backbone``) shared by every
    architecture, whose ``forward`` returns the 5 levels and whose ``out_channels`` are their
    widths. It is one latency-table block (the whole pyramid). Arch.stages is empty and the stem
    width has one choice (:attr:`stem_channels`).

    Subclasses implement :meth:`from_config`, :attr:`widths`, :meth:`build` and :meth:`block_key`.
    """

    module_names = ("backbone",)
    describe: ClassVar[str] = "fixed"  # word in messages: "space X has a fixed <describe> backbone"
    stem_channels: int = 1

    @property
    def stem_widths(self) -> tuple[int, ...]:  # type: ignore[override]
        return (self.stem_channels,)

    @property
    def widths(self) -> tuple[int, ...]:
        """Channels of levels 1..5 (checked against the built module's ``out_channels``)."""
        raise NotImplementedError

    def build(self) -> nn.Module:
        """A new module (random init) whose ``forward(x)`` returns the 5 levels, finest first."""
        raise NotImplementedError

    def block_key(self, resolution: int) -> str:
        """The latency-table key of the whole backbone at ``resolution``: names everything that
        changes its computation."""
        raise NotImplementedError

    def validate(self, arch: Arch, space_name: str) -> None:
        if arch.stem_width not in self.stem_widths:
            raise ArchError(f"stem_width={arch.stem_width} is not in space {space_name}; allowed: {list(self.stem_widths)}")
        if arch.stages:
            raise ArchError(f"stages: space {space_name} has a fixed {self.describe} backbone; stages must be empty, "
                            f"got {len(arch.stages)}")

    def sample_stages(self, rng: random.Random) -> tuple[StageArch, ...]:
        return ()

    def extreme_stages(self, largest: bool) -> tuple[StageArch, ...]:
        return ()

    def level_widths(self, arch: Arch) -> tuple[int, ...]:
        return tuple(self.widths)

    def level_width_choices(self) -> tuple[tuple[int, ...], ...]:
        return tuple((w,) for w in self.widths)

    def _checked_build(self) -> nn.Module:
        net = self.build()
        if tuple(net.out_channels) != tuple(self.widths):  # the head is sized from `widths` before building
            raise AssertionError(f"{self.type} backbone built widths {tuple(net.out_channels)} != declared {tuple(self.widths)}")
        return net

    def static_modules(self, arch: Arch) -> dict[str, nn.Module]:
        return {"backbone": self._checked_build()}

    def elastic_modules(self) -> dict[str, nn.Module]:
        return {"backbone": self._checked_build()}

    def set_active(self, net: nn.Module, arch: Arch) -> None:
        pass  # one path: nothing to select

    def copy_into(self, supernet: nn.Module, subnet: nn.Module) -> None:
        subnet.backbone.load_state_dict(supernet.backbone.state_dict())

    def levels(self, net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
        return list(net.backbone(x))

    def block(self, resolution: int) -> BlockSpec:
        from lut.blocks import BlockSpec

        return BlockSpec(self.block_key(resolution), self.type, ((1, 3, resolution, resolution),),
                         functools.partial(_build_fixed_block, self), model_input=True)

    def arch_blocks(self, arch: Arch) -> list[tuple[BlockSpec, str]]:
        return [(self.block(arch.resolution), "backbone")]

    def space_blocks(self, resolution: int) -> Iterable[BlockSpec]:
        return [self.block(resolution)]


def _build_fixed_block(backbone: FixedBackbone):
    from hwnas.blocks import LevelsTuple, deploy_form

    return deploy_form(LevelsTuple(backbone._checked_build()))


# -------------------------------------------------------------------------------- registry
def register(cls: type[Backbone], replace: bool = False) -> type[Backbone]:
    """Make ``backbone: {type: cls.type}`` available (usable as a class decorator)."""
    if not cls.type:
        raise ValueError(f"{cls.__name__}.type is empty")
    if not replace and (cls.type in _registered or cls.type in BUILT_IN):
        raise ValueError(f"backbone type {cls.type!r} is already registered")
    _registered[cls.type] = cls
    return cls


def unregister(type_name: str) -> None:
    """Forget a backbone registered with :func:`register` (tests register toys for one test)."""
    _registered.pop(type_name, None)


def names() -> list[str]:
    return list(dict.fromkeys([*BUILT_IN, *_registered]))


def backbone_class(type_name: str, source: str = "<space>") -> type[Backbone]:
    """The class of backbone ``type_name``; :class:`SpaceError` naming the known ones otherwise."""
    if type_name in _registered:
        return _registered[type_name]
    if isinstance(type_name, str) and type_name in BUILT_IN:
        module, cls = BUILT_IN[type_name].split(":")
        return getattr(importlib.import_module(module), cls)
    raise SpaceError(f"search space {source}: backbone.type {type_name!r} unknown; allowed: {', '.join(names())}")


def backbone_type(config: dict[str, Any]) -> Any:
    """The backbone type a space definition names (``backbone: NAME`` or ``{type: NAME}``)."""
    backbone = config.get("backbone") or {"type": DEFAULT_TYPE}
    return backbone.get("type", DEFAULT_TYPE) if isinstance(backbone, dict) else backbone


def from_config(config: dict[str, Any], source: str, base_dir: Path | None) -> tuple[Backbone, dict[str, Any]]:
    """The backbone of a space definition (see :meth:`Backbone.from_config`)."""
    return backbone_class(backbone_type(config), source).from_config(config, source, base_dir)


__all__ = ["BUILT_IN", "Backbone", "FixedBackbone", "backbone_class", "backbone_type", "from_config", "names",
           "register", "unregister"]
