"""DeconvNet stage-1/2 crop samplers and batch-norm recalibration."""

import numpy as np
import pytest
import torch
from scipy import ndimage
from torch import nn

from pixelwise.data import build_dataset, colorize
from pixelwise.data.dataset import SegmentationDataset
from pixelwise.train.bn_recalibration import recalibrate_bn
from pixelwise.train.deconvnet_sampling import ObjectCrop, ProposalCrop, box_iou, jitter_box


def painted(sample):
    """The sample with its image replaced by the colours of its mask (image drawn from the labels)."""
    out = dict(sample)
    out["image"] = colorize(sample["mask"])
    return out


def interior(mask, radius):
    """Pixels whose (2r+1)^2 neighbourhood has one label (bilinear upscaling blends colours over
    about one source pixel, i.e. ``scale`` output pixels, at label edges)."""
    size = 2 * radius + 1
    same = ndimage.minimum_filter(mask, size, mode="nearest") == ndimage.maximum_filter(mask, size, mode="nearest")
    # at the crop's border the unseen neighbours beyond it may differ
    same[:radius], same[-radius:], same[:, :radius], same[:, -radius:] = False, False, False, False
    return same & (mask != 255)


@pytest.fixture(scope="module")
def scenes():
    ds = build_dataset("synthetic", split="train", size=96, length=12, seed=3)
    return [ds[i] for i in range(len(ds))]


@pytest.mark.parametrize("sampler", [ObjectCrop(64, 72), ProposalCrop(64, 72, iou_range=(0.3, 0.7))])
def test_crops_hold_the_object_and_labels_align_with_the_image(scenes, sampler):
    rng = np.random.default_rng(0)
    hits = 0
    for sample in scenes:
        src = painted(sample)
        out = sampler(src, rng)
        assert out["image"].shape == (64, 64, 3) and out["mask"].shape == (64, 64)
        # labels stay aligned with the image: where the label is unambiguous, the colour is its colour
        scale = 72 / (out["crop_box"][2] - out["crop_box"][0])
        inside = interior(out["mask"], int(np.ceil(scale)) + 1)
        assert inside.sum() > 50
        diff = np.abs(out["image"].astype(int) - colorize(out["mask"]).astype(int)).max(axis=2)
        assert (diff[inside] <= 2).mean() > 0.99
        # every label in the crop comes from the source (other objects keep their labels)
        assert set(np.unique(out["mask"])) <= set(np.unique(sample["mask"])) | {255}
        if out["target_label"] and out["target_label"] in np.unique(out["mask"]):
            hits += 1
    assert hits >= len(scenes) - 1


def test_object_crop_is_centred_on_an_enlarged_object_box(scenes):
    rng = np.random.default_rng(1)
    sampler = ObjectCrop(64, 72, enlarge=(1.2, 1.5), min_side=1)
    for sample in scenes:
        out = sampler(sample, rng)
        (x0, y0, x1, y1), (bx0, by0, bx1, by1) = out["crop_box"], out["target_box"]
        side = x1 - x0
        assert side == y1 - y0  # square: no aspect distortion
        longer = max(bx1 - bx0, by1 - by0)
        assert 1.2 * longer - 1 <= side <= 1.5 * longer + 2
        assert x0 <= bx0 and y0 <= by0 and x1 >= bx1 and y1 >= by1  # the whole box is inside the cut-out


def test_object_crop_keeps_most_of_the_object():
    # one object of class 3 (a 20x30 rectangle) next to a class-5 one
    mask = np.zeros((120, 120), np.uint8)
    mask[40:60, 30:60] = 3
    mask[40:60, 60:70] = 5
    sample = {"image": colorize(mask), "mask": mask, "name": "toy"}
    rng = np.random.default_rng(2)
    for _ in range(10):
        out = ObjectCrop(64, 72, min_side=1)(sample, rng)
        if out["target_label"] != 3:
            continue
        # the object's area scaled into the crop: 20*30 pixels * (72 / side)^2, most of it inside the 64 crop
        side = out["crop_box"][2] - out["crop_box"][0]
        expected = 20 * 30 * (72 / side) ** 2
        assert (out["mask"] == 3).sum() > 0.8 * expected
        assert (out["mask"] == 5).sum() > 0  # the neighbour keeps its label


def test_stage2_boxes_overlap_ground_truth_in_the_iou_range():
    rng = np.random.default_rng(0)
    gt = np.array([30, 40, 90, 80], np.float32)
    ious = [box_iou(jitter_box(gt, rng, (0.3, 0.7), (128, 128)), gt) for _ in range(200)]
    assert min(ious) >= 0.3 and max(ious) <= 0.7
    assert np.std(ious) > 0.05  # spread over the range, not one fixed box
    shifted = [jitter_box(gt, rng, (0.3, 0.5)) for _ in range(50)]
    assert all(0.3 <= box_iou(b, gt) <= 0.5 for b in shifted)


