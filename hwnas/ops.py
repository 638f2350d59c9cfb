"""Building blocks of the iNAS SOD network: static (one architecture) and elastic (supernet) forms.

iNAS (Gu et al., thesis ch. 3, §3.2.1–3.2.2; papers.md §1.1–1.3). The backbone is MobileNetV2-style
MBConv with squeeze-excitation whose depthwise conv is an SMSU (searchable multi-scale unit):
``b`` parallel depthwise branches with distinct kernels, each with its own BN, outputs
**averaged** (as in the authors' code; thesis eq. 3.1 writes a sum). The head is a searchable
transport + decoder (docs/interfaces.md "hwnas: models").

Static modules implement the re-parameterization protocol of :mod:`deploy.reparam`: an
:class:`SMSU` turns into one depthwise conv with bias (thesis eq. 3.2), and every Conv→BN pair
sits next to each other inside an ``nn.Sequential`` so ``deploy.reparameterize`` folds it.

Elastic modules (OFA-style weight sharing) own the largest tensors of the space and slice them:
first-``k`` channels, first-``d`` layers, one shared depthwise kernel per SMSU at the largest
kernel size with a learnable ``k²×k²`` transform (identity at init) for each smaller kernel and a
BN per kernel size, and the densest fusion connections. Each elastic module can copy its active
configuration into the matching static module (``copy_into``), which is how
``Supernet.subnet`` materialises a static network.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from deploy.reparam import fold_bn, pad_kernel

# ReLU, not ReLU6 or hard-swish: it is the one activation every target fuses into the preceding
# conv (ONNX Runtime, XNNPACK, Core ML, TensorRT), so deploy-form latency stays block-additive.
Activation = nn.ReLU


def se_channels(channels: int, se_ratio: float) -> int:
    """Hidden width of the squeeze-excitation applied on ``channels`` (expanded) channels."""
    return max(1, int(round(channels * se_ratio)))


def mean_of(xs: Sequence[torch.Tensor]) -> torch.Tensor:
    """Average of equally shaped tensors; one input passes through untouched (no op in deploy)."""
    if len(xs) == 1:
        return xs[0]
    total = xs[0]
    for x in xs[1:]:
        total = total + x
    # multiply by a float constant: `/ len(xs)` leaves int→float casts outside the XNNPACK delegate
    return total * (1.0 / len(xs))


def conv_bn(in_channels: int, out_channels: int, kernel_size: int = 1, stride: int = 1,
            groups: int = 1, act: bool = False) -> nn.Sequential:
    """Conv (no bias) → BN [→ ReLU] in one Sequential so deploy.reparameterize folds the BN."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, kernel_size, stride, kernel_size // 2, groups=groups, bias=False),
        nn.BatchNorm2d(out_channels),
    ]
    if act:
        layers.append(Activation())
    return nn.Sequential(*layers)


def resample(x: torch.Tensor, shift: int) -> torch.Tensor:
    """Move a feature map ``shift`` levels: >0 = coarser source, bilinear up by 2**shift;
    <0 = finer source, max-pool down by 2**-shift; 0 = unchanged.

    Scale factors (not target sizes) keep the module resolution-agnostic; the space's
    resolutions are multiples of 32, so the factor is exact at every level.
    """
    if shift > 0:
        return F.interpolate(x, scale_factor=float(2**shift), mode="bilinear", align_corners=False)
    if shift < 0:
        f = 2 ** (-shift)
        return F.max_pool2d(x, kernel_size=f, stride=f)
    return x


