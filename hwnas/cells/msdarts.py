"""MS-DARTS: mean-shift smoothing of the architecture parameters before each weight step.

"MS-DARTS: Mean-Shift Based Differentiable Architecture Search" (seed 001). Each search step:

1. Draw N architectures A_p around the current α (uniform within ±h per coordinate: the authors'
   sampling; the paper calls h the bandwidth) and measure each one's loss on the validation batch.
2. Weight each by ω_p = softmax(losses)_p (the worse architecture weighs more: a robust,
   worst-case-leaning average) times the Gaussian kernel K_h(A_p − α) = exp(−‖A_p − α‖² / 2h²).
3. α ← Σ ω_p K_p A_p / Σ ω_p K_p; repeat T times around the new α.
4. Update the weights with the shifted α, then α by its usual first-order DARTS gradient step.

Our reading of step 4 (the paper does not say whether the shift persists): the shifted α serves the
weight step only and the gradient step starts from the unshifted α, as in SDARTS-RS, on which
the authors' sampling is modelled. With N = 3 samples in a few hundred dimensions the kernel
picks essentially one sample, so a persistent shift is a random walk of size ~h·sqrt(d/3) per step
that swamps the gradient; option ``keep_shift=True`` gives that literal reading anyway.
Defaults N = 3, T = 2 (the paper's best), h = 0.3 (our choice for α initialised near 0).

The weighted mean is computed in the log domain (softmax of log ω + log K), which is the same
quantity but does not underflow when α has hundreds of coordinates.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from hwnas.cells.darts import Darts
from hwnas.cells.darts_space import CellMix


def mean_shift_update(alpha: torch.Tensor, samples: torch.Tensor, losses: torch.Tensor, bandwidth: float) -> torch.Tensor:
    """One mean-shift step: Σ ω K_h(A_p − α) A_p / Σ ω K_h(A_p − α), ω = softmax(losses).

    alpha: (d,), samples: (N, d), losses: (N,). Returns the new α (d,).
    """
    sq = ((samples - alpha.unsqueeze(0)) ** 2).sum(dim=1)
    log_weights = F.log_softmax(losses, dim=0) - sq / (2.0 * bandwidth**2)
    coeff = F.softmax(log_weights, dim=0)
    return (coeff.unsqueeze(1) * samples).sum(dim=0)


def mean_shift(alpha: torch.Tensor, loss_fn, num_samples: int, iterations: int, bandwidth: float,
               generator: torch.Generator | None = None) -> torch.Tensor:
    """T mean-shift iterations from ``alpha``; ``loss_fn(A) -> float`` scores one architecture."""
    current = alpha.detach().clone()
    for _ in range(iterations):
        # drawn on the CPU so a run draws the same numbers on any device
        noise = ((torch.rand((num_samples, current.numel()), generator=generator, dtype=current.dtype) * 2 - 1)
                 * bandwidth).to(current.device)
        samples = current.unsqueeze(0) + noise
        losses = torch.tensor([float(loss_fn(s)) for s in samples], dtype=current.dtype, device=current.device)
        current = mean_shift_update(current, samples, losses, bandwidth)
    return current


class MSDarts(Darts):
    name = "msdarts"
    OPTIONS = {**Darts.OPTIONS, "samples": 3, "iterations": 2, "bandwidth": 0.3, "keep_shift": False}

    def _split(self, flat: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return flat[: self.alpha_normal.numel()].view_as(self.alpha_normal), flat[self.alpha_normal.numel():].view_as(self.alpha_reduce)

    def step(self, train_batch, val_batch, w_optimizer):
        logs = {}
        if self.epoch >= self.opt["arch_warmup_epochs"]:
            xv, yv = val_batch

            @torch.no_grad()
            def val_loss(flat):
                a_n, a_r = self._split(flat)
                logits = self.net(xv, CellMix(F.softmax(a_n, -1)), CellMix(F.softmax(a_r, -1)))
                return F.cross_entropy(logits, yv).item()

            flat = torch.cat([self.alpha_normal.detach().flatten(), self.alpha_reduce.detach().flatten()])
            shifted = mean_shift(flat, val_loss, self.opt["samples"], self.opt["iterations"], self.opt["bandwidth"])
            logs["shift_norm"] = (shifted - flat).norm().item()
            a_n, a_r = self._split(shifted)
            mixes = CellMix(F.softmax(a_n, -1)), CellMix(F.softmax(a_r, -1))
            if self.opt["keep_shift"]:
                with torch.no_grad():
                    self.alpha_normal.copy_(a_n)
                    self.alpha_reduce.copy_(a_r)
        else:
            mixes = self.detached_mixes()
        logs["train_loss"], logs["train_acc"] = self.weight_step(w_optimizer, *train_batch, *mixes)
        if self.epoch >= self.opt["arch_warmup_epochs"]:
            logs["val_loss"] = self.arch_step(*val_batch)
        return logs
