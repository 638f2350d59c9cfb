"""Small modules for the deploy tests: an SMSU-like multi-branch block with BNs, Conv+BN in
nn.Sequential, and a tiny SOD-shaped network that ends in bilinear upsampling + sigmoid."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from deploy import fold_bn, pad_kernel


def randomize_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Non-trivial BN statistics and affine parameters: default stats (0, 1, 1, 0) hide folding errors."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.5)
                m.running_var.copy_(torch.rand(n, generator=g) * 1.5 + 0.25)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.2)
    return model


class MultiKernelDW(nn.Module):
    """SMSU-like: parallel depthwise k x k conv + BN branches, summed; re-parameterizes to one
    depthwise conv with bias (largest kernel, smaller kernels centre-padded)."""

    def __init__(self, channels: int, kernel_sizes=(3, 5, 7)):
        super().__init__()
        self.channels = channels
        self.kernel_sizes = tuple(sorted(kernel_sizes))
        self.branches = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels, channels, k, padding=k // 2, groups=channels, bias=False), nn.BatchNorm2d(channels))
            for k in self.kernel_sizes
        )

    def forward(self, x):
        return sum(b(x) for b in self.branches)

    def reparameterize(self) -> nn.Module:
        k = max(self.kernel_sizes)
        weight = torch.zeros(self.channels, 1, k, k)
        bias = torch.zeros(self.channels)
        for branch in self.branches:
            w, b = fold_bn(branch[0].weight, branch[0].bias, branch[1])
            weight += pad_kernel(w, k)
            bias += b
        conv = nn.Conv2d(self.channels, self.channels, k, padding=k // 2, groups=self.channels, bias=True)
        conv.weight.data.copy_(weight)
        conv.bias.data.copy_(bias)
        return conv


class TinySOD(nn.Module):
    """A tiny encoder-decoder shaped like the exported SOD nets: (N,3,H,W) → sigmoid (N,1,H,W)."""

    def __init__(self, width: int = 8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, width, 3, 2, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU())
        self.mix = MultiKernelDW(width)
        self.pw = nn.Sequential(nn.Conv2d(width, 2 * width, 1, bias=False), nn.BatchNorm2d(2 * width), nn.ReLU6())
        self.down = nn.Sequential(nn.Conv2d(2 * width, 2 * width, 3, 2, 1, groups=2 * width, bias=False), nn.BatchNorm2d(2 * width))
        self.head = nn.Conv2d(2 * width, 1, 1)

    def forward(self, x):
        size = x.shape[-2:]
        y = self.stem(x)
        y = y + self.mix(y)
        y = self.down(self.pw(y))
        # broadcast add (nearest upsampling has no XNNPACK kernel); the "/ 2" of an int makes
        # ExecuTorch cast a lifted scalar constant outside the delegate, as hwnas' mean_of does
        y = (F.max_pool2d(y, 3, 1, 1) + F.adaptive_avg_pool2d(y, 1)) / 2
        logits = F.interpolate(self.head(y), size=size, mode="bilinear", align_corners=False)
        return torch.sigmoid(logits)


def tiny_sod(seed: int = 0, width: int = 8) -> nn.Module:
    torch.manual_seed(seed)
    return randomize_bn(TinySOD(width), seed).eval()
