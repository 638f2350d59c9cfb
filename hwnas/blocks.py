"""Latency-table blocks of the iNAS SOD space (thesis §3.2.3; papers.md §1.4).

:func:`arch_blocks` cuts ``for_export(SODNet(space, arch))`` into the pieces it computes, in
forward order — the backbone's blocks (``space.backbone.arch_blocks``: the stem and every MBConv
layer in iNAS, one block for a fixed cell backbone); per transport level its input branches then
its fusion (levels 1..5); per decoder level its branches then its fusion (levels 5..1, the order
the decoder runs); the final probability head — so a LUT sums exactly the deploy-form
computation. Each block's ``build()`` makes the piece from the model's own module classes
(:mod:`hwnas.ops`) and re-parameterizes it (:func:`deploy_form`), so block latencies track the
model's.

Keys name everything that changes the computation (readable, stable); the backbones document
theirs (``stem ...``, ``mbconv ...`` in :mod:`hwnas.backbones.mbconv_smsu`, ``cells ...`` in
:mod:`hwnas.backbones.darts_cells`); the head's::

    branch r8>16 c24>12 up2                  1x1 conv (+BN folded) then resample: upN / downN / same
    fusion r16 c12 n3 u2 k5                  mean of n inputs, u units of SMSU+pointwise, residual
    head r32>64 c8 sigmoid                   final 1x1 conv, bilinear up, sigmoid

A decoder branch and a transport branch with the same key are the same computation.
:func:`space_blocks` enumerates every distinct block of the space (a superset of any
architecture's blocks) per resolution, in a deterministic order.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Iterable, Iterator, Sequence

import torch.nn as nn

from hwnas.arch import Arch
from hwnas.levels import NUM_LEVELS, decoder_input_choices, transport_input_choices
from hwnas.model import DECODER_UNITS, TRANSPORT_UNITS
from hwnas.ops import Branch, Fusion, PredictionHead, ProbabilityHead
from lut.blocks import BlockSpec

if TYPE_CHECKING:
    from hwnas.space import SearchSpace


# ------------------------------------------------------------------------ deploy-form builders
def deploy_form(module: nn.Module) -> nn.Module:
    """A block's module as it runs deployed: re-parameterized (BN folded, one SMSU branch), eval mode."""
    from deploy.reparam import reparameterize

    return reparameterize(module).eval()


def _build_branch(cin: int, cout: int, shift: int) -> nn.Module:
    return deploy_form(Branch(cin, cout, shift))


def _build_fusion(channels: int, kernel: int, units: int) -> nn.Module:
    return deploy_form(Fusion(channels, (kernel,), units))


class LevelsTuple(nn.Module):
    """The backbone's 5 levels as a tuple (what exporters and profilers expect of several outputs)."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, x):
        return tuple(self.backbone(x))


def _build_head(channels: int, scale: int) -> nn.Module:
    return deploy_form(ProbabilityHead(PredictionHead(channels, scale)))


# ---------------------------------------------------------------------------- block specs
def _branch(r_in: int, r_out: int, cin: int, cout: int, shift: int) -> BlockSpec:
    how = f"up{2 ** shift}" if shift > 0 else f"down{2 ** -shift}" if shift < 0 else "same"
    key = f"branch r{r_in}>{r_out} c{cin}>{cout} {how}"
    return BlockSpec(key, "branch", ((1, cin, r_in, r_in),), functools.partial(_build_branch, cin, cout, shift))


def _fusion(r: int, channels: int, n_inputs: int, units: int, kernel: int) -> BlockSpec:
    key = f"fusion r{r} c{channels} n{n_inputs} u{units} k{kernel}"
    shapes = tuple((1, channels, r, r) for _ in range(n_inputs))
    return BlockSpec(key, "fusion", shapes, functools.partial(_build_fusion, channels, kernel, units))


def _head(res: int, r_in: int, channels: int) -> BlockSpec:
    scale = res // r_in
    return BlockSpec(f"head r{r_in}>{res} c{channels} sigmoid", "head", ((1, channels, r_in, r_in),),
                     functools.partial(_build_head, channels, scale), model_output=True)


# ------------------------------------------------------------------------------- public API
def arch_block_paths(space: SearchSpace, arch: Arch) -> list[tuple[BlockSpec, str]]:
    """Blocks of ``arch`` in forward order, each with the path of the module computing it in
    ``for_export(SODNet(space, arch))`` (lets tests check the decomposition module by module)."""
    res, ch = arch.resolution, space.head.channels
    out = list(space.backbone.arch_blocks(arch))
    widths = space.backbone.level_widths(arch)
    sizes = space.backbone.level_sizes(res)
    for i, lv in enumerate(arch.transport, 1):
        for j in lv.inputs:
            out.append((_branch(sizes[j - 1], sizes[i - 1], widths[j - 1], ch[i - 1], j - i), f"transport.{i - 1}.branches.{j}"))
        out.append((_fusion(sizes[i - 1], ch[i - 1], len(lv.inputs), TRANSPORT_UNITS, max(lv.kernel_sizes)), f"transport.{i - 1}.fusion"))
    for i in range(NUM_LEVELS, 0, -1):
        lv = arch.decoder[i - 1]
        for j in lv.inputs:
            out.append((_branch(sizes[j - 1], sizes[i - 1], ch[j - 1], ch[i - 1], j - i), f"decoder.{i - 1}.branches.{j}"))
        out.append((_fusion(sizes[i - 1], ch[i - 1], len(lv.inputs), DECODER_UNITS, max(lv.kernel_sizes)), f"decoder.{i - 1}.fusion"))
    out.append((_head(res, sizes[0], ch[0]), "head"))
    return out


def arch_blocks(space: SearchSpace, arch: Arch) -> list[BlockSpec]:
    """The deploy-form blocks of ``arch``, in forward order (repeated keys appear repeatedly)."""
    return [spec for spec, _ in arch_block_paths(space, arch)]


def _space_blocks_at(space: SearchSpace, res: int) -> Iterator[BlockSpec]:
    ch = space.head.channels
    yield from space.backbone.space_blocks(res)
    sizes = space.backbone.level_sizes(res)
    level_widths = space.backbone.level_width_choices()
    for i in range(1, NUM_LEVELS + 1):
        choices = transport_input_choices(i)
        for j in sorted({j for c in choices for j in c}):
            for w in level_widths[j - 1]:
                yield _branch(sizes[j - 1], sizes[i - 1], w, ch[i - 1], j - i)
        for n in sorted({len(c) for c in choices}):
            for k in space.head.transport_kernel_sizes:
                yield _fusion(sizes[i - 1], ch[i - 1], n, TRANSPORT_UNITS, k)
    for i in range(NUM_LEVELS, 0, -1):
        choices = decoder_input_choices(i)
        for j in sorted({j for c in choices for j in c}):
            yield _branch(sizes[j - 1], sizes[i - 1], ch[j - 1], ch[i - 1], j - i)
        for n in sorted({len(c) for c in choices}):
            for k in space.head.decoder_kernel_sizes:
                yield _fusion(sizes[i - 1], ch[i - 1], n, DECODER_UNITS, k)
    yield _head(res, sizes[0], ch[0])


def space_blocks(space: SearchSpace, resolutions: Sequence[int] | Iterable[int]) -> list[BlockSpec]:
    """Every distinct block (unique keys, deterministic order) of ``space`` at ``resolutions``."""
    seen: dict[str, BlockSpec] = {}
    for res in resolutions:
        for spec in _space_blocks_at(space, res):
            seen.setdefault(spec.key, spec)
    return list(seen.values())
