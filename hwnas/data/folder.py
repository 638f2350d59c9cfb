"""Folder SOD datasets: RGB images and single-channel masks paired by file stem.

Known layouts (the image and mask sub-folders are found by their usual names, case-insensitively):

* DUTS:      ``DUTS-TR/DUTS-TR-Image`` + ``DUTS-TR/DUTS-TR-Mask`` (same for DUTS-TE)
* ECSSD:     ``images/`` + ``ground_truth_mask/``
* HKU-IS:    ``imgs/`` + ``gt/``
* DUT-OMRON: ``DUT-OMRON-image/`` + ``pixelwiseGT-new-PNG/``
* PASCAL-S / benchmark packs: ``Imgs/`` or ``Image/`` + ``GT/`` or ``masks/``
* ``hwnas data synth``: ``images/`` + ``masks/`` (inside ``train/`` and ``val/``)

Anything else: pass the two folders explicitly (``images=``, ``masks=``; ``--images/--masks`` in the CLI).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from hwnas.errors import DataError

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MASK_EXTS = (".png", ".bmp", ".tif", ".tiff", ".gif", ".jpg", ".jpeg")

_IMAGE_DIR_NAMES = {"images", "image", "imgs", "img", "jpegimages", "rgb", "im", "src"}
_MASK_DIR_NAMES = {"masks", "mask", "gt", "gts", "ground_truth_mask", "ground_truth", "groundtruth",
                   "annotations", "annotation", "labels", "label", "saliency_maps"}
# in-memory cache of decoded, resized images is used when it stays below this
_AUTO_CACHE_BYTES = 1 << 30


def _tokens(name: str) -> set[str]:
    return set(t for t in re.split(r"[-_ .]+", name.lower()) if t)


def _is_image_dir(name: str) -> bool:
    n = name.lower()
    return n in _IMAGE_DIR_NAMES or bool(_tokens(n) & {"image", "images", "imgs", "img"})


def _is_mask_dir(name: str) -> bool:
    n = name.lower()
    toks = _tokens(n)
    return n in _MASK_DIR_NAMES or bool(toks & {"mask", "masks", "gt", "gts"}) or "groundtruth" in n or n.startswith("pixelwisegt")


def _files(folder: Path, exts: Sequence[str]) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in exts and not p.name.startswith("."))


def _detect(root: Path, depth: int = 0) -> tuple[Path, Path]:
    subdirs = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    image_dirs = [d for d in subdirs if _is_image_dir(d.name) and not _is_mask_dir(d.name)]
    mask_dirs = [d for d in subdirs if _is_mask_dir(d.name)]
    if len(image_dirs) == 1 and len(mask_dirs) == 1:
        return image_dirs[0], mask_dirs[0]
    if len(image_dirs) > 1 or len(mask_dirs) > 1:
        raise DataError(
            f"{root}: ambiguous layout, image folders {[d.name for d in image_dirs]} and mask folders "
            f"{[d.name for d in mask_dirs]}; pass --images and --masks"
        )
    # one wrapping folder (e.g. DUTS-TR/ inside the given folder): look one level down
    if not image_dirs and not mask_dirs and len(subdirs) == 1 and depth < 2:
        return _detect(subdirs[0], depth + 1)
    # flat layout: photographs (.jpg) next to their masks (.png) with the same stems
    jpgs = {p.stem for p in _files(root, (".jpg", ".jpeg"))}
    pngs = {p.stem for p in _files(root, (".png",))}
    if jpgs and jpgs & pngs:
        return root, root
    if not subdirs and not _files(root, IMAGE_EXTS):
        raise DataError(f"{root}: empty folder (no images, no sub-folders)")
    names = [d.name for d in subdirs][:8]
    raise DataError(
        f"{root}: cannot find an image folder and a mask folder (sub-folders: {names}); expected names like "
        "images/+masks/, imgs/+gt/, images/+ground_truth_mask/, DUTS-TR-Image/+DUTS-TR-Mask/, or pass --images and --masks"
    )


def find_pairs(root: str | Path | None = None, images: str | Path | None = None,
               masks: str | Path | None = None) -> list[tuple[Path, Path]]:
    """``(image, mask)`` paths paired by file stem, sorted by stem.

    Raises :class:`DataError` for a missing or empty folder, or images without masks (naming a few).
    """
    if images is not None or masks is not None:
        if images is None or masks is None:
            raise DataError("give both --images and --masks, or neither (then the layout is detected)")
        image_dir, mask_dir = Path(images), Path(masks)
        for d in (image_dir, mask_dir):
            if not d.is_dir():
                raise DataError(f"{d}: not a folder")
    else:
        if root is None:
            raise DataError("no dataset folder given")
        root = Path(root)
        if not root.is_dir():
            raise DataError(f"{root}: dataset folder does not exist")
        image_dir, mask_dir = _detect(root)
    if image_dir == mask_dir:  # flat layout: .jpg images, .png masks
        image_files = _files(image_dir, (".jpg", ".jpeg"))
        mask_files = _files(mask_dir, (".png",))
    else:
        image_files = _files(image_dir, IMAGE_EXTS)
        mask_files = _files(mask_dir, MASK_EXTS)
    if not image_files:
        raise DataError(f"{image_dir}: no images found (extensions {', '.join(IMAGE_EXTS)})")
    masks_by_stem: dict[str, Path] = {}
    for m in mask_files:
        # prefer .png when a stem has several mask files
        if m.stem not in masks_by_stem or m.suffix.lower() == ".png":
            masks_by_stem[m.stem] = m
    missing = [p.name for p in image_files if p.stem not in masks_by_stem]
    if missing:
        few = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
        raise DataError(f"{len(missing)} of {len(image_files)} images in {image_dir} have no mask in {mask_dir}: {few}")
    return [(p, masks_by_stem[p.stem]) for p in image_files]


def resolve_split(root: str | Path, split: str | None) -> Path:
    """``root/split`` when it exists (the layout ``hwnas data synth`` writes), else ``root`` itself.

    ``split=None`` means ``root`` as given.
    """
    root = Path(root)
    if split and (root / split).is_dir():
        return root / split
    return root


def _open(path: Path, mode: str):
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.load()
            return im.convert(mode)
    except UnidentifiedImageError:
        raise DataError(f"cannot read image {path}: not a recognised image file (corrupt or wrong extension?)") from None
    except (OSError, ValueError, SyntaxError) as e:
        reason = str(e).replace(f"'{path}'", "").replace(str(path), "").strip(" :") or type(e).__name__
        raise DataError(f"cannot read image {path}: {reason}") from None


def load_rgb(path: str | Path) -> np.ndarray:
    """An image file as ``uint8 (H, W, 3)``; :class:`DataError` naming the file if unreadable."""
    return np.asarray(_open(Path(path), "RGB"))


def load_mask(path: str | Path) -> np.ndarray:
    """A mask file as ``uint8 (H, W)``; :class:`DataError` naming the file if unreadable."""
    return np.asarray(_open(Path(path), "L"))


def image_size(path: str | Path) -> tuple[int, int]:
    """``(width, height)`` of an image file from its header (nothing decoded); :class:`DataError` if unreadable."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            return im.size
    except UnidentifiedImageError:
        raise DataError(f"cannot read image {path}: not a recognised image file (corrupt or wrong extension?)") from None
    except (OSError, ValueError, SyntaxError) as e:
        raise DataError(f"cannot read image {path}: {e}") from None


