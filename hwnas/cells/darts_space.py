"""The DARTS cell search space shared by every cell-search method (DARTS, DOTS, EoiNAS, MS-DARTS).

A cell has 2 input nodes (the outputs of the two previous cells), ``steps`` intermediate nodes
(4 by default) and an output that concatenates the intermediate nodes. In the search network
every intermediate node sums a *mixed op* over the edges from all its predecessors; the method
decides how the 8 candidate ops of an edge are weighted (softmax, group softmax, a Gumbel
sample, a pruned subset) and, for DOTS, how edges are scaled. Reduction cells sit at 1/3 and
2/3 of the depth and apply stride 2 on every edge leaving an input node.

References: Liu et al., "DARTS: Differentiable Architecture Search", ICLR 2019 (space and ops);
thesis ch. 2 (DOTS) uses the same space. The ops are written from the paper's description.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

PRIMITIVES: tuple[str, ...] = (
    "none",
    "skip_connect",
    "avg_pool_3x3",
    "max_pool_3x3",
    "sep_conv_3x3",
    "sep_conv_5x5",
    "dil_conv_3x3",
    "dil_conv_5x5",
)
NONE_INDEX = PRIMITIVES.index("none")
# DOTS Group-V2: a parameter-free group and a parametric group, each with its own softmax.
PARAMETER_FREE = ("none", "skip_connect", "avg_pool_3x3", "max_pool_3x3")
PARAMETRIC = ("sep_conv_3x3", "sep_conv_5x5", "dil_conv_3x3", "dil_conv_5x5")
NUM_INPUTS = 2


def num_edges(steps: int = 4) -> int:
    """Edges of a cell: node i (0-based) has 2 + i incoming edges."""
    return sum(NUM_INPUTS + i for i in range(steps))


def edge_index(node: int, source: int) -> int:
    """Position of the edge ``source -> node`` in the flat edge order (node-major, sources ascending)."""
    return sum(NUM_INPUTS + i for i in range(node)) + source


def node_edges(node: int) -> list[int]:
    return [edge_index(node, s) for s in range(NUM_INPUTS + node)]


def reduction_layers(layers: int) -> tuple[int, ...]:
    """Cells at 1/3 and 2/3 of the depth reduce (DARTS convention)."""
    return tuple(sorted({layers // 3, 2 * layers // 3}))


class ReLUConvBN(nn.Sequential):
    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, padding: int, affine: bool):
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_out, kernel_size, stride=stride, padding=padding, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class DilConv(nn.Sequential):
    """ReLU → depthwise (dilated) conv → pointwise conv → BN."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, dilation: int, affine: bool):
        padding = dilation * (kernel_size - 1) // 2
        super().__init__(
            nn.ReLU(inplace=False),
            nn.Conv2d(c_in, c_in, kernel_size, stride=stride, padding=padding, dilation=dilation, groups=c_in, bias=False),
            nn.Conv2d(c_in, c_out, 1, bias=False),
            nn.BatchNorm2d(c_out, affine=affine),
        )


class SepConv(nn.Sequential):
    """Two stacked depthwise-separable convs (the first carries the stride), as in DARTS."""

    def __init__(self, c_in: int, c_out: int, kernel_size: int, stride: int, affine: bool):
        super().__init__(
            DilConv(c_in, c_in, kernel_size, stride, 1, affine),
            DilConv(c_in, c_out, kernel_size, 1, 1, affine),
        )


class Zero(nn.Module):
    def __init__(self, stride: int):
        super().__init__()
        self.stride = stride

    def forward(self, x):
        if self.stride == 1:
            return x.mul(0.0)
        return x[:, :, :: self.stride, :: self.stride].mul(0.0)


