"""A synthetic salient-object set, written in the folder layout real SOD sets use.

Every image is a composition of real photographs (the ones scikit-image and scikit-learn ship
offline): a cluttered background cut from one photograph with patches of others pasted on it,
a few *distractor* objects, and one *salient* object, each shape textured with a crop of yet
another photograph. Colours are random with respect to the label, so colour contrast alone does
not find the object (the frequency-tuned baseline of Achanta et al. stays far from solving it).
What marks the salient object is what marks it in photographs of real scenes: it is large, near
the centre, in focus (sharp), while background and distractors are out of focus (blurred), and
distractors are small.

The train split crops photographs only from their left 70 %, the validation split only from the
right 30 %, so no validation pixel has been seen in training. Item ``i`` depends on ``(seed, i)``
only; files already written are kept, so an interrupted run resumes.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from deploy.fileio import atomic_path, atomic_write_json, check_identity
from hwnas.errors import DataError

# photographs with texture; grayscale ones are tinted with a random colour when used
_SKIMAGE_PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "cat", "immunohistochemistry", "hubble_deep_field",
                   "retina", "coins", "camera", "brick", "grass", "gravel", "moon")
TRAIN_FRACTION_OF_PHOTO = 0.7


@lru_cache(maxsize=1)
def photographs() -> tuple[np.ndarray, ...]:
    """The offline photographs as ``uint8 (H, W, 3)`` arrays (grayscale ones replicated to 3 channels)."""
    import skimage.data
    from sklearn.datasets import load_sample_images

    out = []
    for name in _SKIMAGE_PHOTOS:
        img = np.asarray(getattr(skimage.data, name)())
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        out.append(np.ascontiguousarray(img[..., :3]).astype(np.uint8))
    out.extend(np.asarray(im, dtype=np.uint8) for im in load_sample_images().images)
    return tuple(out)


def _resize(arr: np.ndarray, h: int, w: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(arr).resize((w, h), Image.BILINEAR))


def _crop(rng: np.random.Generator, size: int, split: str) -> np.ndarray:
    """A random square crop of a random photograph (from the split's part of it), resized to ``size``,
    randomly flipped, colour-shuffled and tinted so colours carry no label information."""
    photos = photographs()
    photo = photos[int(rng.integers(len(photos)))]
    h, w = photo.shape[:2]
    cut = int(w * TRAIN_FRACTION_OF_PHOTO)
    x_lo, x_hi = (0, cut) if split == "train" else (cut, w)
    side = int(min(h, x_hi - x_lo) * rng.uniform(0.35, 1.0))
    y0 = int(rng.integers(0, h - side + 1))
    x0 = int(rng.integers(x_lo, x_hi - side + 1))
    crop = photo[y0:y0 + side, x0:x0 + side].astype(np.float32)
    if rng.random() < 0.5:
        crop = crop[:, ::-1]
    crop = crop[..., rng.permutation(3)]  # channel shuffle: any photograph can come in any hue
    tint = rng.uniform(0.5, 1.3, size=3).astype(np.float32)
    crop = np.clip(crop * tint, 0, 255).astype(np.uint8)
    return _resize(np.ascontiguousarray(crop), size, size)


def _shape(rng: np.random.Generator, size: int, area_fraction: float, centre: tuple[float, float]) -> np.ndarray:
    """A soft (anti-aliased) mask in [0, 1] of a smooth blob, ellipse or rounded polygon."""
    from scipy.ndimage import gaussian_filter

    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    cy, cx = centre[0] * size, centre[1] * size
    radius = np.sqrt(area_fraction / np.pi) * size
    kind = rng.integers(3)
    dy, dx = yy - cy, xx - cx
    if kind == 0:  # star-shaped blob: radius modulated by a few low harmonics
        theta = np.arctan2(dy, dx)
        r = np.ones_like(theta)
        for k in range(2, 6):
            r += rng.uniform(0, 0.25 / k * 2) * np.cos(k * theta + rng.uniform(0, 2 * np.pi))
        inside = np.hypot(dy, dx) / radius - r
    elif kind == 1:  # rotated ellipse
        ratio = rng.uniform(0.5, 1.0)
        a, b = radius / np.sqrt(ratio), radius * np.sqrt(ratio)
        t = rng.uniform(0, np.pi)
        u, v = dx * np.cos(t) + dy * np.sin(t), -dx * np.sin(t) + dy * np.cos(t)
        inside = np.sqrt((u / a) ** 2 + (v / b) ** 2) - 1
    else:  # polygon with rounded corners: intersection of half-planes, then smoothed below
        n = int(rng.integers(3, 8))
        angles = np.sort(rng.uniform(0, 2 * np.pi, n))
        inside = np.full_like(xx, -np.inf)
        for a in angles:
            inside = np.maximum(inside, (dx * np.cos(a) + dy * np.sin(a)) / (radius * 1.1) - 1)
        if n < 5:  # a triangle or a quadrilateral with random normals may be unbounded; bound it
            inside = np.maximum(inside, np.hypot(dy, dx) / (radius * 1.6) - 1)
    soft = 1.0 / (1.0 + np.exp(inside * radius * 1.5))  # ~1 px edge ramp
    return gaussian_filter(soft, sigma=0.6 if kind != 2 else 1.2).astype(np.float32)


def _blur(img: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(img.astype(np.float32), sigma=(sigma, sigma, 0))


def _detail(img: np.ndarray) -> float:
    """Mean absolute difference of neighbouring pixels: how much fine texture a crop has."""
    g = img.mean(axis=2)
    return float(np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean())


def make_sample(seed: int, index: int, size: int = 128, split: str = "train") -> tuple[np.ndarray, np.ndarray]:
    """One ``(image uint8 (S, S, 3), mask uint8 (S, S))`` pair; a pure function of its arguments."""
    rng = np.random.default_rng([seed, index, 0 if split == "train" else 1])
    defocus = lambda: float(rng.uniform(2.0, 3.5)) * size / 128  # noqa: E731 — background blur sigma, px
    img = _crop(rng, size, split).astype(np.float32)
    # clutter: patches of other photographs pasted into the background
    for _ in range(int(rng.integers(2, 5))):
        ph, pw = (int(size * rng.uniform(0.2, 0.5)) for _ in range(2))
        y0, x0 = int(rng.integers(0, size - ph)), int(rng.integers(0, size - pw))
        img[y0:y0 + ph, x0:x0 + pw] = _crop(rng, max(ph, pw), split)[:ph, :pw]
    img = _blur(img, defocus())
    # distractors: small, anywhere, out of focus
    for _ in range(int(rng.integers(1, 4))):
        alpha = _shape(rng, size, rng.uniform(0.015, 0.05), (rng.uniform(0.05, 0.95), rng.uniform(0.05, 0.95)))
        tex = _blur(_crop(rng, size, split), defocus())
        alpha = _blur(alpha[..., None], 1.0)
        img = img * (1 - alpha) + tex * alpha
    # the salient object: large, near the centre, in focus
    alpha = _shape(rng, size, rng.uniform(0.12, 0.35), (rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7)))
    # in focus needs detail to show: of three candidate crops take the most textured one
    tex = max((_crop(rng, size, split).astype(np.float32) for _ in range(3)), key=_detail)
    img = img * (1 - alpha[..., None]) + tex * alpha[..., None]
    img += rng.normal(0, 1.0, img.shape).astype(np.float32)  # mild sensor noise
    image = np.clip(img, 0, 255).round().astype(np.uint8)
    mask = np.clip(alpha * 255, 0, 255).round().astype(np.uint8)
    return image, mask


def _write_png(arr: np.ndarray, path: Path) -> None:
    from PIL import Image

    with atomic_path(path, durable=False) as tmp:  # regenerable: a power loss may cost a rerun, not a kill
        Image.fromarray(arr).save(tmp, format="PNG")


def _write_one(job: tuple[Path, str, int, int, int]) -> None:
    folder, split, i, seed, size = job
    name = f"{split}_{i:06d}.png"
    img_path, mask_path = folder / "images" / name, folder / "masks" / name
    if img_path.exists() and mask_path.exists():
        return  # written by an earlier, interrupted run
    image, mask = make_sample(seed, i, size, split)
    _write_png(mask, mask_path)
    _write_png(image, img_path)  # image last: its presence marks the pair complete


def _check_meta(out: Path, seed: int, size: int, val_fraction: float) -> None:
    """Record the generator settings; refuse to resume a folder made with other settings."""
    import json

    meta = {"generator": "hwnas data synth", "version": 2, "seed": seed, "size": size, "val_fraction": val_fraction}
    path = out / "synth.json"
    if path.exists():
        try:
            old = json.loads(path.read_text())
        except (ValueError, UnicodeDecodeError):
            raise DataError(f"{path} is not the JSON hwnas data synth writes; use another --out") from None
        if not isinstance(old, dict):
            raise DataError(f"{path} is not the JSON hwnas data synth writes; use another --out")
        check_identity({k: old.get(k) for k in meta}, meta, f"{out} (a synthetic set)")
        return
    atomic_write_json(path, meta)


def write_synthetic(out: str | Path, n: int, seed: int = 0, size: int = 128, val_fraction: float = 0.2,
                    progress: bool = False, workers: int = 1) -> dict[str, int]:
    """Write ``n`` pairs: ``out/train/{images,masks}`` and ``out/val/{images,masks}`` (``val_fraction`` of
    ``n``, rounded), or ``out/{images,masks}`` when ``val_fraction == 0``. Images are PNG (lossless, so
    the in-focus cue survives). Returns the number of pairs per split."""
    if n < 1:
        raise DataError(f"--n must be >= 1, got {n}")
    if size < 32:
        raise DataError(f"--size must be >= 32 pixels, got {size}")
    if not 0 <= val_fraction < 1:
        raise DataError(f"--val-fraction must be in [0, 1), got {val_fraction}")
    out = Path(out)
    n_val = int(round(n * val_fraction))
    if val_fraction > 0 and (n_val == 0 or n_val == n):
        raise DataError(f"--n {n} with --val-fraction {val_fraction} leaves an empty split; use a larger --n")
    plan = [("train", n - n_val), ("val", n_val)] if val_fraction > 0 else [("", n)]
    jobs = []
    for split, count in plan:
        folder = out / split if split else out
        (folder / "images").mkdir(parents=True, exist_ok=True)
        (folder / "masks").mkdir(parents=True, exist_ok=True)
        jobs.extend((folder, split or "train", i, seed, size) for i in range(count))
    _check_meta(out, seed, size, val_fraction)
    from tqdm import tqdm

    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(workers) as pool:
            for _ in tqdm(pool.map(_write_one, jobs, chunksize=16), total=len(jobs), desc="synth",
                          disable=not progress, unit="img"):
                pass
    else:
        for job in tqdm(jobs, desc="synth", disable=not progress, unit="img"):
            _write_one(job)
    return {split or "all": count for split, count in plan}
