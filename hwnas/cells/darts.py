"""DARTS, first-order (the baseline of the cell-search methods).

Liu, Simonyan, Yang, "DARTS: Differentiable Architecture Search", ICLR 2019. Every edge mixes
its 8 ops with softmax(α); each step first moves α down the validation loss (first-order
approximation: the weights are treated as constants), then moves the weights down the training
loss. Derivation: per node the 2 incoming edges with the largest non-``none`` op weight, each with
its strongest non-``none`` op. The second-order variant is not implemented.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.cells.genotype import Genotype
from hwnas.cells.cell_search import CellSearchMethod, derive_top2
from hwnas.cells.darts_space import NONE_INDEX, PRIMITIVES, CellMix


class Darts(CellSearchMethod):
    name = "darts"
    OPTIONS = {"arch_warmup_epochs": 0}  # epochs of weight-only training before α moves

    def __init__(self, net, cfg, steps_per_epoch):
        super().__init__(net, cfg, steps_per_epoch)
        n_ops = len(PRIMITIVES)
        self.alpha_normal = nn.Parameter((1e-3 * torch.randn(self.num_edges, n_ops)).to(self.device))
        self.alpha_reduce = nn.Parameter((1e-3 * torch.randn(self.num_edges, n_ops)).to(self.device))
        self.arch_optimizer = torch.optim.Adam([self.alpha_normal, self.alpha_reduce], lr=cfg.arch_lr,
                                               betas=(0.5, 0.999), weight_decay=cfg.arch_weight_decay)

    def arch_parameters(self) -> list[nn.Parameter]:
        return [self.alpha_normal, self.alpha_reduce]

    def mixes(self) -> tuple[CellMix, CellMix]:
        return CellMix(F.softmax(self.alpha_normal, dim=-1)), CellMix(F.softmax(self.alpha_reduce, dim=-1))

    def detached_mixes(self) -> tuple[CellMix, CellMix]:
        with torch.no_grad():
            return self.mixes()

    def arch_step(self, x, y) -> float:
        self.arch_optimizer.zero_grad(set_to_none=True)
        loss = F.cross_entropy(self.net(x, *self.mixes()), y)
        loss.backward()
        self.arch_optimizer.step()
        return loss.item()

    def step(self, train_batch, val_batch, w_optimizer):
        logs = {}
        if self.epoch >= self.opt["arch_warmup_epochs"]:
            logs["val_loss"] = self.arch_step(*val_batch)
        logs["train_loss"], logs["train_acc"] = self.weight_step(w_optimizer, *train_batch, *self.detached_mixes())
        return logs

    def edge_importance(self, cell: str = "normal") -> torch.Tensor:
        """DARTS's implicit edge strength: the largest non-``none`` op weight of each edge."""
        alpha = self.alpha_normal if cell == "normal" else self.alpha_reduce
        w = F.softmax(alpha.detach(), dim=-1).clone()
        w[:, NONE_INDEX] = -1.0
        return w.max(dim=1).values

    def genotype(self) -> Genotype:
        with torch.no_grad():
            normal, reduce = self.mixes()
        return Genotype(derive_top2(normal.op_weights, self.cfg.steps), derive_top2(reduce.op_weights, self.cfg.steps),
                        {"method": self.name})

    def state_dict(self):
        return {"alpha_normal": self.alpha_normal.detach().clone(), "alpha_reduce": self.alpha_reduce.detach().clone(),
                "arch_optimizer": self.arch_optimizer.state_dict()}

    def load_state_dict(self, state):
        with torch.no_grad():
            self.alpha_normal.copy_(state["alpha_normal"])
            self.alpha_reduce.copy_(state["alpha_reduce"])
        self.arch_optimizer.load_state_dict(state["arch_optimizer"])
