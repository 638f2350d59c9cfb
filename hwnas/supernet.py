"""The iNAS weight-sharing supernet over a whole search space.

iNAS (thesis §3.2.2, fig. 3.5; papers.md §1.3): only the largest network's parameters exist and
every architecture of the space is a view of them, shared along four dimensions —
channels (first ``k``), depth (first ``d`` layers of a stage), kernels (centre crop of one shared
depthwise kernel through a learnable transform, BN per kernel size; see
:class:`hwnas.ops.ElasticSMSU`), and multi-level fusion (the densest transport/decoder
connections are built; an architecture uses a subset). The backbone's elastic modules and how an
architecture selects its path in them come from the space's backbone (``space.backbone``); with a
fixed cell backbone (``backbone: {type: cells}``) only the head is weight-shared.

Module paths mirror :class:`hwnas.model.SODNet` so :meth:`Supernet.subnet` copies module by module.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from hwnas.arch import Arch
from hwnas.errors import ArchError
from hwnas.levels import NUM_LEVELS, TOTAL_STRIDE
from hwnas.model import DECODER_UNITS, TRANSPORT_UNITS, SODNet, decode
from hwnas.ops import ElasticBranch, ElasticFusion, ElasticMBConv, HeadLevel, PredictionHead, init_weights

if TYPE_CHECKING:
    from hwnas.space import SearchSpace

STRIDE_ALL_LEVELS = TOTAL_STRIDE  # input sides must divide by this so every resampling is exact


class ElasticStage(nn.Module):
    """The deepest version of a stage; runs its first ``active_depth`` layers."""

    def __init__(self, layers: list[ElasticMBConv]):
        super().__init__()
        self.layers = nn.ModuleList(layers)
        self.active_depth = len(layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers[: self.active_depth]:
            x = layer(x)
        return x


class Supernet(nn.Module):
    """Weight-sharing supernet of ``space``; ``set_active(arch)`` picks the path ``forward`` runs.

    ``forward(x)`` → 5 logit maps ``(N, 1, H, W)`` at input size, index 0 = level 1. Starts with
    the largest architecture of the space active.
    """

    def __init__(self, space: SearchSpace):
        super().__init__()
        self.space = space
        for name, module in space.backbone.elastic_modules().items():
            setattr(self, name, module)
        backbone_widths = [max(w) for w in space.backbone.level_width_choices()]
        ch, levels = space.head.channels, range(1, NUM_LEVELS + 1)
        self.transport = nn.ModuleList(
            HeadLevel(
                {j: ElasticBranch(backbone_widths[j - 1], ch[i - 1], j - i) for j in levels},
                ElasticFusion(ch[i - 1], space.head.transport_kernel_sizes, TRANSPORT_UNITS),
                tuple(levels),
            )
            for i in levels
        )
        self.decoder = nn.ModuleList(
            HeadLevel(
                {j: ElasticBranch(ch[j - 1], ch[i - 1], j - i) for j in range(i, NUM_LEVELS + 1)},
                ElasticFusion(ch[i - 1], space.head.decoder_kernel_sizes, DECODER_UNITS),
                tuple(range(i, NUM_LEVELS + 1)),
            )
            for i in levels
        )
        self.heads = nn.ModuleList(PredictionHead(ch[i - 1], 2**i) for i in levels)
        init_weights(self)
        self.active_arch: Arch | None = None
        self.set_active(space.largest())

    def set_active(self, arch: Arch) -> None:
        """Select the sub-network ``forward`` computes (raises ArchError if not in the space)."""
        self.space.validate(arch)
        self.space.backbone.set_active(self, arch)
        for levels, arch_levels in ((self.transport, arch.transport), (self.decoder, arch.decoder)):
            for level, la in zip(levels, arch_levels):
                level.inputs = la.inputs
                level.fusion.set_active(la.kernel_sizes)
        self.active_arch = arch

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        h, w = x.shape[-2:]
        if h % STRIDE_ALL_LEVELS or w % STRIDE_ALL_LEVELS:
            raise ArchError(f"input size {h}x{w}: height and width must be multiples of {STRIDE_ALL_LEVELS}")
        decoded = decode(self, x)
        return [head(d) for head, d in zip(self.heads, decoded)]

    @torch.no_grad()
    def subnet(self, arch: Arch) -> SODNet:
        """A static :class:`SODNet` of ``arch`` with COPIED weights (later training leaves it alone).

        Transformed smaller kernels are materialised into the static SMSU branches. The result is
        on this supernet's device and in its train/eval mode; the active arch is not changed.
        """
        net = SODNet(self.space, arch)  # validates
        self.space.backbone.copy_into(self, net)
        for elevels, slevels in ((self.transport, net.transport), (self.decoder, net.decoder)):
            for elevel, slevel in zip(elevels, slevels):
                for j, branch in slevel.branches.items():
                    elevel.branches[j].copy_into(branch)
                elevel.fusion.copy_into(slevel.fusion)
        for ehead, shead in zip(self.heads, net.heads):
            shead.load_state_dict(ehead.state_dict())
        param = next(self.parameters())
        return net.to(device=param.device, dtype=param.dtype).train(self.training)
