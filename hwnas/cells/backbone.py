"""A searched genotype as a feature-pyramid backbone for the iNAS SOD head (papers digest §5).

The iNAS head consumes 5 backbone levels at strides 2, 4, 8, 16, 32 (level 1 = finest). This
module stacks a genotype's cells into exactly that pyramid:

- stem: 3x3 conv, stride 2, + BN (stride 2);
- level 1: ``cells_per_level`` normal cells at stride 2;
- levels 2..5: one reduction cell (stride x2, channels x2) then ``cells_per_level`` normal cells.

``forward(x)`` returns the 5 level outputs, finest first; ``out_channels[i]`` is level i+1's width
(the number of intermediate nodes x that level's cell width). Plugging it into ``hwnas.model``'s
head (whose transport takes these widths) is left to that module; nothing here depends on it.
"""

from __future__ import annotations

import torch
from torch import nn

from hwnas.cells.genotype import Genotype
from hwnas.cells.space import GenotypeCell

NUM_LEVELS = 5


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

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        s0 = s1 = self.stem(x)
        outputs = []
        for cells in self.levels:
            for cell in cells:
                s0, s1 = s1, cell(s0, s1)
            outputs.append(s1)
        return outputs
