"""DOTS: decoupled operation and topology search (thesis ch. 2, seed 003).

Two stages over the shared DARTS cell space:

1. **Operation search, Group-V2.** α over the 8 ops of every edge, split into a parameter-free
   group {none, skip, avg, max} and a parametric group {sep3, sep5, dil3, dil5}, each with its own
   softmax; the edge output sums both groups. Bilevel, first-order, as DARTS (the thesis allows any
   gradient method here). At the end each edge keeps the argmax of each group. Our choice: the
   parameter-free argmax is taken over {skip, avg, max} — ``none`` only scales the group during op
   search — so no edge can end the search as a zero op.
2. **Topology search.** For node j with n incoming edges, weights β over the edge combinations
   (all C(n,2) pairs, or with ``edges="any"`` all 2ⁿ−1 non-empty subsets), softmax with temperature
   T (eq. 2.6); edge weight γ(i,j) = Σ_{c∋(i,j)} softmax(β/T)_c / |c| (eq. 2.7); node
   x_j = Σ_i γ(i,j)·ō(i,j)(x_i). T(t) = T₀·θᵗ per topology epoch, T₀ = 10, θ = 0.72. The two kept
   ops of an edge are mixed by softmax(α/(T/1000)) (the thesis's 1000x lower temperature), which
   fixes each edge's op almost at once. **Single-level**: w and β descend the training loss together.

Derivation: per node the combination with the highest β; per edge the kept op with the larger α.

Budget split: the thesis uses 30 op + 40 topology epochs of 70; we keep that ratio
(``op_epochs`` defaults to round(3/7 · epochs), at least 1). Unlike the authors' code we do not
re-initialise the weights between the stages (the budget here is a few epochs).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.cells.genotype import Genotype
from hwnas.cells.cell_search import CellSearchMethod
from hwnas.cells.darts_space import NUM_INPUTS, PARAMETER_FREE, PARAMETRIC, PRIMITIVES, CellMix, node_edges
from hwnas.errors import HwnasError

T0 = 10.0
THETA = 0.72
OP_TEMPERATURE_RATIO = 1000.0
FREE_IDX = [PRIMITIVES.index(p) for p in PARAMETER_FREE]
PARAM_IDX = [PRIMITIVES.index(p) for p in PARAMETRIC]
# the ops an edge may keep from the parameter-free group: never ``none``
FREE_KEEP_IDX = [PRIMITIVES.index(p) for p in PARAMETER_FREE if p != "none"]


def temperature(t: int, t0: float = T0, theta: float = THETA) -> float:
    """Annealing schedule T(t) = T₀·θᵗ, t = topology epoch index from 0."""
    return t0 * theta**t


def topology_combinations(num_inputs: int, any_count: bool = False) -> list[tuple[int, ...]]:
    """Edge combinations of a node with ``num_inputs`` incoming edges: pairs, or all non-empty subsets."""
    sizes = range(1, num_inputs + 1) if any_count else [2]
    return [c for r in sizes for c in itertools.combinations(range(num_inputs), r)]


def edge_gamma(beta: torch.Tensor, combos: list[tuple[int, ...]], num_inputs: int, temp: float) -> torch.Tensor:
    """Eq. 2.7: γ_i = Σ_{c ∋ i} softmax(β / T)_c / |c| for each incoming edge i."""
    probs = F.softmax(beta / temp, dim=0)
    membership = torch.zeros(len(combos), num_inputs, dtype=beta.dtype, device=beta.device)
    for k, c in enumerate(combos):
        membership[k, list(c)] = 1.0 / len(c)
    return probs @ membership


def group_softmax(alpha: torch.Tensor) -> torch.Tensor:
    """Group-V2 op weights: separate softmaxes over the parameter-free and the parametric ops."""
    w = torch.zeros_like(alpha)
    w[:, FREE_IDX] = F.softmax(alpha[:, FREE_IDX], dim=-1)
    w[:, PARAM_IDX] = F.softmax(alpha[:, PARAM_IDX], dim=-1)
    return w


class Dots(CellSearchMethod):
    name = "dots"
    OPTIONS = {"edges": "two", "op_epochs": None, "t0": T0, "theta": THETA}

    def __init__(self, net, cfg, steps_per_epoch):
        super().__init__(net, cfg, steps_per_epoch)
        if self.opt["edges"] not in ("two", "any"):
            raise HwnasError(f"dots option edges={self.opt['edges']!r}; allowed: two, any")
        op_epochs = self.opt["op_epochs"]
        if op_epochs is None:
            op_epochs = max(1, round(cfg.epochs * 3 / 7))
        if not 1 <= op_epochs < cfg.epochs:
            raise HwnasError(f"dots needs >= 1 operation-search and >= 1 topology epoch: epochs={cfg.epochs}, "
                             f"op_epochs={op_epochs}; use --epochs >= 2")
        self.op_epochs = int(op_epochs)
        n_ops = len(PRIMITIVES)
        self.alpha_normal = nn.Parameter((1e-3 * torch.randn(self.num_edges, n_ops)).to(self.device))
        self.alpha_reduce = nn.Parameter((1e-3 * torch.randn(self.num_edges, n_ops)).to(self.device))
        self.alpha_optimizer = torch.optim.Adam([self.alpha_normal, self.alpha_reduce], lr=cfg.arch_lr,
                                                betas=(0.5, 0.999), weight_decay=cfg.arch_weight_decay)
        any_count = self.opt["edges"] == "any"
        self.combos = [topology_combinations(NUM_INPUTS + j, any_count) for j in range(cfg.steps)]
        self.beta_normal = nn.ParameterList([nn.Parameter(torch.zeros(len(c), device=self.device)) for c in self.combos])
        self.beta_reduce = nn.ParameterList([nn.Parameter(torch.zeros(len(c), device=self.device)) for c in self.combos])
        self.beta_optimizer = torch.optim.Adam([*self.beta_normal, *self.beta_reduce], lr=cfg.arch_lr,
                                               weight_decay=cfg.arch_weight_decay)

    @property
    def in_topology_stage(self) -> bool:
        return self.epoch >= self.op_epochs

    def temperature(self) -> float:
        return temperature(max(0, self.epoch - self.op_epochs), self.opt["t0"], self.opt["theta"])

    def kept_ops(self, alpha: torch.Tensor) -> list[list[int]]:
        """Per edge: the argmax of the parameter-free group (without ``none``) and of the parametric group."""
        a = alpha.detach().cpu()
        return [[FREE_KEEP_IDX[int(a[e, FREE_KEEP_IDX].argmax())], PARAM_IDX[int(a[e, PARAM_IDX].argmax())]]
                for e in range(a.shape[0])]

    def _topology_mix(self, alpha: torch.Tensor, betas, temp: float) -> CellMix:
        kept = self.kept_ops(alpha)
        weights = torch.zeros_like(alpha)
        op_temp = temp / OP_TEMPERATURE_RATIO
        for e, ops in enumerate(kept):
            weights[e, ops] = F.softmax(alpha.detach()[e, ops] / op_temp, dim=0)
        gamma = torch.cat([edge_gamma(b, c, NUM_INPUTS + j, temp) for j, (b, c) in enumerate(zip(betas, self.combos))])
        return CellMix(weights, edge_scale=gamma, active=kept)

    def step(self, train_batch, val_batch, w_optimizer):
        if not self.in_topology_stage:
            # operation search: first-order bilevel with group softmaxes
            xv, yv = val_batch
            self.alpha_optimizer.zero_grad(set_to_none=True)
            loss = F.cross_entropy(self.net(xv, CellMix(group_softmax(self.alpha_normal)),
                                            CellMix(group_softmax(self.alpha_reduce))), yv)
            loss.backward()
            self.alpha_optimizer.step()
            with torch.no_grad():
                mixes = CellMix(group_softmax(self.alpha_normal)), CellMix(group_softmax(self.alpha_reduce))
            train_loss, train_acc = self.weight_step(w_optimizer, *train_batch, *mixes)
            return {"val_loss": loss.item(), "train_loss": train_loss, "train_acc": train_acc}
        # topology search: single level, w and β on the training loss
        x, y = train_batch
        temp = self.temperature()
        w_optimizer.zero_grad(set_to_none=True)
        self.beta_optimizer.zero_grad(set_to_none=True)
        logits = self.net(x, self._topology_mix(self.alpha_normal, self.beta_normal, temp),
                          self._topology_mix(self.alpha_reduce, self.beta_reduce, temp))
        loss = F.cross_entropy(logits, y)
        loss.backward()
        nn.utils.clip_grad_norm_(self.net.parameters(), self.cfg.grad_clip)
        w_optimizer.step()
        self.beta_optimizer.step()
        return {"train_loss": loss.item(), "train_acc": (logits.argmax(1) == y).float().mean().item()}

    def end_epoch(self, epoch):
        return {"stage": "topology" if self.in_topology_stage else "operation",
                "temperature": self.temperature() if self.in_topology_stage else None}

    def topology_weights(self, cell: str = "normal", node: int = 0) -> torch.Tensor:
        """softmax(β/T) of one node's combinations (the order of ``self.combos[node]``)."""
        betas = self.beta_normal if cell == "normal" else self.beta_reduce
        return F.softmax(betas[node].detach() / self.temperature(), dim=0)

    def _derive(self, alpha, betas):
        kept = self.kept_ops(alpha)
        nodes = []
        for j, (beta, combos) in enumerate(zip(betas, self.combos)):
            best = combos[int(beta.detach().argmax())]
            edges = node_edges(j)
            node = []
            a = alpha.detach().cpu()
            for source in best:
                ops = kept[edges[source]]
                op = max(ops, key=lambda k: a[edges[source], k].item())
                node.append((PRIMITIVES[op], source))
            nodes.append(tuple(node))
        return tuple(nodes)

    def genotype(self) -> Genotype:
        return Genotype(self._derive(self.alpha_normal, self.beta_normal), self._derive(self.alpha_reduce, self.beta_reduce),
                        {"method": self.name})

    def state_dict(self):
        return {
            "alpha_normal": self.alpha_normal.detach().clone(), "alpha_reduce": self.alpha_reduce.detach().clone(),
            "beta_normal": [b.detach().clone() for b in self.beta_normal],
            "beta_reduce": [b.detach().clone() for b in self.beta_reduce],
            "alpha_optimizer": self.alpha_optimizer.state_dict(), "beta_optimizer": self.beta_optimizer.state_dict(),
        }

    def load_state_dict(self, state):
        with torch.no_grad():
            self.alpha_normal.copy_(state["alpha_normal"])
            self.alpha_reduce.copy_(state["alpha_reduce"])
            for p, v in zip([*self.beta_normal, *self.beta_reduce], [*state["beta_normal"], *state["beta_reduce"]]):
                p.copy_(v)
        self.alpha_optimizer.load_state_dict(state["alpha_optimizer"])
        self.beta_optimizer.load_state_dict(state["beta_optimizer"])

