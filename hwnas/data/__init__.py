"""SOD data: folder datasets (DUTS, ECSSD, HKU-IS, DUT-OMRON, PASCAL-S layouts), augmentations and
a synthetic salient-object set (:mod:`hwnas.data.synth`, imported lazily: it loads photographs)."""

from hwnas.data.folder import (
    IMAGE_EXTS,
    IMAGENET_MEAN,
    IMAGENET_STD,
    SODFolder,
    find_pairs,
    resolve_split,
)
from hwnas.data.order import epoch_indices

__all__ = [
    "IMAGE_EXTS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SODFolder",
    "epoch_indices",
    "find_pairs",
    "resolve_split",
]