def check_pair_sizes(pairs: Sequence[tuple[Path, Path]]) -> None:
    """Refuse a pair whose mask is not the size of its image (as ``hwnas data check`` does): resizing
    both to one square would silently misalign them."""
    for img_path, mask_path in pairs:
        (iw, ih), (mw, mh) = image_size(img_path), image_size(mask_path)
        if (iw, ih) != (mw, mh):
            raise DataError(f"{img_path}: image is {iw}x{ih} but its mask {mask_path.name} is {mw}x{mh}; "
                            "fix or remove the pair (hwnas data check finds such pairs)")


def _resize(arr: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    if arr.shape[0] == size and arr.shape[1] == size:
        return arr
    return np.array(Image.fromarray(arr).resize((size, size), Image.BILINEAR))


class SODFolder(Dataset):
    """Salient-object pairs resized to ``size x size``.

    Items: ``(image float (3, H, W) ImageNet-normalised, mask float (1, H, W) in [0, 1])``.
    ``augment=True`` applies random scale/crop, horizontal flip and colour jitter; the randomness of
    item ``i`` is a function of ``(seed, epoch, i)`` only (:meth:`set_epoch`), so a resumed or
    multi-process run sees exactly the same samples. ``mask_size`` (default ``size``) lets evaluation
    keep masks at a finer size than the network input.
    """

    def __init__(self, root: str | Path | None, size: int, augment: bool = False, *,
                 images: str | Path | None = None, masks: str | Path | None = None,
                 mask_size: int | None = None, seed: int = 0, cache: bool | str = "auto"):
        if size < 8:
            raise DataError(f"image size must be >= 8 pixels, got {size}")
        self.pairs = find_pairs(root, images=images, masks=masks)
        check_pair_sizes(self.pairs)  # headers only: about 0.1 ms per file
        self.size = int(size)
        self.mask_size = int(mask_size or size)
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0
        # augmented crops are taken from a somewhat larger image so they keep detail
        self.load_size = int(round(max(self.size, self.mask_size) * (1.25 if augment else 1.0)))
        if cache == "auto":
            cache = len(self.pairs) * self.load_size**2 * 4 <= _AUTO_CACHE_BYTES
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] | None = {} if cache else None
        self._mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
        self._std = torch.tensor(IMAGENET_STD).view(3, 1, 1)

    def __len__(self) -> int:
        return len(self.pairs)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _load(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        ip, mp = self.pairs[i]
        img, mask = _resize(load_rgb(ip), self.load_size), _resize(load_mask(mp), self.load_size)
        if self._cache is not None:
            self._cache[i] = (img, mask)
        return img, mask

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        img, mask = self._load(i)
        if self.augment:
            rng = np.random.default_rng([self.seed, self.epoch, i])
            img, mask = _augment(img, mask, rng)
        img_t = torch.from_numpy(np.array(_resize(np.ascontiguousarray(img), self.size))).permute(2, 0, 1).float().div_(255)
        mask_t = torch.from_numpy(np.array(_resize(np.ascontiguousarray(mask), self.mask_size))).float().div_(255).unsqueeze(0)
        if self.augment:
            img_t = _colour_jitter(img_t, rng)
        return (img_t - self._mean) / self._std, mask_t

    def raw(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Item ``i`` unnormalised at ``size``: ``uint8 (H, W, 3)`` image and ``uint8 (H, W)`` mask."""
        img, mask = self._load(i)
        return _resize(img, self.size), _resize(mask, self.mask_size)


def _augment(img: np.ndarray, mask: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Random scale/crop (area 56-100 %, aspect 3/4..4/3) and horizontal flip, same for image and mask."""
    h, w = mask.shape
    area = rng.uniform(0.56, 1.0) * h * w
    aspect = float(np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3))))
    ch = int(min(h, round(np.sqrt(area / aspect))))
    cw = int(min(w, round(np.sqrt(area * aspect))))
    y0 = int(rng.integers(0, h - ch + 1))
    x0 = int(rng.integers(0, w - cw + 1))
    img, mask = img[y0:y0 + ch, x0:x0 + cw], mask[y0:y0 + ch, x0:x0 + cw]
    if rng.random() < 0.5:
        img, mask = img[:, ::-1], mask[:, ::-1]
    return img, mask


def _colour_jitter(img: torch.Tensor, rng: np.random.Generator, strength: float = 0.2) -> torch.Tensor:
    """Brightness, contrast and saturation each scaled by a factor in [1-s, 1+s]; img in [0, 1]."""
    b, c, s = (float(x) for x in rng.uniform(1 - strength, 1 + strength, size=3))
    img = img * b
    mean = img.mean()
    img = (img - mean) * c + mean
    gray = (0.299 * img[0] + 0.587 * img[1] + 0.114 * img[2]).unsqueeze(0)
    img = (img - gray) * s + gray
    return img.clamp_(0, 1)
