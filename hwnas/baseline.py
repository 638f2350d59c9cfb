"""Frequency-tuned salient region detection — Achanta, Hemami, Estrada, Süsstrunk, CVPR 2009.

Saliency of a pixel = Euclidean distance in CIE Lab between the image's mean colour and the pixel's
colour after a small Gaussian blur (the paper's 5x5 binomial kernel, which removes fine texture
and noise). A classical, training-free reference: whatever a learned model scores must be judged
against what pure colour contrast already gets.
"""

from __future__ import annotations

import numpy as np


def ft_saliency(image: np.ndarray) -> np.ndarray:
    """Frequency-tuned saliency of an ``uint8 (H, W, 3)`` RGB image as ``float32 (H, W)`` in [0, 1]."""
    from scipy.ndimage import convolve1d
    from skimage.color import rgb2lab

    lab = rgb2lab(image)
    binomial = np.array([1, 4, 6, 4, 1], dtype=np.float64) / 16.0  # the paper's 5x5 separable kernel
    blurred = convolve1d(convolve1d(lab, binomial, axis=0, mode="reflect"), binomial, axis=1, mode="reflect")
    mean = lab.reshape(-1, 3).mean(axis=0)
    sal = np.linalg.norm(blurred - mean, axis=2)
    lo, hi = sal.min(), sal.max()
    return ((sal - lo) / (hi - lo) if hi > lo else np.zeros_like(sal)).astype(np.float32)


def evaluate_ft(dataset, progress: bool = False) -> dict[str, float]:
    """SOD metrics of the FT baseline on a :class:`hwnas.data.SODFolder` (uses its unnormalised images)."""
    from tqdm import tqdm

    from hwnas.metrics import SODMetrics

    metrics = SODMetrics()
    for i in tqdm(range(len(dataset)), desc="ft baseline", disable=not progress, unit="img"):
        image, mask = dataset.raw(i)
        sal = ft_saliency(image)
        if sal.shape != mask.shape:
            from PIL import Image

            sal = np.asarray(Image.fromarray(sal).resize(mask.shape[::-1], Image.BILINEAR))
        metrics.update(sal, mask)
    return metrics.results()