def init_weights(module: nn.Module) -> None:
    """He init for convs, unit/zero BN; SMSU transforms stay identity (set at construction)."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.modules.batchnorm._BatchNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, DynamicConv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, ElasticSMSU):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")


# ==================================================================================== static
class SMSU(nn.Module):
    """Searchable multi-scale unit, training form: depthwise branches with their own BN, averaged."""

    def __init__(self, channels: int, kernel_sizes: Sequence[int], stride: int = 1):
        super().__init__()
        self.channels = channels
        self.kernel_sizes = tuple(sorted(kernel_sizes))
        self.stride = stride
        self.branches = nn.ModuleList(conv_bn(channels, channels, k, stride, groups=channels) for k in self.kernel_sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return mean_of([branch(x) for branch in self.branches])

    def reparameterize(self) -> nn.Conv2d:
        """One depthwise conv with bias (eq. 3.2): fold BNs, centre-pad to the largest kernel, average."""
        k_max = max(self.kernel_sizes)
        weights, biases = [], []
        for branch in self.branches:
            conv, bn = branch[0], branch[1]
            w, b = fold_bn(conv.weight, conv.bias, bn)
            weights.append(pad_kernel(w, k_max))
            biases.append(b)
        ref = self.branches[0][0].weight
        fused = nn.Conv2d(self.channels, self.channels, k_max, self.stride, k_max // 2, groups=self.channels,
                          bias=True, device=ref.device, dtype=ref.dtype)
        with torch.no_grad():
            fused.weight.copy_(mean_of(weights))
            fused.bias.copy_(mean_of(biases))
        return fused.eval()


class SqueezeExcite(nn.Module):
    """Channel gate: global mean → 1x1 (bias) → ReLU → 1x1 (bias) → sigmoid → scale."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.reduce = nn.Conv2d(channels, hidden, 1, bias=True)
        self.act = Activation()
        self.expand = nn.Conv2d(hidden, channels, 1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x.mean(dim=(2, 3), keepdim=True)
        return x * torch.sigmoid(self.expand(self.act(self.reduce(s))))


class MBConv(nn.Module):
    """Inverted residual: [1x1 expand+BN+ReLU] → SMSU → ReLU → SE → 1x1 project+BN (+ identity)."""

    def __init__(self, in_channels: int, out_channels: int, expand_ratio: int, stride: int,
                 kernel_sizes: Sequence[int], se_ratio: float):
        super().__init__()
        mid = in_channels * expand_ratio
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride
        self.expand = conv_bn(in_channels, mid, act=True) if expand_ratio != 1 else None
        self.smsu = SMSU(mid, kernel_sizes, stride)
        self.act = Activation()
        self.se = SqueezeExcite(mid, se_channels(mid, se_ratio)) if se_ratio > 0 else None
        self.project = conv_bn(mid, out_channels)
        self.residual = stride == 1 and in_channels == out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.expand(x) if self.expand is not None else x
        h = self.act(self.smsu(h))
        if self.se is not None:
            h = self.se(h)
        h = self.project(h)
        return h + x if self.residual else h


class Branch(nn.Module):
    """One fusion input: 1x1 conv + BN to the level's width, then resampled to the level's size."""

    def __init__(self, in_channels: int, out_channels: int, shift: int):
        super().__init__()
        self.proj = conv_bn(in_channels, out_channels)
        self.shift = shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resample(self.proj(x), self.shift)


def _fusion_unit(smsu: nn.Module, channels: int, last: bool) -> nn.Sequential:
    layers = [smsu, Activation(), nn.Conv2d(channels, channels, 1, bias=False), nn.BatchNorm2d(channels)]
    if not last:
        layers.append(Activation())
    return nn.Sequential(*layers)


class Fusion(nn.Module):
    """Mean of the level's inputs, then ``units`` x (SMSU + ReLU + pointwise conv + BN), plus residual.

    Transport levels use 2 units, decoder levels 1 (docs/interfaces.md). ReLU between units; the
    output is linear (like an MBConv projection) because it feeds 1x1 convs and the prediction.
    """

    def __init__(self, channels: int, kernel_sizes: Sequence[int], units: int):
        super().__init__()
        self.units = nn.Sequential(*(_fusion_unit(SMSU(channels, kernel_sizes), channels, u == units - 1) for u in range(units)))

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        m = mean_of(xs)
        return m + self.units(m)


class HeadLevel(nn.Module):
    """A transport or decoder level: its input branches (keyed by source level) and its fusion."""

    def __init__(self, branches: dict[int, nn.Module], fusion: nn.Module, inputs: Sequence[int]):
        super().__init__()
        self.branches = nn.ModuleDict({str(j): b for j, b in branches.items()})
        self.fusion = fusion
        self.inputs = tuple(inputs)  # active input levels (a subset of the branches in a supernet)


class PredictionHead(nn.Module):
    """1x1 conv → one logit map, bilinear upsample by ``scale`` to the input size."""

    def __init__(self, in_channels: int, scale: int):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, 1, 1, bias=True)
        self.scale = scale

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.interpolate(self.conv(x), scale_factor=float(self.scale), mode="bilinear", align_corners=False)


class ProbabilityHead(nn.Module):
    """The exported head: a prediction head's logits through a sigmoid."""

    def __init__(self, head: PredictionHead):
        super().__init__()
        self.head = head

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.head(x))


