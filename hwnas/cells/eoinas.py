"""EoiNAS: GDAS sampling + operation importance indicator + Markov-chain search-space slimming.

Zhou, Xie, Kung, "Exploiting Operation Importance for Differentiable Neural Architecture Search",
IEEE TNNLS 2021 (seed 000).

- **Sampling (GDAS).** Each step samples one op per edge with the Gumbel-max trick over the live
  ops; the forward computes only that op, gradients reach α straight through the softmax
  (hard one-hot minus detached soft plus soft). Gumbel temperature 5·0.965^epoch over the paper's
  160 epochs, rescaled to the budget: τ(e) = 5·0.965^(e·160/E).
- **Warm-up.** The first E/8 epochs (20 of 160) train the weights only.
- **Operation importance indicator (OII, eqs. 8–10).** Per edge and op: accuracy parameter
  C = A / E_t with A the mean validation accuracy of the batches on which the op was sampled and
  E_t the number of training steps it was sampled, in epochs (steps / steps per epoch);
  I = softmax(C) + λ·softmax(α) over the live ops, λ = 0.5.
- **Search-space slimming (SSS) by a high-order Markov chain (eqs. 11–12).** Each op has a state
  X = (live, dead) = (0.5, 0.5) and a row-stochastic transition matrix Q = [[q_LL, q_LD], [q_DL, q_DD]]
  = 0.5 everywhere. After each epoch past warm-up, when an op's indicator rose, q_LL += ε₁
  (q_LD −= ε₁) and q_DD −= ε₂ (q_DL += ε₂); when it fell, the opposite; ε₁ = 0.02, ε₂ = 0.01. Then
  X_i = Σ_{m=1..4} σ_m X_{i−m} Q_{i−m} (σ renormalised over the available history). σ starts at
  0.25 each; the paper shifts weight to recent states "as pruning proceeds" without a formula —
  our choice: σ_m ∝ exp(−0.5·k·(m−1)) after k pruning rounds.
- **Pruning schedule.** The paper prunes every 20 epochs after epoch 20 of 160, i.e. after epochs
  40, 60, …, 160: 7 rounds, 8 ops → 1. Scaled to E epochs: warm-up W = round(E/8) and round k
  (1..7) after epoch W + ceil(k·(E−W)/7); with E < 8 several rounds fall on one epoch. Each round
  drops, per edge, the live op with the highest dead probability, ties broken by the lower
  indicator (with ``markov`` off: the lowest indicator, as in the authors' public code). Our rule so no edge ends as a zero op: when only
  ``none`` and one other op are live, ``none`` is dropped.
- **Derivation.** Per node the 2 incoming edges with the largest indicator of their surviving op
  (computed over all 8 ops, so that edges compare), each with that op.

Ablation switches: options ``oii`` (False → I = softmax(α)) and ``markov`` (False → prune by indicator).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.cells.genotype import Genotype
from hwnas.cells.cell_search import CellSearchMethod
from hwnas.cells.darts_space import NONE_INDEX, PRIMITIVES, CellMix, node_edges

EPS1 = 0.02
EPS2 = 0.01
LAMBDA = 0.5
HISTORY = 4
PAPER_EPOCHS = 160


def gumbel_temperature(epoch: int, total_epochs: int, tau0: float = 5.0, decay: float = 0.965) -> float:
    return tau0 * decay ** (epoch * PAPER_EPOCHS / total_epochs)


def warmup_epochs(total_epochs: int) -> int:
    return int(math.floor(total_epochs / 8 + 0.5))


def pruning_epochs(total_epochs: int, num_ops: int = len(PRIMITIVES)) -> list[int]:
    """After which (1-based) epoch each of the ``num_ops − 1`` pruning rounds happens."""
    w = warmup_epochs(total_epochs)
    span = (total_epochs - w) / (num_ops - 1)
    # the small tolerance keeps exact multiples (e.g. 20·k of 160) from rounding up
    return [w + max(1, math.ceil(k * span - 1e-9)) for k in range(1, num_ops)]


def gumbel_sample(alpha: torch.Tensor, alive: torch.Tensor, tau: float, generator=None):
    """One op per row (edge) among the live ops. Returns (straight-through one-hot weights, indices)."""
    logits = alpha.masked_fill(~alive, -math.inf)
    # drawn on the CPU so a run draws the same numbers on any device
    u = torch.rand(alpha.shape, generator=generator).clamp_(1e-10, 1 - 1e-10).to(alpha.device)
    gumbel = -torch.log(-torch.log(u))
    soft = F.softmax((logits + gumbel) / tau, dim=-1)
    index = soft.detach().argmax(dim=-1)
    hard = F.one_hot(index, alpha.shape[-1]).to(alpha.dtype)
    return hard - soft.detach() + soft, index


def masked_softmax(x: torch.Tensor, alive: torch.Tensor) -> torch.Tensor:
    return F.softmax(x.masked_fill(~alive, -math.inf), dim=-1)


def importance(acc_param: torch.Tensor, alpha: torch.Tensor, alive: torch.Tensor, use_oii: bool = True,
               lam: float = LAMBDA) -> torch.Tensor:
    """Eq. 10: I = softmax(C) + λ·softmax(α) over the live ops of each edge (0 for dead ops)."""
    arch = masked_softmax(alpha, alive)
    if not use_oii:
        return arch
    return masked_softmax(acc_param, alive) + lam * arch


def adjust_transition(q: torch.Tensor, trend: torch.Tensor, eps1: float = EPS1, eps2: float = EPS2) -> torch.Tensor:
    """Update (…, 2, 2) row-stochastic matrices: trend +1 (indicator rose) moves towards live, −1 towards dead."""
    t = trend.to(q.dtype)
    q_ll = (q[..., 0, 0] + eps1 * t).clamp(0.0, 1.0)
    q_dd = (q[..., 1, 1] - eps2 * t).clamp(0.0, 1.0)
    row0 = torch.stack([q_ll, 1.0 - q_ll], dim=-1)
    row1 = torch.stack([1.0 - q_dd, q_dd], dim=-1)
    return torch.stack([row0, row1], dim=-2)


def sigma_weights(prunes_done: int, available: int, history: int = HISTORY, sharpness: float = 0.5) -> torch.Tensor:
    """σ_1..σ_m (m = min(history, available)), most recent first, summing to 1."""
    m = min(history, available)
    raw = torch.exp(-sharpness * prunes_done * torch.arange(m, dtype=torch.float64))
    return (raw / raw.sum()).float()


def markov_state(x_hist: list[torch.Tensor], q_hist: list[torch.Tensor], sigma: torch.Tensor) -> torch.Tensor:
    """Eq. 11: X_i = Σ_m σ_m X_{i−m} Q_{i−m}; histories are oldest first, ``sigma`` most recent first."""
    out = torch.zeros_like(x_hist[-1])
    for m in range(1, len(sigma) + 1):
        x, q = x_hist[-m], q_hist[-m]
        out = out + sigma[m - 1] * (x.unsqueeze(-2) @ q).squeeze(-2)
    return out


class EoiNAS(CellSearchMethod):
    name = "eoinas"
    OPTIONS = {"oii": True, "markov": True}

    def __init__(self, net, cfg, steps_per_epoch):
        super().__init__(net, cfg, steps_per_epoch)
        shape = (2, self.num_edges, len(PRIMITIVES))  # [normal, reduce] x edges x ops
        self.alpha = nn.Parameter(torch.zeros(shape, device=self.device))  # the paper: zero init
        self.arch_optimizer = torch.optim.Adam([self.alpha], lr=cfg.arch_lr, betas=(0.5, 0.999),
                                               weight_decay=cfg.arch_weight_decay)
        # bookkeeping stays on the CPU: it is tiny and read every step
        self.alive = torch.ones(shape, dtype=torch.bool)
        self.val_acc_sum = torch.zeros(shape)
        self.val_count = torch.zeros(shape)
        self.train_count = torch.zeros(shape)
        self.prev_indicator: torch.Tensor | None = None
        self.x_hist = [torch.full((*shape, 2), 0.5)]
        self.q_hist = [torch.full((*shape, 2, 2), 0.5)]
        self.prunes_done = 0
        self.warmup = warmup_epochs(cfg.epochs)
        self.schedule = pruning_epochs(cfg.epochs)

    def accuracy_parameter(self) -> torch.Tensor:
        """C = (mean val accuracy when sampled) / (times trained, in epochs); 0 where never trained."""
        mean_acc = self.val_acc_sum / self.val_count.clamp_min(1)
        trained_epochs = self.train_count / self.steps_per_epoch
        return torch.where(trained_epochs > 0, mean_acc / trained_epochs.clamp_min(1e-12), torch.zeros_like(mean_acc))

    def indicator(self) -> torch.Tensor:
        return importance(self.accuracy_parameter(), self.alpha.detach().cpu(), self.alive, self.opt["oii"])

    def _sample(self):
        tau = gumbel_temperature(self.epoch, self.cfg.epochs)
        weights, index = gumbel_sample(self.alpha, self.alive.to(self.device), tau)
        index = index.cpu()
        active = [[[i] for i in index[c].tolist()] for c in range(2)]
        return CellMix(weights[0], active=active[0]), CellMix(weights[1], active=active[1]), index

    def _count(self, counter: torch.Tensor, index: torch.Tensor, amount: float = 1.0) -> None:
        counter.scatter_add_(2, index.unsqueeze(-1), torch.full((*index.shape, 1), float(amount)))

    def step(self, train_batch, val_batch, w_optimizer):
        logs = {}
        with torch.no_grad():
            normal, reduce, index = self._sample()
        logs["train_loss"], logs["train_acc"] = self.weight_step(w_optimizer, *train_batch, normal, reduce)
        self._count(self.train_count, index)
        if self.epoch >= self.warmup:
            xv, yv = val_batch
            normal, reduce, index = self._sample()
            self.arch_optimizer.zero_grad(set_to_none=True)
            logits = self.net(xv, normal, reduce)
            loss = F.cross_entropy(logits, yv)
            loss.backward()
            self.arch_optimizer.step()
            acc = (logits.argmax(1) == yv).float().mean().item()
            self._count(self.val_acc_sum, index, acc)
            self._count(self.val_count, index)
            logs["val_loss"], logs["val_acc"] = loss.item(), acc
        return logs

    def markov_update(self, indicator: torch.Tensor) -> None:
        """One chain step from the change of the indicator since the previous epoch."""
        trend = torch.zeros_like(indicator) if self.prev_indicator is None else torch.sign(indicator - self.prev_indicator)
        self.q_hist[-1] = adjust_transition(self.q_hist[-1], trend)
        sigma = sigma_weights(self.prunes_done, len(self.x_hist))
        x_new = markov_state(self.x_hist, self.q_hist, sigma)
        self.x_hist = (self.x_hist + [x_new])[-HISTORY:]
        self.q_hist = (self.q_hist + [self.q_hist[-1].clone()])[-HISTORY:]
        self.prev_indicator = indicator

    def prune_once(self, indicator: torch.Tensor) -> None:
        """Drop one live op per edge that still has more than one."""
        # worst op: highest dead probability (chain on) or lowest indicator (chain off); the chain's
        # ties — common early, when few trends have been seen — are broken by the lower indicator
        ind = indicator.masked_fill(~self.alive, math.inf)
        if self.opt["markov"]:
            dead = self.x_hist[-1][..., 1].masked_fill(~self.alive, -math.inf)
            tied = dead >= dead.max(dim=-1, keepdim=True).values - 1e-9
            ind = ind.masked_fill(~tied, math.inf)
        worst = ind.argmin(dim=-1)
        live_count = self.alive.sum(dim=-1)
        only_none_left = (live_count == 2) & self.alive[..., NONE_INDEX]
        worst = torch.where(only_none_left, torch.full_like(worst, NONE_INDEX), worst)
        drop = F.one_hot(worst, self.alive.shape[-1]).bool() & (live_count > 1).unsqueeze(-1)
        self.alive &= ~drop
        self.prunes_done += 1

    def end_epoch(self, epoch):
        logs = {"tau": gumbel_temperature(epoch, self.cfg.epochs)}
        if epoch + 1 <= self.warmup:
            return logs
        indicator = self.indicator()
        if self.opt["markov"]:
            self.markov_update(indicator)
        for _ in range(self.schedule.count(epoch + 1)):
            self.prune_once(indicator)
        logs["live_ops_per_edge"] = self.alive.sum(dim=-1).float().mean().item()
        return logs

    def _derive(self, c: int):
        full = importance(self.accuracy_parameter()[c], self.alpha.detach().cpu()[c], torch.ones_like(self.alive[c]),
                          self.opt["oii"])
        alive = self.alive[c].clone()
        alive[:, NONE_INDEX] = False  # never derive a zero op (only reachable if the schedule did not finish)
        surviving = full.masked_fill(~alive, -math.inf).argmax(dim=-1)
        strength = full.gather(1, surviving.unsqueeze(1)).squeeze(1)
        nodes = []
        for j in range(self.cfg.steps):
            edges = node_edges(j)
            best = sorted(range(len(edges)), key=lambda s: (-strength[edges[s]].item(), s))[:2]
            nodes.append(tuple((PRIMITIVES[int(surviving[edges[s]])], s) for s in sorted(best)))
        return tuple(nodes)

    def genotype(self) -> Genotype:
        return Genotype(self._derive(0), self._derive(1), {"method": self.name})

    def state_dict(self):
        return {
            "alpha": self.alpha.detach().clone(), "arch_optimizer": self.arch_optimizer.state_dict(),
            "alive": self.alive.clone(), "val_acc_sum": self.val_acc_sum.clone(), "val_count": self.val_count.clone(),
            "train_count": self.train_count.clone(),
            "prev_indicator": self.prev_indicator, "x_hist": list(self.x_hist), "q_hist": list(self.q_hist),
            "prunes_done": self.prunes_done,
        }

    def load_state_dict(self, state):
        with torch.no_grad():
            self.alpha.copy_(state["alpha"])
        self.arch_optimizer.load_state_dict(state["arch_optimizer"])
        cpu = torch.device("cpu")
        self.alive = state["alive"].to(cpu)
        self.val_acc_sum, self.val_count = state["val_acc_sum"].to(cpu), state["val_count"].to(cpu)
        self.train_count = state["train_count"].to(cpu)
        prev = state["prev_indicator"]
        self.prev_indicator = None if prev is None else prev.to(cpu)
        self.x_hist = [x.to(cpu) for x in state["x_hist"]]
        self.q_hist = [q.to(cpu) for q in state["q_hist"]]
        self.prunes_done = int(state["prunes_done"])
