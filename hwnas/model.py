"""The static iNAS SOD network of one architecture (:class:`SODNet`) and its deploy form.

iNAS (thesis §3.2.1, tables 3.1/3.2): stem → 7 MBConv+SMSU stages → 5-level searchable transport
→ coarse-to-fine decoder → one prediction per decoder level (deep supervision). In a space with a
cell backbone the stem and stages are replaced by one fixed ``backbone`` module
(:class:`hwnas.cells.backbone.CellBackbone`) that emits the 5 levels; the head is unchanged. The exact head
wiring is the contract in docs/interfaces.md ("hwnas: models").

Module paths are part of the design: ``hwnas.blocks`` names each LUT block by the path of the
module that computes it in :func:`for_export`'s network (``stem``, ``stages.S.L``,
``backbone`` (cell backbone), ``transport.I.branches.J``, ``transport.I.fusion``, ``decoder.I.branches.J``, ``decoder.I.fusion``,
``head``), and ``hwnas.supernet`` mirrors the same paths with elastic modules.
"""

from __future__ import annotations

import torch
import torch.nn as nn

from hwnas.arch import Arch
from hwnas.ops import (
    MBConv, Branch, Fusion, HeadLevel, PredictionHead, ProbabilityHead, conv_bn, init_weights,
)
from hwnas.space import NUM_LEVELS, SearchSpace

TRANSPORT_UNITS = 2  # transport fusion: 2 x (SMSU + pointwise conv + BN)
DECODER_UNITS = 1  # decoder fusion: 1 x (SMSU + pointwise conv + BN)


def backbone_levels(net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """The 5 backbone features feeding head levels 1..5 (a cell backbone emits them directly)."""
    if net.backbone is not None:
        return list(net.backbone(x))
    x = net.stem(x)
    stage_outputs = []
    for stage in net.stages:
        x = stage(x)
        stage_outputs.append(x)
    return [stage_outputs[s - 1] for s in net.level_stages]


def decode(net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Decoder outputs of levels 1..5 (index 0 = level 1) of a network with SODNet's attributes."""
    levels = backbone_levels(net, x)
    transport = []
    for t in net.transport:
        transport.append(t.fusion(*[t.branches[str(j)](levels[j - 1]) for j in t.inputs]))
    decoded: list[torch.Tensor | None] = [None] * NUM_LEVELS
    for i in range(NUM_LEVELS, 0, -1):  # coarse to fine: level i needs decoder level i+1
        d = net.decoder[i - 1]
        ins = [d.branches[str(j)](decoded[j - 1] if j == i + 1 else transport[j - 1]) for j in d.inputs]
        decoded[i - 1] = d.fusion(*ins)
    return decoded


def level_in_channels(space: SearchSpace, arch: Arch, level: int) -> int:
    """Channels of the backbone feature feeding head level ``level`` (1..5)."""
    if space.cell_backbone is not None:
        return space.cell_backbone.level_widths[level - 1]
    return arch.stages[space.head.level_stages[level - 1] - 1].width


def build_cell_backbone(space: SearchSpace) -> nn.Module:
    """The fixed cell backbone of a ``backbone: {type: cells}`` space (random init)."""
    from hwnas.cells.backbone import CellBackbone

    spec = space.cell_backbone
    net = CellBackbone(spec.genotype(), spec.channels, spec.cells_per_level, stem_channels=spec.stem_channels)
    if tuple(net.out_channels) != spec.level_widths:  # the head is sized from the spec before building
        raise AssertionError(f"cell backbone widths {net.out_channels} != space's {spec.level_widths}")
    return net


class SODNet(nn.Module):
    """Static network for one architecture (random init unless weights are copied in).

    ``forward(x)`` → list of 5 logit maps ``(N, 1, H, W)`` at input size, index 0 = level 1
    (the final prediction).
    """

    def __init__(self, space: SearchSpace, arch: Arch):
        super().__init__()
        space.validate(arch)
        self.space, self.arch = space, arch
        self.level_stages = tuple(space.head.level_stages)
        if space.cell_backbone is not None:
            self.backbone = build_cell_backbone(space)
        else:
            self.backbone = None
            self.stem = conv_bn(3, arch.stem_width, space.stem_kernel_size, space.stem_stride, act=True)
            stages, cin = [], arch.stem_width
            for spec, stage in zip(space.stages, arch.stages):
                layers = []
                for li, ks in enumerate(stage.kernel_sizes):
                    stride = spec.stride if li == 0 else 1
                    layers.append(MBConv(cin, stage.width, spec.expand_ratio, stride, ks, space.se_ratio))
                    cin = stage.width
                stages.append(nn.Sequential(*layers))
            self.stages = nn.ModuleList(stages)
        ch = space.head.channels
        self.transport = nn.ModuleList(
            HeadLevel(
                {j: Branch(level_in_channels(space, arch, j), ch[i - 1], j - i) for j in lv.inputs},
                Fusion(ch[i - 1], lv.kernel_sizes, TRANSPORT_UNITS),
                lv.inputs,
            )
            for i, lv in enumerate(arch.transport, 1)
        )
        self.decoder = nn.ModuleList(
            HeadLevel(
                {j: Branch(ch[j - 1], ch[i - 1], j - i) for j in lv.inputs},
                Fusion(ch[i - 1], lv.kernel_sizes, DECODER_UNITS),
                lv.inputs,
            )
            for i, lv in enumerate(arch.decoder, 1)
        )
        self.heads = nn.ModuleList(PredictionHead(ch[i - 1], 2**i) for i in range(1, NUM_LEVELS + 1))
        init_weights(self)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        decoded = decode(self, x)
        return [head(d) for head, d in zip(self.heads, decoded)]


class SODExport(nn.Module):
    """Deploy-form network: the sigmoid probability of the finest level only (no unused heads)."""

    def __init__(self, net: SODNet):
        super().__init__()
        self.level_stages = net.level_stages
        self.backbone = net.backbone
        if net.backbone is None:
            self.stem, self.stages = net.stem, net.stages
        self.transport, self.decoder = net.transport, net.decoder
        self.head = ProbabilityHead(net.heads[0])
        self.arch = net.arch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(decode(self, x)[0])


def for_export(net: SODNet) -> SODExport:
    """Deploy form of ``net`` (re-parameterized: no BN, single-branch SMSUs), eval mode.

    ``net`` itself is not modified.
    """
    from deploy.reparam import reparameterize

    if not isinstance(net, SODNet):
        raise TypeError(f"for_export expects an SODNet, got {type(net).__name__}")
    return SODExport(reparameterize(net)).eval()
