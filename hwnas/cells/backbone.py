"""A searched genotype as a feature-pyramid backbone for the iNAS SOD head (papers digest §5).

The iNAS head consumes 5 backbone levels at strides 2, 4, 8, 16, 32 (level 1 = finest). This
module stacks a genotype's cells into exactly that pyramid:

- stem: 3x3 conv, stride 2, + BN (stride 2);
- level 1: ``cells_per_level`` normal cells at stride 2;
- levels 2..5: one reduction cell (stride x2, channels x2) then ``cells_per_level`` normal cells.

``forward(x)`` returns the 5 level outputs, finest first; ``out_channels[i]`` is level i+1's width
(the number of intermediate nodes x that level's cell width). :mod:`hwnas.backbones.darts_cells`
plugs it into the iNAS head for spaces with ``backbone: {type: cells}``.

Deploy form (:meth:`CellBackbone.reparameterize`, the ``deploy.reparameterize`` protocol): every
Conv+BN folds — the ``nn.Sequential`` ones by ``deploy``'s generic pass, the BN after the
concatenation in :class:`~hwnas.cells.darts_space.FactorizedReduce` here, split over its two convs.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.cells.genotype import Genotype
from hwnas.cells.darts_space import FactorizedReduce, GenotypeCell
from hwnas.levels import NUM_LEVELS


class FoldedFactorizedReduce(nn.Module):
    """Deploy form of :class:`FactorizedReduce`: its BN folded into the two stride-2 1x1 convs."""

    def __init__(self, op: FactorizedReduce):
        super().__init__()
        from deploy.reparam import fold_bn

        c1 = op.conv1.out_channels
        self.conv1 = nn.Conv2d(op.conv1.in_channels, c1, 1, stride=2, bias=True)
        self.conv2 = nn.Conv2d(op.conv2.in_channels, op.conv2.out_channels, 1, stride=2, bias=True)
        # BN acts per channel of the concatenation: channels [0, c1) come from conv1, the rest from conv2
        w = torch.cat([op.conv1.weight, op.conv2.weight], dim=0)
        w, b = fold_bn(w, None, op.bn)
        with torch.no_grad():
            self.conv1.weight.copy_(w[:c1])
            self.conv1.bias.copy_(b[:c1])
            self.conv2.weight.copy_(w[c1:])
            self.conv2.bias.copy_(b[c1:])
        self.to(device=op.conv1.weight.device, dtype=op.conv1.weight.dtype)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(x)
        shifted = F.pad(x[:, :, 1:, 1:], (0, 1, 0, 1))  # as FactorizedReduce
        return torch.cat([self.conv1(x), self.conv2(shifted)], dim=1)


def _swap_factorized_reduce(module: nn.Module) -> None:
    for name, child in list(module._modules.items()):
        if isinstance(child, FactorizedReduce):
            module._modules[name] = FoldedFactorizedReduce(child)
        elif child is not None:
            _swap_factorized_reduce(child)


class CellBackbone(nn.Module):
    def __init__(self, genotype: Genotype, channels: int = 8, cells_per_level: int = 1, in_channels: int = 3,
                 stem_channels: int | None = None):
        super().__init__()
        if cells_per_level < 1:
            raise ValueError(f"cells_per_level must be >= 1, got {cells_per_level}")
        stem_channels = stem_channels or 2 * channels
        self.stem = nn.Sequential(nn.Conv2d(in_channels, stem_channels, 3, stride=2, padding=1, bias=False),
                                  nn.BatchNorm2d(stem_channels))
        c_pp = c_p = stem_channels
        c = channels
        reduction_prev = False
        self.levels = nn.ModuleList()
        out_channels = []
        for level in range(NUM_LEVELS):
            cells = nn.ModuleList()
            kinds = [False] * cells_per_level if level == 0 else [True] + [False] * cells_per_level
            for reduction in kinds:
                if reduction:
                    c *= 2
                cell = GenotypeCell(genotype.reduce if reduction else genotype.normal, c_pp, c_p, c, reduction,
                                    reduction_prev)
                cells.append(cell)
                reduction_prev = reduction
                c_pp, c_p = c_p, cell.multiplier * c
            self.levels.append(cells)
            out_channels.append(c_p)
        self.out_channels = tuple(out_channels)

    @torch.no_grad()
    def reparameterize(self) -> nn.Module:
        """Eval-mode copy with every FactorizedReduce BN folded (the rest folds in ``deploy``)."""
        deployed = copy.deepcopy(self).eval()
        _swap_factorized_reduce(deployed)
        return deployed

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        s0 = s1 = self.stem(x)
        outputs = []
        for cells in self.levels:
            for cell in cells:
                s0, s1 = s1, cell(s0, s1)
            outputs.append(s1)
        return outputs
