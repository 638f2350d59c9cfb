"""Batch-norm recalibration for subnets of a weight-sharing supernet.

The supernet's BN running statistics are shared by every subnet and correct for none of them
(iNAS thesis §3.3; OFA, BigNAS do the same): before a subnet is evaluated its statistics are
reset and re-estimated with forward passes over training images. Momentum ``None`` makes PyTorch
keep a cumulative (equal-weight) average over the batches instead of an exponential one.
"""

from __future__ import annotations

from typing import Iterable

import torch
from torch import nn


def _batch_images(batch):
    """The image tensor of a loader batch: a tensor, or the first element of an (image, mask) pair."""
    if isinstance(batch, (list, tuple)):
        batch = batch[0]
    return batch


@torch.no_grad()
def recalibrate_bn(model: nn.Module, images: Iterable, num_batches: int, device: str | torch.device | None = None) -> int:
    """Reset every BN layer's running statistics of ``model`` and re-estimate them from up to
    ``num_batches`` batches of ``images`` (tensors or ``(image, mask)`` batches) in train mode.

    Momentum and the train/eval mode of every module are restored afterwards. Returns the number
    of batches used; raises ``ValueError`` if the iterable yields none or the model has no BN.
    """
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not bns:
        raise ValueError("model has no batch-norm layers to recalibrate")
    if num_batches < 1:
        raise ValueError(f"num_batches must be >= 1, got {num_batches}")
    momenta = [m.momentum for m in bns]
    modes = {m: m.training for m in model.modules()}
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    used = 0
    try:
        for m in bns:
            m.reset_running_stats()
            m.momentum = None
        model.train()
        for batch in images:
            if used >= num_batches:
                break
            model(_batch_images(batch).to(device))
            used += 1
    finally:
        for m, mom in zip(bns, momenta):
            m.momentum = mom
        for m, training in modes.items():
            m.training = training
    if used == 0:
        raise ValueError("no batches to recalibrate batch-norm statistics with")
    return used