class FactorizedReduce(nn.Module):
    """Stride-2 1x1 convs on two pixel-shifted grids, concatenated: halves the size without losing half the pixels."""

    def __init__(self, c_in: int, c_out: int, affine: bool):
        super().__init__()
        self.relu = nn.ReLU(inplace=False)
        self.conv1 = nn.Conv2d(c_in, c_out // 2, 1, stride=2, bias=False)
        self.conv2 = nn.Conv2d(c_in, c_out - c_out // 2, 1, stride=2, bias=False)
        self.bn = nn.BatchNorm2d(c_out, affine=affine)

    def forward(self, x):
        x = self.relu(x)
        # shift by one pixel and pad back so odd and even sizes give the same output size as conv1
        shifted = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))
        return self.bn(torch.cat([self.conv1(x), self.conv2(shifted)], dim=1))


def make_op(name: str, channels: int, stride: int, affine: bool) -> nn.Module:
    if name == "none":
        return Zero(stride)
    if name == "skip_connect":
        return nn.Identity() if stride == 1 else FactorizedReduce(channels, channels, affine)
    if name == "avg_pool_3x3":
        return nn.AvgPool2d(3, stride=stride, padding=1, count_include_pad=False)
    if name == "max_pool_3x3":
        return nn.MaxPool2d(3, stride=stride, padding=1)
    if name.startswith("sep_conv_"):
        k = int(name[-1])
        return SepConv(channels, channels, k, stride, affine)
    if name.startswith("dil_conv_"):
        k = int(name[-1])
        return DilConv(channels, channels, k, stride, 2, affine)
    raise ValueError(f"unknown op {name!r}; allowed: {', '.join(PRIMITIVES)}")


class MixedOp(nn.Module):
    """All 8 candidate ops of one edge; ``forward`` sums ``weights[k] * op_k(x)`` over the active ops."""

    def __init__(self, channels: int, stride: int):
        super().__init__()
        ops = []
        for name in PRIMITIVES:
            op = make_op(name, channels, stride, affine=False)
            if "pool" in name:  # DARTS: a BN after pooling keeps its scale comparable to the convs'
                op = nn.Sequential(op, nn.BatchNorm2d(channels, affine=False))
            ops.append(op)
        self.ops = nn.ModuleList(ops)

    def forward(self, x, weights: torch.Tensor, active: Sequence[int] | None = None):
        indices = range(len(self.ops)) if active is None else active
        out = None
        for k in indices:
            y = weights[k] * self.ops[k](x)
            out = y if out is None else out + y
        return out


@dataclass
class CellMix:
    """How one cell type mixes its edges during search.

    op_weights: (edges, 8) weight of each op on each edge (may be a straight-through one-hot).
    edge_scale: (edges,) multiplier per edge (DOTS γ); None = 1.
    active: per edge, the op indices to compute (others are skipped: pruned or zero-weight ops).
    """

    op_weights: torch.Tensor
    edge_scale: torch.Tensor | None = None
    active: Sequence[Sequence[int]] | None = None


class SearchCell(nn.Module):
    def __init__(self, steps: int, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.steps = steps
        self.reduction = reduction
        self.pre0 = FactorizedReduce(c_pp, c, affine=False) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0, False)
        self.pre1 = ReLUConvBN(c_p, c, 1, 1, 0, False)
        self.edges = nn.ModuleList()
        for node in range(steps):
            for source in range(NUM_INPUTS + node):
                stride = 2 if reduction and source < NUM_INPUTS else 1
                self.edges.append(MixedOp(c, stride))

    def forward(self, s0, s1, mix: CellMix):
        states = [self.pre0(s0), self.pre1(s1)]
        for node in range(self.steps):
            total = None
            for source in range(NUM_INPUTS + node):
                e = edge_index(node, source)
                active = None if mix.active is None else mix.active[e]
                y = self.edges[e](states[source], mix.op_weights[e], active)
                if y is None:
                    continue
                if mix.edge_scale is not None:
                    y = mix.edge_scale[e] * y
                total = y if total is None else total + y
            if total is None:  # no live edge: a zero node of the right shape
                ref = states[1] if not self.reduction else states[1][:, :, ::2, ::2]
                total = ref.mul(0.0)
            states.append(total)
        return torch.cat(states[NUM_INPUTS:], dim=1)


