"""Evaluate a saliency model on a dataset with the standard SOD metrics (:mod:`hwnas.metrics`)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def predict_probability(model: nn.Module, images: torch.Tensor) -> torch.Tensor:
    """``(N, 1, H, W)`` saliency probability: a model returning a list of logit maps (supernet, SODNet;
    index 0 = finest) is passed through a sigmoid; a model returning one tensor (``for_export`` form)
    already returns a probability."""
    out = model(images)
    if isinstance(out, (list, tuple)):
        return torch.sigmoid(out[0].float())
    return out.float()


@torch.no_grad()
def evaluate(model: nn.Module, loader, device: str | torch.device | None = None, resolution: int | None = None,
             progress: bool = False) -> dict[str, float]:
    """``max_f``, ``mae``, ``s_measure``, ``max_e`` (and ``images``) of ``model`` over ``loader``'s
    ``(image, mask)`` batches, in eval mode. Images are resized to ``resolution`` when given;
    predictions are resized (bilinear) to the masks' size before scoring."""
    from tqdm import tqdm

    from hwnas.metrics import SODMetrics

    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    was_training = model.training
    model.eval()
    metrics = SODMetrics()
    try:
        for images, masks in tqdm(loader, desc="eval", disable=not progress, unit="batch", leave=False):
            images = images.to(device)
            if resolution is not None and images.shape[-1] != resolution:
                images = F.interpolate(images, size=(resolution, resolution), mode="bilinear", align_corners=False)
            prob = predict_probability(model, images)
            if prob.shape[-2:] != masks.shape[-2:]:
                prob = F.interpolate(prob, size=masks.shape[-2:], mode="bilinear", align_corners=False)
            prob, masks = prob.cpu().numpy(), masks.cpu().numpy()
            for p, m in zip(prob, masks):
                metrics.update(p[0], m[0])
    finally:
        model.train(was_training)
    return metrics.results()


def evaluate_arch(supernet: nn.Module, arch, val_loader, calib_loader, calib_batches: int = 20,
                  device: str | torch.device | None = None, progress: bool = False) -> dict[str, float]:
    """Score one architecture of a trained supernet the way search does: extract the static subnet,
    re-estimate its BN statistics on ``calib_loader`` (training images, resized to the arch's
    resolution), then :func:`evaluate` on ``val_loader`` at that resolution."""
    from hwnas.bn import recalibrate_bn

    net = supernet.subnet(arch)
    if device is not None:
        net = net.to(device)
    res = arch.resolution

    def calib_images():
        for batch in calib_loader:
            images = batch[0] if isinstance(batch, (list, tuple)) else batch
            if images.shape[-1] != res:
                images = F.interpolate(images, size=(res, res), mode="bilinear", align_corners=False)
            yield images

    recalibrate_bn(net, calib_images(), calib_batches)
    return evaluate(net, val_loader, resolution=res, progress=progress)
