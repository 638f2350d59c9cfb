"""Train a genotype's stacked network from scratch and report its test accuracy.

One fixed protocol for every genotype (searched or random), so they compare: SGD, momentum 0.9,
weight decay 3e-4, cosine learning rate from ``lr`` to 0, gradient clipping 5, cross-entropy, no
augmentation, seeded init and data order; the test split is only touched once, at the end.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.cells.classification_data import ClassificationData, batches
from hwnas.cells.genotype import Genotype
from hwnas.cells.darts_space import GenotypeNetwork
from hwnas.errors import HwnasError


@dataclass
class GenotypeTrainConfig:
    epochs: int = 10
    batch_size: int = 64
    channels: int = 8
    layers: int = 5
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 3e-4
    grad_clip: float = 5.0
    seed: int = 0
    device: str = "cpu"


@torch.no_grad()
def classification_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int = 256) -> float:
    model.eval()
    correct = 0
    for xb, yb in batches(x, y, batch_size, shuffle=False):
        correct += int((model(xb).argmax(1) == yb).sum())
    return correct / max(len(y), 1)


def train_genotype(genotype: Genotype, data: ClassificationData, cfg: GenotypeTrainConfig, progress: bool = False) -> dict:
    """Returns ``{"test_accuracy", "train_accuracy", "final_train_loss", "params", "seconds", "config"}``."""
    from tqdm import tqdm

    if cfg.epochs < 1:
        raise HwnasError(f"--epochs must be >= 1, got {cfg.epochs}")
    torch.manual_seed(cfg.seed)
    from hwnas.devices import resolve_device

    device = resolve_device(cfg.device)
    train_x, train_y = data.train_x.to(device), data.train_y.to(device)
    test_x, test_y = data.test_x.to(device), data.test_y.to(device)
    model = GenotypeNetwork(genotype, cfg.channels, data.num_classes, cfg.layers).to(device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    steps = cfg.epochs * math.ceil(len(train_y) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    g = torch.Generator().manual_seed(cfg.seed)
    t0 = time.perf_counter()
    bar = tqdm(total=steps, disable=not progress, desc="cells train", unit="step")
    loss_value = float("nan")
    for _ in range(cfg.epochs):
        model.train()
        for xb, yb in batches(train_x, train_y, cfg.batch_size, g):
            opt.zero_grad(set_to_none=True)
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            sched.step()
            loss_value = loss.item()
            bar.update(1)
            bar.set_postfix(loss=f"{loss_value:.3f}")
    bar.close()
    return {
        "test_accuracy": classification_accuracy(model, test_x, test_y),
        "train_accuracy": classification_accuracy(model, train_x, train_y),
        "final_train_loss": loss_value,
        "params": sum(p.numel() for p in model.parameters()),
        "seconds": round(time.perf_counter() - t0, 2),
        "config": asdict(cfg),
    }