class _Backbone(nn.Module):
    """Stem + stacked cells + global pooling + classifier, shared by the search and the train networks."""

    def _build(self, channels: int, num_classes: int, layers: int, steps: int, in_channels: int,
               stem_multiplier: int, make_cell):
        self.layers = layers
        self.steps = steps
        c_curr = stem_multiplier * channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, c_curr, 3, padding=1, bias=False), nn.BatchNorm2d(c_curr))
        c_pp, c_p, c_curr = c_curr, c_curr, channels
        self.cells = nn.ModuleList()
        reduction_prev = False
        reductions = reduction_layers(layers)
        for i in range(layers):
            reduction = i in reductions
            if reduction:
                c_curr *= 2
            cell = make_cell(c_pp, c_p, c_curr, reduction, reduction_prev)
            self.cells.append(cell)
            reduction_prev = reduction
            c_pp, c_p = c_p, cell.multiplier * c_curr
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(c_p, num_classes)


class SearchNetwork(_Backbone):
    """The weight-sharing supernet: every edge holds all 8 ops. Architecture parameters live in the
    search method, not here, so the same network serves every method."""

    def __init__(self, channels: int, num_classes: int, layers: int, steps: int = 4, in_channels: int = 3,
                 stem_multiplier: int = 3):
        super().__init__()

        def make_cell(c_pp, c_p, c, reduction, reduction_prev):
            cell = SearchCell(steps, c_pp, c_p, c, reduction, reduction_prev)
            cell.multiplier = steps
            return cell

        self._build(channels, num_classes, layers, steps, in_channels, stem_multiplier, make_cell)

    def forward(self, x, normal: CellMix, reduce: CellMix):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1, reduce if cell.reduction else normal)
        return self.classifier(self.pool(s1).flatten(1))


class GenotypeCell(nn.Module):
    """A derived (discrete) cell: each intermediate node sums its genotype edges; output = concat of all nodes."""

    def __init__(self, nodes, c_pp: int, c_p: int, c: int, reduction: bool, reduction_prev: bool):
        super().__init__()
        self.reduction = reduction
        self.pre0 = FactorizedReduce(c_pp, c, affine=True) if reduction_prev else ReLUConvBN(c_pp, c, 1, 1, 0, True)
        self.pre1 = ReLUConvBN(c_p, c, 1, 1, 0, True)
        self.nodes = [tuple(node) for node in nodes]
        self.ops = nn.ModuleList()
        for node in self.nodes:
            for op_name, source in node:
                stride = 2 if reduction and source < NUM_INPUTS else 1
                self.ops.append(make_op(op_name, c, stride, affine=True))
        self.multiplier = len(self.nodes)

    def forward(self, s0, s1):
        states = [self.pre0(s0), self.pre1(s1)]
        k = 0
        for node in self.nodes:
            total = None
            for _, source in node:
                y = self.ops[k](states[source])
                k += 1
                total = y if total is None else total + y
            states.append(total)
        return torch.cat(states[NUM_INPUTS:], dim=1)


class GenotypeNetwork(_Backbone):
    """A genotype stacked into a classification network, trained from scratch (``hwnas cells train``)."""

    def __init__(self, genotype, channels: int, num_classes: int, layers: int, in_channels: int = 3,
                 stem_multiplier: int = 3):
        super().__init__()

        def make_cell(c_pp, c_p, c, reduction, reduction_prev):
            nodes = genotype.reduce if reduction else genotype.normal
            return GenotypeCell(nodes, c_pp, c_p, c, reduction, reduction_prev)

        self._build(channels, num_classes, layers, len(genotype.normal), in_channels, stem_multiplier, make_cell)

    def forward(self, x):
        s0 = s1 = self.stem(x)
        for cell in self.cells:
            s0, s1 = s1, cell(s0, s1)
        return self.classifier(self.pool(s1).flatten(1))
