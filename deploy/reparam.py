"""Structural re-parameterization: training-form modules → single-branch deploy form.

One BN-folding helper, one centred kernel-padding helper, and one protocol: a module that knows
its deploy form implements ``reparameterize(self) -> nn.Module`` returning an equivalent
module in eval-mode semantics (BatchNorm uses running statistics). :func:`reparameterize`
walks a deep copy of a model and swaps every such module for its deploy form; the training
model is never touched. See RepVGG (Ding et al. 2021) and thesis eq. 3.2.
"""

from __future__ import annotations

import copy
from typing import Protocol, runtime_checkable

import torch
import torch.nn as nn
import torch.nn.functional as F


@runtime_checkable
class Reparameterizable(Protocol):
    def reparameterize(self) -> nn.Module: ...


def fold_bn(
    weight: torch.Tensor, bias: torch.Tensor | None, bn: nn.BatchNorm2d
) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold an eval-mode BatchNorm into the preceding conv: ``W' = W·t``, ``b' = β + (b − μ)·t``, ``t = γ/σ``."""
    std = torch.sqrt(bn.running_var + bn.eps)
    gamma = bn.weight if bn.affine else torch.ones_like(std)
    beta = bn.bias if bn.affine else torch.zeros_like(std)
    t = gamma / std
    b = bias if bias is not None else torch.zeros_like(bn.running_mean)
    shape = (-1,) + (1,) * (weight.dim() - 1)
    return (weight * t.reshape(shape)).detach(), (beta + (b - bn.running_mean) * t).detach()


def pad_kernel(weight: torch.Tensor, size: int) -> torch.Tensor:
    """Zero-pad a (…, k, k) kernel, centred, to (…, size, size). Odd sizes only."""
    k = weight.shape[-1]
    if k > size or (size - k) % 2:
        raise ValueError(f"cannot centre-pad a {k}x{k} kernel to {size}x{size}")
    p = (size - k) // 2
    return F.pad(weight, (p, p, p, p))


def fuse_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A new Conv2d (with bias) equal to ``bn(conv(x))`` in eval mode."""
    w, b = fold_bn(conv.weight, conv.bias, bn)
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
        conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode,
        device=conv.weight.device, dtype=conv.weight.dtype,  # keep a GPU / float64 model where it is
    )
    fused.weight.data.copy_(w)
    fused.bias.data.copy_(b)
    return fused


def _fold_sequential_conv_bn(module: nn.Module) -> None:
    """Fold every Conv2d→BatchNorm2d pair that sits next to each other in an nn.Sequential."""
    for child in module.children():
        _fold_sequential_conv_bn(child)
    if isinstance(module, nn.Sequential):
        names = list(module._modules.keys())
        for a, b in zip(names, names[1:]):
            conv, bn = module._modules[a], module._modules[b]
            if isinstance(conv, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
                module._modules[a] = fuse_conv_bn(conv, bn)
                module._modules[b] = nn.Identity()


def _swap(module: nn.Module) -> nn.Module:
    if isinstance(module, Reparameterizable) and not isinstance(module, type):
        return module.reparameterize()
    for name, child in list(module._modules.items()):
        if child is not None:
            module._modules[name] = _swap(child)
    return module


def reparameterize(model: nn.Module) -> nn.Module:
    """Deploy-form copy of ``model`` (eval mode). The training model is untouched."""
    deployed = copy.deepcopy(model).eval()
    with torch.no_grad():
        deployed = _swap(deployed)
        _fold_sequential_conv_bn(deployed)
    return deployed.eval()


def count_batchnorm(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
