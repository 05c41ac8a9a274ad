"""Paired transforms keep image, mask, instances, size_map and boxes aligned; the torch wrapper."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from pixelwise.convention import CAFFE_BGR, TORCHVISION_RGB
from pixelwise.data import SegmentationDataset, SyntheticShapes, collate
from pixelwise.data.instances import boxes_from_instances
from pixelwise.data.transforms import (
    CAFFE_MEAN_RGB,
    ColorJitter,
    Compose,
    ObjectCrop,
    RandomCrop,
    RandomHorizontalFlip,
    RandomScale,
    Resize,
    crop_sample,
    denormalize,
    hflip_sample,
    normalize_image,
    window_sample,
)
from pixelwise.errors import DataError

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
    r = Resize((96, 128))(bare)  # exact 2x
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


def test_resize_short_side_and_nearest_labels():
    sample = block_sample(0)
    out = Resize(24)(sample)
    assert out["image"].shape[:2] == (24, 32)
    assert set(np.unique(out["mask"])) <= set(np.unique(sample["mask"]))


def test_color_jitter_changes_image_only():
    sample = block_sample(0)
    out = ColorJitter(0.4, 0.4, 0.4, 0.1)(sample, np.random.default_rng(0))
    assert not np.array_equal(out["image"], sample["image"])
    for k in ("mask", "instances", "size_map", "boxes"):
        np.testing.assert_array_equal(out[k], sample[k])


def test_normalize_conventions_and_roundtrip():
    img = np.zeros((2, 3, 3), np.uint8)
    img[..., 0], img[..., 1], img[..., 2] = 10, 20, 30
    x = normalize_image(img, CAFFE_BGR)
    assert x.shape == (3, 2, 3) and x.dtype == torch.float32
    assert torch.allclose(
        x[:, 0, 0], torch.tensor([30 - 104.00699, 20 - 116.66877, 10 - 122.67892])
    )
    y = normalize_image(img, "torchvision_rgb")
    assert torch.allclose(y[0, 0, 0], torch.tensor((10 / 255 - 0.485) / 0.229))
    rgb = np.random.default_rng(0).integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    for conv in (CAFFE_BGR, TORCHVISION_RGB):
        np.testing.assert_array_equal(denormalize(normalize_image(rgb, conv), conv), rgb)
        batch = torch.stack([normalize_image(rgb, conv)] * 2)
        assert denormalize(batch, conv).shape == (2, 5, 7, 3)


def test_wrapper_is_deterministic_per_seed_epoch_index():
    base = SyntheticShapes("train", length=6, size=48, seed=0)
    t = Compose([RandomScale(0.5, 1.5), RandomCrop(40), RandomHorizontalFlip(), ColorJitter()])
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


def test_wrapper_extras_and_collate():
    base = SyntheticShapes("val", length=4, size=32, seed=0)
    ds = SegmentationDataset(base, RandomCrop(32), return_extras=True)
    img, mask, extras = ds[0]
    assert extras["name"] == "synthetic_val_000000"
    assert extras["size_map"].dtype == torch.int64 and extras["size_map"].shape == (32, 32)
    assert extras["boxes"].dtype == torch.float32 and extras["box_labels"].dtype == torch.int64
    loader = DataLoader(ds, batch_size=2, collate_fn=collate)
    images, masks, ex = next(iter(loader))
    assert images.shape == (2, 3, 32, 32) and masks.shape == (2, 32, 32)
    assert ex["size_map"].shape == (2, 32, 32) and len(ex["boxes"]) == 2 and len(ex["name"]) == 2
    plain = SegmentationDataset(SyntheticShapes("val", length=2, size=32))
    images, masks = collate([plain[0], plain[1]])
    assert images.shape == (2, 3, 32, 32)
    odd = SegmentationDataset(SyntheticShapes("val", length=1, size=(32, 40)))
    with pytest.raises(DataError, match="differ in size"):
        collate([plain[0], odd[0]])


def test_window_outside_image_and_object_crop():
    sample = block_sample(2)
    out = window_sample(sample, -4, 50, (20, 30))  # reaches above and right of the 48x64 image
    assert out["image"].shape == (20, 30, 3)
    assert (out["mask"][:4] == 255).all() and (out["mask"][:, 14:] == 255).all()
    assert (out["instances"][:4] == 0).all() and (out["size_map"][:, 14:] == 255).all()
    np.testing.assert_array_equal(out["mask"][4:, :14], sample["mask"][:16, 50:])
    np.testing.assert_array_equal(out["boxes"], boxes_from_instances(out["instances"]))

    t = Compose([ObjectCrop(40, enlarge=(1.5, 1.5), jitter=0.0), RandomCrop(32)])
    for seed in range(3):
        res = t(sample, np.random.default_rng(seed))
        assert res["image"].shape == (32, 32, 3)
        mask = res["mask"]
        inside = _interior(mask) & (mask != 255)
        np.testing.assert_array_equal(_derive_labels(res["image"])[inside], mask[inside])
        np.testing.assert_array_equal(res["boxes"], boxes_from_instances(res["instances"]))
    # no boxes: the whole image is resized
    bare = {k: v for k, v in sample.items() if k not in ("boxes", "box_labels", "instances")}
    assert ObjectCrop(16)(bare, np.random.default_rng(0))["image"].shape == (16, 16, 3)