def test_samplers_are_deterministic_per_seed_epoch_index(scenes):
    base = build_dataset("synthetic", split="train", size=96, length=4, seed=3)
    a = SegmentationDataset(base, ProposalCrop(64, 72), seed=5)
    b = SegmentationDataset(base, ProposalCrop(64, 72), seed=5)
    assert torch.equal(a[2][0], b[2][0]) and torch.equal(a[2][1], b[2][1])
    b.set_epoch(1)
    assert not torch.equal(a[2][0], b[2][0])


class TinyBN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.conv2 = nn.Conv2d(4, 2, 1)
        self.bn2 = nn.BatchNorm2d(2)

    def forward(self, x):
        return self.bn2(self.conv2(torch.relu(self.bn(self.conv(x)))))


def test_bn_recalibration_sets_population_statistics():
    torch.manual_seed(0)
    model = TinyBN()
    batches = [torch.randn(4, 3, 8, 8) * 3 + 1 for _ in range(6)]
    before = model.bn.running_mean.clone()
    used = recalibrate_bn(model, batches, num_batches=5)
    assert used == 5 and not model.training
    # direct computation over the same 5 batches
    with torch.no_grad():
        feats = torch.cat([model.conv(b) for b in batches[:5]])
        expect_mean = feats.mean(dim=(0, 2, 3))
        expect_var = feats.permute(1, 0, 2, 3).reshape(4, -1).var(dim=1, unbiased=True)
        # the second BN sees the first BN normalising each batch with its own statistics (train mode)
        x2 = []
        for b in batches[:5]:
            y = model.conv(b)
            y = (y - y.mean(dim=(0, 2, 3), keepdim=True)) / torch.sqrt(
                y.var(dim=(0, 2, 3), unbiased=False, keepdim=True) + model.bn.eps)
            y = y * model.bn.weight.view(1, -1, 1, 1) + model.bn.bias.view(1, -1, 1, 1)
            x2.append(model.conv2(torch.relu(y)))
        x2 = torch.cat(x2)
    assert not torch.allclose(before, model.bn.running_mean)
    torch.testing.assert_close(model.bn.running_mean, expect_mean, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model.bn.running_var, expect_var, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model.bn2.running_mean, x2.mean(dim=(0, 2, 3)), rtol=1e-5, atol=1e-5)
    assert recalibrate_bn(nn.Conv2d(3, 3, 1), batches, 3) == 0  # no BN: nothing to do


def test_batch_mean_estimator_is_the_releases():
    # the release: mean of per-batch means; mean of per-batch biased variances x m/(m-1), m = N*H*W
    model = TinyBN()
    # batches with different means: the pooled variance includes the spread between batch means
    batches = [torch.randn(4, 3, 8, 8) * 3 + 4 * k for k in range(5)]
    recalibrate_bn(model, batches, num_batches=5, estimator="batch_mean")
    with torch.no_grad():
        feats = [model.conv(b) for b in batches]
    m = 4 * 8 * 8
    means = torch.stack([f.mean(dim=(0, 2, 3)) for f in feats])
    variances = torch.stack([f.var(dim=(0, 2, 3), unbiased=False) for f in feats])
    torch.testing.assert_close(model.bn.running_mean, means.mean(0), rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(model.bn.running_var, variances.mean(0) * m / (m - 1), rtol=1e-5, atol=1e-5)
    pooled = torch.cat(feats).permute(1, 0, 2, 3).reshape(4, -1).var(dim=1, unbiased=True)
    assert (pooled > model.bn.running_var + 1e-3).all()  # the two estimators differ here
    with pytest.raises(ValueError, match="pooled, batch_mean"):
        recalibrate_bn(model, batches, 2, estimator="median")


def test_black_padding_of_crops_outside_the_image(scenes):
    sample = scenes[0]
    for pad, colour in (("mean", (123, 117, 104)), ("black", (0, 0, 0))):
        # a tiny object box near the corner, enlarged: the square reaches past the image
        crop = ObjectCrop(64, 64, enlarge=(3.0, 3.0), min_side=80, flip=False, pad=pad)
        out = crop.crop_object({"image": sample["image"], "mask": sample["mask"],
                                "boxes": np.array([[0, 0, 4, 4]], np.float32), "box_labels": np.array([1])},
                               0, np.random.default_rng(0))
        outside = out["mask"] == 255
        assert outside.any()
        far = ndimage.binary_erosion(outside, iterations=2)  # away from the resize's blend
        assert np.abs(out["image"][far].astype(int) - np.array(colour)).max() <= 1
    with pytest.raises(ValueError, match="mean, black"):
        ObjectCrop(64, pad="grey")