# =================================================================================== elastic
class DynamicBatchNorm2d(nn.BatchNorm2d):
    """BatchNorm over the first ``x.shape[1]`` channels of the largest BN (stats updated in place).

    A subclass of BatchNorm2d so BN recalibration (reset + momentum=None) treats it like any BN.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        factor = 0.0
        if self.training:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
        # slices of 1-D tensors are views: training updates land in the shared running stats
        return F.batch_norm(x, self.running_mean[:c], self.running_var[:c], self.weight[:c], self.bias[:c],
                            self.training, factor, self.eps)

    def copy_into(self, bn: nn.BatchNorm2d) -> None:
        c = bn.num_features
        with torch.no_grad():
            bn.weight.copy_(self.weight[:c])
            bn.bias.copy_(self.bias[:c])
            bn.running_mean.copy_(self.running_mean[:c])
            bn.running_var.copy_(self.running_var[:c])
            bn.num_batches_tracked.copy_(self.num_batches_tracked)
        bn.eps, bn.momentum = self.eps, self.momentum


class DynamicConv2d(nn.Module):
    """Dense conv holding the largest weight; uses the first ``out`` filters over the first ``x.shape[1]`` inputs."""

    def __init__(self, max_in: int, max_out: int, kernel_size: int = 1, stride: int = 1, bias: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(max_out, max_in, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(max_out)) if bias else None
        self.stride, self.padding = stride, kernel_size // 2
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor, out_channels: int) -> torch.Tensor:
        w = self.weight[:out_channels, : x.shape[1]]
        b = self.bias[:out_channels] if self.bias is not None else None
        return F.conv2d(x, w, b, self.stride, self.padding)

    def copy_into(self, conv: nn.Conv2d) -> None:
        with torch.no_grad():
            conv.weight.copy_(self.weight[: conv.out_channels, : conv.in_channels])
            if conv.bias is not None:
                conv.bias.copy_(self.bias[: conv.out_channels])


class ElasticSMSU(nn.Module):
    """SMSU with one shared depthwise kernel at the largest size (OFA-style kernel sharing).

    Kernel ``k`` < ``K`` = centre ``k×k`` crop of the shared kernel times a learnable ``k²×k²``
    matrix (one per kernel size, identity at init, shared by all channels); every kernel size has
    its own BN. Active kernel set: ``active_kernels``; channels follow the input.
    """

    def __init__(self, max_channels: int, kernel_sizes: Sequence[int], stride: int = 1):
        super().__init__()
        self.kernel_sizes = tuple(sorted(kernel_sizes))
        self.max_kernel = max(self.kernel_sizes)
        self.stride = stride
        self.weight = nn.Parameter(torch.empty(max_channels, 1, self.max_kernel, self.max_kernel))
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")
        self.transforms = nn.ParameterDict({str(k): nn.Parameter(torch.eye(k * k)) for k in self.kernel_sizes if k != self.max_kernel})
        self.bns = nn.ModuleDict({str(k): DynamicBatchNorm2d(max_channels) for k in self.kernel_sizes})
        self.active_kernels: tuple[int, ...] = self.kernel_sizes

    def kernel(self, k: int, channels: int) -> torch.Tensor:
        w = self.weight[:channels]
        if k == self.max_kernel:
            return w
        s = (self.max_kernel - k) // 2
        crop = w[:, :, s : s + k, s : s + k].reshape(channels, k * k)
        return (crop @ self.transforms[str(k)]).reshape(channels, 1, k, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        outs = [self.bns[str(k)](F.conv2d(x, self.kernel(k, c), None, self.stride, k // 2, groups=c)) for k in self.active_kernels]
        return mean_of(outs)

    def copy_into(self, smsu: SMSU) -> None:
        """Materialise the (transformed) kernels of ``smsu``'s kernel set into its static branches."""
        with torch.no_grad():
            for k, branch in zip(smsu.kernel_sizes, smsu.branches):
                branch[0].weight.copy_(self.kernel(k, smsu.channels))
                self.bns[str(k)].copy_into(branch[1])


