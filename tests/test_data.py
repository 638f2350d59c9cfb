"""SOD folder datasets (layouts, errors, augmentation determinism), sampler, synthetic set."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from hwnas.data import IMAGENET_MEAN, IMAGENET_STD, SODFolder, epoch_indices, find_pairs
from hwnas.errors import DataError


def _pair(img_dir, mask_dir, stem, size=(20, 16), img_ext=".jpg", seed=0):
    rng = np.random.default_rng(seed)
    img_dir.mkdir(parents=True, exist_ok=True)
    mask_dir.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(img_dir / f"{stem}{img_ext}")
    mask = np.zeros((size[1], size[0]), np.uint8)
    mask[4:12, 5:15] = 255
    Image.fromarray(mask).save(mask_dir / f"{stem}.png")


@pytest.mark.parametrize(
    "image_sub, mask_sub",
    [
        ("DUTS-TR/DUTS-TR-Image", "DUTS-TR/DUTS-TR-Mask"),  # DUTS (wrapped one level down)
        ("images", "ground_truth_mask"),  # ECSSD
        ("imgs", "gt"),  # HKU-IS
        ("DUT-OMRON-image", "pixelwiseGT-new-PNG"),  # DUT-OMRON
        ("Imgs", "GT"),  # PASCAL-S benchmark pack
        ("images", "masks"),  # hwnas data synth
    ],
)
def test_layouts_are_detected(tmp_path, image_sub, mask_sub):
    for stem in ("b", "a"):
        _pair(tmp_path / image_sub, tmp_path / mask_sub, stem)
    pairs = find_pairs(tmp_path)
    assert [p[0].stem for p in pairs] == ["a", "b"]
    assert all(i.parent == tmp_path / image_sub and m.parent == tmp_path / mask_sub for i, m in pairs)


def test_flat_layout_and_explicit_folders(tmp_path):
    _pair(tmp_path / "flat", tmp_path / "flat", "x")
    assert len(find_pairs(tmp_path / "flat")) == 1
    _pair(tmp_path / "odd_a", tmp_path / "odd_b", "y")
    pairs = find_pairs(images=tmp_path / "odd_a", masks=tmp_path / "odd_b")
    assert pairs[0][0].name == "y.jpg" and pairs[0][1].name == "y.png"


def test_images_without_masks_are_named(tmp_path):
    for stem in ("a", "b"):
        _pair(tmp_path / "images", tmp_path / "masks", stem)
    for stem in ("lonely1", "lonely2"):
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "images" / f"{stem}.jpg")
    with pytest.raises(DataError, match=r"2 of 4 images .* have no mask .*lonely1\.jpg, lonely2\.jpg"):
        find_pairs(tmp_path)


def test_empty_and_missing_folders(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="empty folder"):
        find_pairs(tmp_path / "empty")
    with pytest.raises(DataError, match="does not exist"):
        find_pairs(tmp_path / "nope")
    (tmp_path / "e2" / "images").mkdir(parents=True)
    (tmp_path / "e2" / "masks").mkdir()
    with pytest.raises(DataError, match="no images found"):
        find_pairs(tmp_path / "e2")


def test_unreadable_image_names_the_file(tmp_path):
    _pair(tmp_path / "images", tmp_path / "masks", "good")
    (tmp_path / "images" / "broken.jpg").write_bytes(b"not a jpeg at all")
    _pair(tmp_path / "tmpm", tmp_path / "masks", "broken")  # a valid mask for it
    with pytest.raises(DataError, match=r"cannot read image .*broken\.jpg"):  # refused on load, not mid-training
        SODFolder(tmp_path, 16)


def test_items_shape_range_and_normalisation(tmp_path):
    _pair(tmp_path / "images", tmp_path / "masks", "a", size=(40, 30))
    ds = SODFolder(tmp_path, 32)
    img, mask = ds[0]
    assert img.shape == (3, 32, 32) and mask.shape == (1, 32, 32)
    assert mask.min() >= 0 and mask.max() <= 1 and 0 < mask.mean() < 1
    raw, _ = ds.raw(0)
    expected = (torch.from_numpy(raw).permute(2, 0, 1).float() / 255 - torch.tensor(IMAGENET_MEAN).view(3, 1, 1)) \
        / torch.tensor(IMAGENET_STD).view(3, 1, 1)
    torch.testing.assert_close(img, expected)
    assert SODFolder(tmp_path, 32, mask_size=48)[0][1].shape == (1, 48, 48)


def test_augmentation_is_a_function_of_seed_epoch_index(tmp_path):
    _pair(tmp_path / "images", tmp_path / "masks", "a", size=(48, 48))
    a, b = SODFolder(tmp_path, 32, augment=True, seed=3), SODFolder(tmp_path, 32, augment=True, seed=3)
    a.set_epoch(1)
    b.set_epoch(1)
    torch.testing.assert_close(a[0], b[0])  # same (seed, epoch, index): identical sample
    b.set_epoch(2)
    assert not torch.equal(a[0][0], b[0][0])  # another epoch: another crop / flip / jitter


def test_epoch_indices_partition_and_determinism():
    full = epoch_indices(10, seed=1, epoch=0)
    assert sorted(full) == list(range(10))
    assert full == epoch_indices(10, seed=1, epoch=0)
    assert full != epoch_indices(10, seed=1, epoch=1)
    shards = [epoch_indices(10, 1, 0, rank=r, world_size=3) for r in range(3)]
    assert [len(s) for s in shards] == [4, 4, 4]  # padded to a multiple of the world size
    assert set(sum(shards, [])) == set(range(10))


def test_synthetic_set_layout_and_determinism(tmp_path):
    from hwnas.data.synth import make_sample, write_synthetic

    counts = write_synthetic(tmp_path / "s", n=10, seed=5, size=64, val_fraction=0.2)
    assert counts == {"train": 8, "val": 2}
    assert len(find_pairs(tmp_path / "s" / "train")) == 8 and len(find_pairs(tmp_path / "s" / "val")) == 2
    img, mask = make_sample(5, 3, 64, "train")
    on_disk = np.asarray(Image.open(tmp_path / "s" / "train" / "images" / "train_000003.png"))
    np.testing.assert_array_equal(img, on_disk)
    assert img.shape == (64, 64, 3) and mask.shape == (64, 64)
    fg = (mask > 128).mean()
    assert 0.05 < fg < 0.5  # one object of 10-30 % of the image (smooth edges included)
    assert not np.array_equal(make_sample(5, 3, 64, "val")[0], img)
    with pytest.raises(DataError, match="empty split"):
        write_synthetic(tmp_path / "t", n=2, val_fraction=0.1)


def test_synthetic_set_defeats_colour_contrast(tmp_path):
    """The FT baseline (pure colour contrast) must stay far from solving the synthetic task."""
    from hwnas.baseline import evaluate_ft
    from hwnas.data.synth import write_synthetic

    write_synthetic(tmp_path / "s", n=40, seed=0, size=96, val_fraction=0)
    r = evaluate_ft(SODFolder(tmp_path / "s", 96))
    assert r["images"] == 40
    assert r["max_f"] <= 0.6, r  # measured 0.34 on 200 images of 128 px
