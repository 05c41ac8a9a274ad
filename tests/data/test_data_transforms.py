"""Paired transforms keep image, mask, instances, size_map and boxes aligned; the torch wrapper."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pixelwise.convention import CAFFE_BGR, TORCHVISION_RGB
from pixelwise.data import SegmentationDataset, SyntheticShapes
from pixelwise.data.instances import boxes_from_instances
from pixelwise.data.transforms import (
    CAFFE_MEAN_RGB,
    Compose,
    RandomCrop,
    RandomHorizontalFlip,
    RandomScale,
    crop_sample,
    hflip_sample,
    normalize_image,
    resize_sample,
)

# label -> colour (far apart) and label -> derived size code / instance id
LUT = np.array(
    [[0, 0, 0], [250, 0, 0], [0, 250, 0], [0, 0, 250], [250, 250, 0], [0, 250, 250]], np.uint8
)


def block_sample(seed=0, h=48, w=64, block=8):
    """A sample whose image, instances and size_map are all functions of the block mask."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 6, size=(h // block, w // block)).astype(np.uint8)
    mask = np.kron(small, np.ones((block, block), np.uint8))
    mask[5:9, 40:50] = 255  # a VOC-like ignore patch
    labels = np.where(mask == 255, 0, mask)
    ids = np.kron(np.arange(1, small.size + 1).reshape(small.shape), np.ones((block, block), int))
    inst = np.where((labels > 0), ids, 0).astype(np.int32)
    from pixelwise.data.instances import relabel_instances

    inst, _ = relabel_instances(inst)
    size_map = np.where(mask == 255, 255, np.where(mask == 0, 0, (mask % 3) + 1)).astype(np.uint8)
    k = int(inst.max())
    box_labels = np.array([labels[inst == i][0] for i in range(1, k + 1)], np.int64)
    return {
        "image": LUT[labels],
        "mask": mask,
        "instances": inst,
        "size_map": size_map,
        "boxes": boxes_from_instances(inst),
        "box_labels": box_labels,
        "name": "blocks",
    }


def _interior(mask):
    """Pixels whose 3x3 neighbourhood has one label (away from edges a resize may blur)."""
    m = mask.astype(np.int32)
    p = np.pad(m, 1, mode="edge")
    same = np.ones(m.shape, bool)
    for dy in (0, 1, 2):
        for dx in (0, 1, 2):
            same &= p[dy : dy + m.shape[0], dx : dx + m.shape[1]] == m
    return same


def _derive_labels(image):
    d = ((image[:, :, None, :].astype(int) - LUT[None, None].astype(int)) ** 2).sum(-1)
    return d.argmin(-1)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
def test_scale_crop_flip_keep_everything_aligned(seed):
    sample = block_sample(seed)
    t = Compose([RandomScale(0.6, 1.7), RandomCrop((56, 60)), RandomHorizontalFlip(0.5)])
    out = t(sample, np.random.default_rng(seed))
    assert out["image"].shape == (56, 60, 3) and out["mask"].shape == (56, 60)
    mask, inst, smap = out["mask"], out["instances"], out["size_map"]
    # label maps moved together exactly (all nearest, one geometry)
    labels = np.where(mask == 255, 0, mask)
    np.testing.assert_array_equal(
        smap, np.where(mask == 255, 255, np.where(mask == 0, 0, (mask % 3) + 1))
    )
    np.testing.assert_array_equal(inst > 0, labels > 0)
    # image derived labels agree with the mask away from edges (bilinear blurs edges only)
    inside = _interior(mask) & (mask != 255)
    assert inside.sum() > 300
    np.testing.assert_array_equal(_derive_labels(out["image"])[inside], mask[inside])
    # boxes and labels follow the instances
    np.testing.assert_array_equal(out["boxes"], boxes_from_instances(inst))
    for k in range(1, int(inst.max()) + 1):
        assert (labels[inst == k] == out["box_labels"][k - 1]).all()
    assert out["name"] == "blocks"
    np.testing.assert_array_equal(sample["mask"], block_sample(seed)["mask"])  # input untouched


