"""Latency-table blocks of the iNAS SOD space (thesis §3.2.3; papers.md §1.4).

:func:`arch_blocks` cuts ``for_export(SODNet(space, arch))`` into the pieces it computes, in
forward order — stem; every MBConv layer; per transport level its input branches then its fusion
(levels 1..5); per decoder level its branches then its fusion (levels 5..1, the order the decoder
runs); the final probability head — so a LUT sums exactly the deploy-form computation. Each
block's ``build()`` makes the piece from the model's own module classes (:mod:`hwnas.ops`) and
re-parameterizes it, so block latencies track the model's.

Keys name everything that changes the computation (readable, stable)::

    stem r64>32 c3>8 k3 s2
    mbconv r32>16 c8>12 e3 s2 k7 se0.25      an SMSU is keyed by its LARGEST kernel: its deploy
                                             form is one depthwise conv of that size (as the
                                             authors' LUT does; keeps the table small)
    branch r8>16 c24>12 up2                  1x1 conv (+BN folded) then resample: upN / downN / same
    fusion r16 c12 n3 u2 k5                  mean of n inputs, u units of SMSU+pointwise, residual
    head r32>64 c8 sigmoid                   final 1x1 conv, bilinear up, sigmoid
    cells r64 g1a2b3c4d5e c8 n1 s16          a fixed cell backbone (one block: the whole pyramid),
                                             g = genotype content hash, c = level-1 cell width,
                                             n = cells per level, s = stem width

A decoder branch and a transport branch with the same key are the same computation.
:func:`space_blocks` enumerates every distinct block of the space (a superset of any
architecture's blocks) per resolution, in a deterministic order.
"""

from __future__ import annotations

import functools
from typing import Iterable, Iterator, Sequence

import torch.nn as nn

from hwnas.arch import Arch
from hwnas.model import DECODER_UNITS, TRANSPORT_UNITS
from hwnas.ops import MBConv, Branch, Fusion, PredictionHead, ProbabilityHead, conv_bn, spatial_size
from hwnas.space import NUM_LEVELS, SearchSpace, decoder_input_choices, transport_input_choices
from lut.blocks import BlockSpec


# ------------------------------------------------------------------------ deploy-form builders
def _deploy(module: nn.Module) -> nn.Module:
    from deploy.reparam import reparameterize

    return reparameterize(module).eval()


def _build_stem(width: int, kernel_size: int, stride: int) -> nn.Module:
    return _deploy(conv_bn(3, width, kernel_size, stride, act=True))


def _build_mbconv(cin: int, cout: int, expand_ratio: int, stride: int, kernel: int, se_ratio: float) -> nn.Module:
    return _deploy(MBConv(cin, cout, expand_ratio, stride, (kernel,), se_ratio))


def _build_branch(cin: int, cout: int, shift: int) -> nn.Module:
    return _deploy(Branch(cin, cout, shift))


def _build_fusion(channels: int, kernel: int, units: int) -> nn.Module:
    return _deploy(Fusion(channels, (kernel,), units))


def _build_cells(space: SearchSpace) -> nn.Module:
    from hwnas.model import build_cell_backbone

    return _deploy(_Levels(build_cell_backbone(space)))


class _Levels(nn.Module):
    """The backbone's 5 levels as a tuple (what exporters and profilers expect of several outputs)."""

    def __init__(self, backbone: nn.Module):
        super().__init__()
        self.backbone = backbone

    def forward(self, x):
        return tuple(self.backbone(x))


def _build_head(channels: int, scale: int) -> nn.Module:
    return _deploy(ProbabilityHead(PredictionHead(channels, scale)))


# ---------------------------------------------------------------------------- block specs
def _stem(space: SearchSpace, res: int, width: int) -> BlockSpec:
    k, s = space.stem_kernel_size, space.stem_stride
    key = f"stem r{res}>{spatial_size(res, s)} c3>{width} k{k} s{s}"
    return BlockSpec(key, "stem", ((1, 3, res, res),), functools.partial(_build_stem, width, k, s))


