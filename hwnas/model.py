"""The static iNAS SOD network of one architecture (:class:`SODNet`) and its deploy form.

iNAS (thesis §3.2.1, tables 3.1/3.2): backbone → 5-level searchable transport → coarse-to-fine
decoder → one prediction per decoder level (deep supervision). The backbone's modules come from
the space's :class:`~hwnas.backbones.Backbone` (``space.backbone``: stem + 7 MBConv+SMSU stages
in iNAS, or a fixed cell stack), which also says how they compute the 5 levels; the head is the
same for every backbone. The exact head wiring is the contract in docs/interfaces.md
("hwnas: models").

Module paths are part of the design: ``hwnas.blocks`` names each LUT block by the path of the
module that computes it in :func:`for_export`'s network (the backbone's, e.g. ``stem``,
``stages.S.L`` or ``backbone``; ``transport.I.branches.J``, ``transport.I.fusion``,
``decoder.I.branches.J``, ``decoder.I.fusion``, ``head``), and ``hwnas.supernet`` mirrors the
same paths with elastic modules.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
import torch.nn as nn

from hwnas.arch import Arch
from hwnas.levels import NUM_LEVELS
from hwnas.ops import Branch, Fusion, HeadLevel, PredictionHead, ProbabilityHead, init_weights

if TYPE_CHECKING:
    from hwnas.space import SearchSpace

TRANSPORT_UNITS = 2  # transport fusion: 2 x (SMSU + pointwise conv + BN)
DECODER_UNITS = 1  # decoder fusion: 1 x (SMSU + pointwise conv + BN)


def decode(net: nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Decoder outputs of levels 1..5 (index 0 = level 1) of a network with SODNet's attributes."""
    levels = net.space.backbone.levels(net, x)
    transport = []
    for t in net.transport:
        transport.append(t.fusion(*[t.branches[str(j)](levels[j - 1]) for j in t.inputs]))
    decoded: list[torch.Tensor | None] = [None] * NUM_LEVELS
    for i in range(NUM_LEVELS, 0, -1):  # coarse to fine: level i needs decoder level i+1
        d = net.decoder[i - 1]
        ins = [d.branches[str(j)](decoded[j - 1] if j == i + 1 else transport[j - 1]) for j in d.inputs]
        decoded[i - 1] = d.fusion(*ins)
    return decoded


class SODNet(nn.Module):
    """Static network for one architecture (random init unless weights are copied in).

    ``forward(x)`` → list of 5 logit maps ``(N, 1, H, W)`` at input size, index 0 = level 1
    (the final prediction).
    """

    def __init__(self, space: SearchSpace, arch: Arch):
        super().__init__()
        space.validate(arch)
        self.space, self.arch = space, arch
        for name, module in space.backbone.static_modules(arch).items():
            setattr(self, name, module)
        widths = space.backbone.level_widths(arch)
        ch = space.head.channels
        self.transport = nn.ModuleList(
            HeadLevel(
                {j: Branch(widths[j - 1], ch[i - 1], j - i) for j in lv.inputs},
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
        self.space = net.space
        for name in net.space.backbone.module_names:
            setattr(self, name, getattr(net, name))
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