class ElasticMBConv(nn.Module):
    """MBConv over the largest widths; active output width and kernel set are attributes."""

    def __init__(self, max_in: int, max_out: int, expand_ratio: int, stride: int,
                 kernel_sizes: Sequence[int], se_ratio: float):
        super().__init__()
        self.expand_ratio, self.stride, self.se_ratio = expand_ratio, stride, se_ratio
        max_mid = max_in * expand_ratio
        if expand_ratio != 1:
            self.expand_conv = DynamicConv2d(max_in, max_mid)
            self.expand_bn = DynamicBatchNorm2d(max_mid)
        self.smsu = ElasticSMSU(max_mid, kernel_sizes, stride)
        if se_ratio > 0:
            self.se_reduce = DynamicConv2d(max_mid, se_channels(max_mid, se_ratio), bias=True)
            self.se_expand = DynamicConv2d(se_channels(max_mid, se_ratio), max_mid, bias=True)
        self.project_conv = DynamicConv2d(max_mid, max_out)
        self.project_bn = DynamicBatchNorm2d(max_out)
        self.active_width = max_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cin = x.shape[1]
        mid = cin * self.expand_ratio
        h = x
        if self.expand_ratio != 1:
            h = F.relu(self.expand_bn(self.expand_conv(h, mid)))
        h = F.relu(self.smsu(h))
        if self.se_ratio > 0:
            s = h.mean(dim=(2, 3), keepdim=True)
            s = F.relu(self.se_reduce(s, se_channels(mid, self.se_ratio)))
            h = h * torch.sigmoid(self.se_expand(s, mid))
        h = self.project_bn(self.project_conv(h, self.active_width))
        return h + x if self.stride == 1 and cin == self.active_width else h

    def copy_into(self, block: MBConv) -> None:
        if block.expand is not None:
            self.expand_conv.copy_into(block.expand[0])
            self.expand_bn.copy_into(block.expand[1])
        self.smsu.copy_into(block.smsu)
        if block.se is not None:
            self.se_reduce.copy_into(block.se.reduce)
            self.se_expand.copy_into(block.se.expand)
        self.project_conv.copy_into(block.project[0])
        self.project_bn.copy_into(block.project[1])


class ElasticStem(nn.Module):
    """Stem conv + BN + ReLU over the largest stem width."""

    def __init__(self, max_width: int, kernel_size: int, stride: int):
        super().__init__()
        self.conv = DynamicConv2d(3, max_width, kernel_size, stride)
        self.bn = DynamicBatchNorm2d(max_width)
        self.active_width = max_width

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x, self.active_width)))

    def copy_into(self, stem: nn.Sequential) -> None:
        self.conv.copy_into(stem[0])
        self.bn.copy_into(stem[1])


class ElasticBranch(nn.Module):
    """Branch whose input width follows the input (backbone widths are elastic; head widths fixed)."""

    def __init__(self, max_in: int, out_channels: int, shift: int):
        super().__init__()
        self.conv = DynamicConv2d(max_in, out_channels)
        self.bn = nn.BatchNorm2d(out_channels)
        self.out_channels, self.shift = out_channels, shift

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return resample(self.bn(self.conv(x, self.out_channels)), self.shift)

    def copy_into(self, branch: Branch) -> None:
        self.conv.copy_into(branch.proj[0])
        branch.proj[1].load_state_dict(self.bn.state_dict())
        branch.proj[1].eps, branch.proj[1].momentum = self.bn.eps, self.bn.momentum


class ElasticFusion(nn.Module):
    """:class:`Fusion` with elastic SMSU kernels (``active_kernels`` applies to every unit)."""

    def __init__(self, channels: int, kernel_sizes: Sequence[int], units: int):
        super().__init__()
        self.units = nn.Sequential(
            *(_fusion_unit(ElasticSMSU(channels, kernel_sizes), channels, u == units - 1) for u in range(units))
        )

    def set_active(self, kernel_sizes: Sequence[int]) -> None:
        for unit in self.units:
            unit[0].active_kernels = tuple(sorted(kernel_sizes))

    def forward(self, *xs: torch.Tensor) -> torch.Tensor:
        m = mean_of(xs)
        return m + self.units(m)

    def copy_into(self, fusion: Fusion) -> None:
        for src, dst in zip(self.units, fusion.units, strict=True):
            src[0].copy_into(dst[0])
            dst[2].load_state_dict(src[2].state_dict())
            dst[3].load_state_dict(src[3].state_dict())
            dst[3].eps, dst[3].momentum = src[3].eps, src[3].momentum


def spatial_size(size: int, stride: int) -> int:
    """Output side of a conv with padding k//2 (odd k) and the given stride: ceil(size / stride)."""
    return math.ceil(size / stride)
