"""Small classification data sets for cell search, all local: nothing is ever downloaded.

- ``digits``: scikit-learn's 8x8 handwritten digits (1797 images, ships with the package),
  bilinearly upsampled to ``image_size`` and repeated to 3 channels.
- ``cifar10:DIR`` / ``cifar100:DIR``: a folder in the CIFAR python-pickle layout
  (``data_batch_1..5`` + ``test_batch``, or ``train`` + ``test``). The pickles are read with an
  unpickler that only admits the numpy types those files contain, never arbitrary code.

Everything is held in memory as tensors; batches come from :func:`batches` with an explicit
``torch.Generator`` so a resumed run sees the same order.
"""

from __future__ import annotations

import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from hwnas.errors import DataError

DATA_SPECS = "digits, cifar10:DIR, cifar100:DIR"


@dataclass
class ClassificationData:
    name: str
    train_x: torch.Tensor  # (N, 3, H, W) float, normalised
    train_y: torch.Tensor  # (N,) int64
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int

    @property
    def image_size(self) -> int:
        return int(self.train_x.shape[-1])


def _normalise(x: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    return (x - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)


def load_digits(image_size: int = 16, test_fraction: float = 0.2, split_seed: int = 0) -> ClassificationData:
    """Digits with a fixed, seeded, class-stratified-by-shuffle train/test split."""
    from sklearn.datasets import load_digits as _sk_digits

    if image_size < 8:
        raise DataError(f"digits image size must be >= 8 pixels, got {image_size}")
    d = _sk_digits()
    x = torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16.0
    if image_size != 8:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    x = x.repeat(1, 3, 1, 1)
    y = torch.tensor(d.target, dtype=torch.int64)
    g = torch.Generator().manual_seed(split_seed)
    order = torch.randperm(len(y), generator=g)
    n_test = int(round(len(y) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    mean = x[train].mean(dim=(0, 2, 3))
    std = x[train].std(dim=(0, 2, 3)).clamp_min(1e-6)
    x = _normalise(x, mean, std)
    return ClassificationData("digits", x[train], y[train], x[test], y[test], 10)


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """CIFAR batches are dicts of bytes, lists and numpy arrays; refuse anything else."""

    ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
    }

    def find_class(self, module, name):
        if (module, name) in self.ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a CIFAR pickle")


def _read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with open(path, "rb") as f:
            d = _NumpyOnlyUnpickler(io.BytesIO(f.read()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError) as e:
        raise DataError(f"{path} is not a CIFAR python-pickle batch: {e}") from None
    if not isinstance(d, dict):
        raise DataError(f"{path} is not a CIFAR python-pickle batch (expected a dict)")
    d = {k.decode() if isinstance(k, bytes) else k: v for k, v in d.items()}
    label_key = next((k for k in ("labels", "fine_labels") if k in d), None)
    if "data" not in d or label_key is None:
        raise DataError(f"{path} lacks 'data' and 'labels'/'fine_labels'; found keys {sorted(d)}")
    data = np.asarray(d["data"], dtype=np.uint8)
    if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise DataError(f"{path}: 'data' must be N x 3072 uint8, got shape {data.shape}")
    return data.reshape(-1, 3, 32, 32), np.asarray(d[label_key], dtype=np.int64)


CIFAR_MEAN = torch.tensor([0.4914, 0.4822, 0.4465])
CIFAR_STD = torch.tensor([0.2470, 0.2435, 0.2616])


def load_cifar(root: str | Path, num_classes: int, image_size: int = 32) -> ClassificationData:
    root = Path(root)
    if not root.is_dir():
        raise DataError(f"CIFAR folder {root} does not exist")
    if num_classes == 10:
        train_files = [root / f"data_batch_{i}" for i in range(1, 6)]
        test_files = [root / "test_batch"]
    else:
        train_files, test_files = [root / "train"], [root / "test"]
    missing = [p.name for p in train_files + test_files if not p.is_file()]
    if missing:
        want = "data_batch_1..5 and test_batch" if num_classes == 10 else "train and test"
        raise DataError(f"{root} is not a CIFAR-{num_classes} python folder: missing {', '.join(missing)} (expected {want})")

    def read(files):
        parts = [_read_batch(p) for p in files]
        x = torch.from_numpy(np.concatenate([p[0] for p in parts])).float() / 255.0
        y = torch.from_numpy(np.concatenate([p[1] for p in parts]))
        if y.numel() and (y.min() < 0 or y.max() >= num_classes):
            raise DataError(f"{root}: labels outside 0..{num_classes - 1}; is this CIFAR-{num_classes}?")
        if image_size != 32:
            x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
        return _normalise(x, CIFAR_MEAN, CIFAR_STD), y

    train_x, train_y = read(train_files)
    test_x, test_y = read(test_files)
    return ClassificationData(f"cifar{num_classes}", train_x, train_y, test_x, test_y, num_classes)


def load_data(spec: str, image_size: int | None = None) -> ClassificationData:
    """``digits`` (default 16 px), ``cifar10:DIR`` or ``cifar100:DIR`` (default 32 px)."""
    name, _, folder = spec.partition(":")
    if name == "digits" and not folder:
        return load_digits(image_size or 16)
    if name in ("cifar10", "cifar100") and folder:
        return load_cifar(folder, 10 if name == "cifar10" else 100, image_size or 32)
    raise DataError(f"unknown data spec {spec!r}; allowed: {DATA_SPECS}")


def search_split(data: ClassificationData, seed: int = 0) -> tuple[tuple[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]:
    """Split the training set in two halves: one trains the weights, the other the architecture (DARTS protocol)."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(data.train_y), generator=g)
    half = len(order) // 2
    a, b = order[:half], order[half:]
    return (data.train_x[a], data.train_y[a]), (data.train_x[b], data.train_y[b])


def batches(x: torch.Tensor, y: torch.Tensor, batch_size: int, generator: torch.Generator | None = None,
            shuffle: bool = True):
    """Yield ``(x, y)`` mini-batches; the last one may be smaller."""
    n = len(y)
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    for i in range(0, n, batch_size):
        idx = order[i : i + batch_size]
        yield x[idx], y[idx]