def test_boxes_without_instances_follow_geometry():
    full = block_sample(1)
    bare = {k: v for k, v in full.items() if k != "instances"}
    for fn in (hflip_sample, lambda s: crop_sample(s, 12, 9, (30, 40))):
        a, b = fn(full), fn(bare)
        np.testing.assert_array_equal(a["boxes"], b["boxes"])
        np.testing.assert_array_equal(a["box_labels"], b["box_labels"])
    r = resize_sample(bare, (96, 128))  # exact 2x
    np.testing.assert_allclose(r["boxes"], full["boxes"] * 2)


def test_random_crop_pads_small_images():
    sample = block_sample(0, h=16, w=24)
    out = RandomCrop(32)(sample, np.random.default_rng(0))
    assert out["image"].shape == (32, 32, 3)
    assert (out["mask"][16:] == 255).all() and (out["mask"][:, 24:] == 255).all()
    assert (out["size_map"][16:] == 255).all() and (out["instances"][16:] == 0).all()
    assert tuple(out["image"][20, 30]) == CAFFE_MEAN_RGB
    np.testing.assert_array_equal(out["mask"][:16, :24], sample["mask"])
    out = RandomCrop(32, mask_fill=0, image_fill=(1, 2, 3))(sample, np.random.default_rng(0))
    assert (out["mask"][16:] == 0).all() and tuple(out["image"][31, 31]) == (1, 2, 3)


def test_resize_keeps_labels_nearest():
    sample = block_sample(0)
    out = resize_sample(sample, (24, 32))
    assert out["image"].shape[:2] == (24, 32)
    assert set(np.unique(out["mask"])) <= set(np.unique(sample["mask"]))


def test_normalize_conventions():
    img = np.zeros((2, 3, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 10, 20, 30
    x = normalize_image(img, CAFFE_BGR)
    assert x.shape == (3, 2, 3) and x.dtype == torch.float32
    assert torch.allclose(
        x[:, 0, 0], torch.tensor([30 - 104.00699, 20 - 116.66877, 10 - 122.67892])
    )
    y = normalize_image(img, "torchvision_rgb")
    assert torch.allclose(y[0, 0, 0], torch.tensor((10 / 255 - 0.485) / 0.229))
    conv = TORCHVISION_RGB
    expected = [(v / 255 - m) / d for v, m, d in zip((10, 20, 30), conv.mean, conv.std, strict=True)]
    assert torch.allclose(y[:, 1, 2], torch.tensor(expected))  # RGB order kept


def test_wrapper_is_deterministic_per_seed_epoch_index():
    base = SyntheticShapes("train", length=6, size=48, seed=0)
    t = Compose([RandomScale(0.5, 1.5), RandomCrop(40), RandomHorizontalFlip()])
    ds = SegmentationDataset(base, t, convention=CAFFE_BGR, seed=7)
    x1, m1 = ds[3]
    assert x1.shape == (3, 40, 40) and x1.dtype == torch.float32
    assert m1.shape == (40, 40) and m1.dtype == torch.int64
    ds2 = SegmentationDataset(base, t, convention="caffe_bgr", seed=7)
    x2, m2 = ds2[3]
    assert torch.equal(x1, x2) and torch.equal(m1, m2)
    ds2.set_epoch(1)
    x3, _ = ds2[3]
    assert not torch.equal(x1, x3)
    ds2.set_epoch(0)
    assert torch.equal(ds2[3][0], x1)  # resuming an epoch reproduces it
    assert ds.num_classes == 8 and ds.class_names[0] == "background" and len(ds) == 6


def test_wrapper_extras():
    base = SyntheticShapes("val", length=4, size=32, seed=0)
    ds = SegmentationDataset(base, RandomCrop(32), return_extras=True)
    img, mask, extras = ds[0]
    assert extras["name"] == "synthetic_val_000000"
    assert extras["size_map"].dtype == torch.int64 and extras["size_map"].shape == (32, 32)
    assert extras["boxes"].dtype == torch.float32 and extras["box_labels"].dtype == torch.int64