def _cells(space: SearchSpace, res: int) -> BlockSpec:
    spec = space.cell_backbone
    key = f"cells r{res} g{spec.genotype_hash} c{spec.channels} n{spec.cells_per_level} s{spec.stem_channels}"
    return BlockSpec(key, "cells", ((1, 3, res, res),), functools.partial(_build_cells, space))


def _mbconv(space: SearchSpace, r_in: int, cin: int, cout: int, expand_ratio: int, stride: int, kernel: int) -> BlockSpec:
    se = f" se{space.se_ratio:g}" if space.se_ratio > 0 else ""
    key = f"mbconv r{r_in}>{spatial_size(r_in, stride)} c{cin}>{cout} e{expand_ratio} s{stride} k{kernel}{se}"
    build = functools.partial(_build_mbconv, cin, cout, expand_ratio, stride, kernel, space.se_ratio)
    return BlockSpec(key, "mbconv", ((1, cin, r_in, r_in),), build)


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
                     functools.partial(_build_head, channels, scale))


def _stage_sizes(space: SearchSpace, res: int) -> list[tuple[int, int]]:
    """(input side, output side) of every backbone stage at input resolution ``res``."""
    r = spatial_size(res, space.stem_stride)
    out = []
    for spec in space.stages:
        out.append((r, spatial_size(r, spec.stride)))
        r = out[-1][1]
    return out


def _level_sizes(space: SearchSpace, res: int) -> list[int]:
    if space.cell_backbone is not None:
        return [res // 2**i for i in range(1, NUM_LEVELS + 1)]
    sizes = _stage_sizes(space, res)
    return [sizes[s - 1][1] for s in space.head.level_stages]


# ------------------------------------------------------------------------------- public API
def arch_block_paths(space: SearchSpace, arch: Arch) -> list[tuple[BlockSpec, str]]:
    """Blocks of ``arch`` in forward order, each with the path of the module computing it in
    ``for_export(SODNet(space, arch))`` (lets tests check the decomposition module by module)."""
    res, ch = arch.resolution, space.head.channels
    if space.cell_backbone is not None:
        out = [(_cells(space, res), "backbone")]
        widths = list(space.cell_backbone.level_widths)
    else:
        out = [(_stem(space, res, arch.stem_width), "stem")]
        cin = arch.stem_width
        for s, (spec, stage, (r_in, _)) in enumerate(zip(space.stages, arch.stages, _stage_sizes(space, res))):
            r = r_in
            for li, kernels in enumerate(stage.kernel_sizes):
                stride = spec.stride if li == 0 else 1
                out.append((_mbconv(space, r, cin, stage.width, spec.expand_ratio, stride, max(kernels)), f"stages.{s}.{li}"))
                r, cin = spatial_size(r, stride), stage.width
        widths = [arch.stages[s - 1].width for s in space.head.level_stages]
    sizes = _level_sizes(space, res)
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
    if space.cell_backbone is not None:
        yield _cells(space, res)
    else:
        for w in space.stem_widths:
            yield _stem(space, res, w)
    prev_widths = space.stem_widths
    for spec, (r_in, r_out) in zip(space.stages, _stage_sizes(space, res)):
        for k in spec.kernel_sizes:  # every kernel is the largest of some kernel set
            for cout in spec.widths:
                for cin in prev_widths:
                    yield _mbconv(space, r_in, cin, cout, spec.expand_ratio, spec.stride, k)
                if max(spec.depths) > 1:
                    yield _mbconv(space, r_out, cout, cout, spec.expand_ratio, 1, k)
        prev_widths = spec.widths
    sizes = _level_sizes(space, res)
    if space.cell_backbone is not None:
        level_widths = [(w,) for w in space.cell_backbone.level_widths]
    else:
        level_widths = [space.stages[s - 1].widths for s in space.head.level_stages]
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
