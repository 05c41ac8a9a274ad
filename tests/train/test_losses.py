"""Losses for imbalanced data (beyond the papers): class weights, focal, Dice, cross-entropy + Dice,
median-frequency weights; each checked against numbers worked out by hand."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
import yaml

from pixelwise.cli import main
from pixelwise.errors import PixelwiseError
from pixelwise.train.config import TrainConfig, parse_class_weights
from pixelwise.train.loop import segmentation_loss, training_loss
from pixelwise.train.losses import (
    SegmentationLoss,
    build_loss,
    class_pixel_counts,
    cross_entropy_loss,
    dataset_class_weights,
    dice_loss,
    focal_loss,
    median_frequency_weights,
    resolve_class_weights,
)
from pixelwise.train.runlog import read_log

LN3 = math.log(3.0)


def hand_case(with_empty_image: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """2 classes, one 2x2 image:

    pixel  logits     softmax (class 0, 1)  label  p_t
    a      (ln3, 0)   (3/4, 1/4)            0      3/4
    b      (0, 0)     (1/2, 1/2)            1      1/2
    c      (0, ln3)   (1/4, 3/4)            0      1/4
    d      (5, -5)    -                     255    ignored

    ``with_empty_image``: a second image whose pixels are all ignored (N = 2, same 3 valid pixels).
    """
    logits = torch.tensor([[[LN3, 0.0], [0.0, 5.0]],
                           [[0.0, 0.0], [LN3, -5.0]]]).unsqueeze(0)  # (1, 2, 2, 2): [class, row, col]
    target = torch.tensor([[[0, 1], [0, 255]]])
    if with_empty_image:
        logits = torch.cat([logits, torch.randn(1, 2, 2, 2)])
        target = torch.cat([target, torch.full((1, 2, 2), 255)])
    return logits, target


# per-pixel -log p_t of a, b, c: ln(4/3), ln 2, ln 4
CE_A, CE_B, CE_C = math.log(4 / 3), math.log(2), math.log(4)
W = torch.tensor([1.0, 3.0])  # class 1 weighs 3; valid pixels' weights: a 1, b 3, c 1 -> sum 5


def test_cross_entropy_by_hand():
    logits, target = hand_case()
    # unweighted: mean over the 3 valid pixels = ln(4/3 * 2 * 4) / 3 = ln(32/3) / 3
    assert cross_entropy_loss(logits, target).item() == pytest.approx(math.log(32 / 3) / 3, rel=1e-6)
    # weighted mean (torch's convention): (1 ln(4/3) + 3 ln 2 + 1 ln 4) / (1 + 3 + 1)
    weighted = (CE_A + 3 * CE_B + CE_C) / 5
    assert cross_entropy_loss(logits, target, weight=W).item() == pytest.approx(weighted, rel=1e-6)
    assert weighted == pytest.approx(F.cross_entropy(logits, target, weight=W, ignore_index=255).item(), rel=1e-6)
    # sum: summed per image, averaged over the N = 2 images (the second has no valid pixel)
    logits2, target2 = hand_case(with_empty_image=True)
    assert cross_entropy_loss(logits2, target2, reduction="sum").item() == pytest.approx(math.log(32 / 3) / 2,
                                                                                         rel=1e-6)
    assert cross_entropy_loss(logits2, target2, weight=W, reduction="sum").item() == pytest.approx(
        (CE_A + 3 * CE_B + CE_C) / 2, rel=1e-6)
    # the mean is unchanged by an all-ignored image
    assert cross_entropy_loss(logits2, target2, weight=W).item() == pytest.approx(weighted, rel=1e-6)


def test_focal_by_hand():
    logits, target = hand_case()
    # gamma 2: (1 - p_t)^2 = 1/16, 1/4, 9/16 for a, b, c
    fa, fb, fc = CE_A / 16, CE_B / 4, 9 * CE_C / 16
    assert focal_loss(logits, target, gamma=2).item() == pytest.approx((fa + fb + fc) / 3, rel=1e-6)
    # class weights as alpha, normalised by the valid pixels' weights as the weighted cross-entropy
    assert focal_loss(logits, target, gamma=2, weight=W).item() == pytest.approx((fa + 3 * fb + fc) / 5, rel=1e-6)
    logits2, target2 = hand_case(with_empty_image=True)
    assert focal_loss(logits2, target2, gamma=2, reduction="sum").item() == pytest.approx((fa + fb + fc) / 2,
                                                                                         rel=1e-6)
    # gamma 0.5: sqrt(1/4), sqrt(1/2), sqrt(3/4)
    half = (0.5 * CE_A + math.sqrt(0.5) * CE_B + math.sqrt(0.75) * CE_C) / 3
    assert focal_loss(logits, target, gamma=0.5).item() == pytest.approx(half, rel=1e-6)


def test_focal_with_gamma_zero_is_the_cross_entropy():
    logits = torch.randn(2, 4, 5, 6)
    target = torch.randint(0, 4, (2, 5, 6))
    target[0, 0] = 255
    w = torch.tensor([0.5, 1.0, 2.0, 4.0])
    for reduction in ("mean", "sum"):
        for weight in (None, w):
            torch.testing.assert_close(focal_loss(logits, target, gamma=0, weight=weight, reduction=reduction),
                                       cross_entropy_loss(logits, target, weight=weight, reduction=reduction))


def test_dice_by_hand():
    logits, target = hand_case()
    # class 0 (pixels a, c): sum p*y = 3/4 + 1/4 = 1, sum p = 3/4 + 1/2 + 1/4 = 3/2, sum y = 2 -> d0 = 2/(7/2) = 4/7
    # class 1 (pixel b):     sum p*y = 1/2,          sum p = 1/4 + 1/2 + 3/4 = 3/2, sum y = 1 -> d1 = 1/(5/2) = 2/5
    # (the ignored pixel d adds nothing to sum p)
    d0, d1 = 4 / 7, 2 / 5
    assert dice_loss(logits, target).item() == pytest.approx(1 - (d0 + d1) / 2, rel=1e-6)  # 18/35
    assert 1 - (d0 + d1) / 2 == pytest.approx(18 / 35)
    # weighted mean of the classes' Dice: 1 - (1 * 4/7 + 3 * 2/5) / 4 = 39/70
    assert dice_loss(logits, target, weight=W).item() == pytest.approx(39 / 70, rel=1e-6)
    # sum: times the valid pixels per image, 3 valid pixels / 2 images
    logits2, target2 = hand_case(with_empty_image=True)
    assert dice_loss(logits2, target2, reduction="sum").item() == pytest.approx(18 / 35 * 3 / 2, rel=1e-6)
    assert dice_loss(logits2, target2).item() == pytest.approx(18 / 35, rel=1e-6)


def test_dice_counts_only_the_classes_present():
    logits, _ = hand_case()
    target = torch.tensor([[[0, 0], [255, 255]]])  # pixels a (p0 = 3/4) and b (p0 = 1/2), both class 0
    # class 0: sum p*y = 5/4, sum p = 5/4, sum y = 2 -> d0 = (5/2) / (13/4) = 10/13; class 1 absent, not averaged
    assert dice_loss(logits, target).item() == pytest.approx(1 - 10 / 13, rel=1e-6)


def test_cross_entropy_plus_dice_is_the_sum():
    logits, target = hand_case()
    loss = SegmentationLoss("cross_entropy+dice")(logits, target)
    assert loss.item() == pytest.approx(math.log(32 / 3) / 3 + 18 / 35, rel=1e-6)
    loss = SegmentationLoss("cross_entropy+dice", class_weights=W)(logits, target)
    assert loss.item() == pytest.approx((CE_A + 3 * CE_B + CE_C) / 5 + 39 / 70, rel=1e-6)


@pytest.mark.parametrize("kind", ["cross_entropy", "focal", "dice", "cross_entropy+dice"])
@pytest.mark.parametrize("weighted", [False, True])
def test_no_valid_pixel_gives_zero_and_finite_gradients(kind, weighted):
    logits = torch.randn(2, 2, 3, 3, requires_grad=True)
    target = torch.full((2, 3, 3), 255)
    for reduction in ("mean", "sum"):
        loss = SegmentationLoss(kind, reduction=reduction, gamma=0.5, class_weights=W if weighted else None)(
            logits, target)
        loss.backward()
        assert loss.item() == 0.0
        assert torch.isfinite(logits.grad).all() and not logits.grad.any()
        logits.grad = None


def test_confident_pixels_keep_focal_gradients_finite():
    logits = torch.tensor([[[[40.0]], [[-40.0]]]], requires_grad=True)  # p_t rounds to 1
    for gamma in (0.5, 1.0, 2.0):
        focal_loss(logits, torch.zeros(1, 1, 1, dtype=torch.long), gamma=gamma).backward()
        assert torch.isfinite(logits.grad).all()
        logits.grad = None


def test_default_loss_is_the_old_segmentation_loss_exactly():
    logits = torch.randn(2, 4, 5, 6)
    target = torch.randint(0, 4, (2, 5, 6))
    target[1, :, :2] = 255
    for reduction in ("mean", "sum"):
        crit = build_loss(TrainConfig(loss_reduction=reduction), 4)
        assert crit.kind == "cross_entropy" and crit.class_weights is None
        assert torch.equal(crit(logits, target), segmentation_loss(logits, target, reduction=reduction))
    aux = [torch.randn(2, 4, 2, 3)]
    crit = build_loss(TrainConfig(), 4)
    assert torch.equal(training_loss((logits, aux), target, aux_weight=0.5, loss_fn=crit),
                       training_loss((logits, aux), target, aux_weight=0.5))


def test_deep_supervision_uses_the_configured_loss():
    logits = torch.randn(1, 3, 8, 8)
    target = torch.randint(0, 3, (1, 8, 8))
    aux = [torch.randn(1, 3, 2, 2), torch.randn(1, 3, 4, 4)]
    crit = build_loss(TrainConfig(loss="focal", class_weights="1,2,3"), 3)
    expected = crit(logits, target) + 0.5 * sum(
        crit(F.interpolate(a, size=(8, 8), mode="bilinear", align_corners=False), target) for a in aux)
    torch.testing.assert_close(training_loss((logits, aux), target, aux_weight=0.5, loss_fn=crit), expected)


# -- class weights -------------------------------------------------------------------------------

FIXTURE_MASKS = [
    np.array([[0, 0], [0, 1]], dtype=np.uint8),  # class 0: 3, class 1: 1; 4 valid pixels
    np.array([[0, 2], [255, 2]], dtype=np.uint8),  # class 0: 1, class 2: 2; 3 valid pixels
    np.array([[1, 1], [1, 1]], dtype=np.uint8),  # class 1: 4; 4 valid pixels
]


def test_median_frequency_weights_by_hand():
    class_pixels, image_pixels = class_pixel_counts(FIXTURE_MASKS, 4)
    assert class_pixels.tolist() == [4, 5, 2, 0]
    assert image_pixels.tolist() == [4 + 3, 4 + 4, 3, 0]  # valid pixels of the images each class is in
    # freq = 4/7, 5/8, 2/3; median 5/8 -> weights (5/8)/(4/7) = 35/32, 1, (5/8)/(2/3) = 15/16; absent class 3: 1
    weights = median_frequency_weights(class_pixels, image_pixels)
    assert weights.tolist() == pytest.approx([35 / 32, 1.0, 15 / 16, 1.0])


def test_median_frequency_weights_of_a_dataset():
    dataset = [{"mask": m} for m in FIXTURE_MASKS]
    cw = dataset_class_weights(dataset, 4)
    assert cw.values == pytest.approx([35 / 32, 1.0, 15 / 16, 1.0]) and cw.images == 3 and cw.absent == [3]
    # the first 2 images only: freq = 4/7, 1/4, 2/3; median 4/7 -> 1, 16/7, 6/7
    cw = dataset_class_weights(dataset, 4, limit=2)
    assert cw.values == pytest.approx([1.0, 16 / 7, 6 / 7, 1.0]) and cw.images == 2
    line = cw.message(["bg", "a", "b", "c"])
    assert "\n" not in line and "median-freq over 2" in line and "weight 1: c" in line
    # as a run resolves them: rounded to the 6 digits the config stores
    resolved = resolve_class_weights(TrainConfig(class_weights="median-freq"), dataset, 4)
    assert resolved.spec() == "1.09375,1,0.9375,1"
    assert resolve_class_weights(TrainConfig(), dataset, 4) is None
    # resuming: the checkpoint's list is reused, nothing recounted
    again = resolve_class_weights(TrainConfig(class_weights="median-freq"), [], 4, saved="1.09375,1,0.9375,1")
    assert again.source == "checkpoint" and again.values == [1.09375, 1.0, 0.9375, 1.0]
    listed = resolve_class_weights(TrainConfig(class_weights="1,2,3,4"), [], 4, saved="1,2,3,4")
    assert listed.source == "checkpoint" and "from the checkpoint" in listed.message()


def test_class_weight_lists_and_their_errors():
    assert parse_class_weights("1,2.5, 0") == [1.0, 2.5, 0.0]
    assert parse_class_weights("[1, 2]", 2) == [1.0, 2.0]  # a YAML list read as a string
    crit = build_loss(TrainConfig(class_weights="1,3"), 2)
    assert crit.class_weights.tolist() == [1.0, 3.0]
    with pytest.raises(PixelwiseError) as err:
        build_loss(TrainConfig(class_weights="1,2,3"), 2)
    msg = str(err.value)
    assert "\n" not in msg and "3 weights" in msg and "2 classes" in msg and "median-freq" in msg
    with pytest.raises(PixelwiseError, match="has 1 weights but there are 2 classes"):
        resolve_class_weights(TrainConfig(class_weights="1"), [], 2)
    for bad in ("1,abc", "1,-2", "0,0", "nan,1", ","):
        with pytest.raises(PixelwiseError, match="class_weights"):
            TrainConfig.from_dict({"class_weights": bad})
    with pytest.raises(PixelwiseError, match="focal_gamma"):
        TrainConfig.from_dict({"focal_gamma": -1})
    with pytest.raises(PixelwiseError, match="compute the weights first"):
        build_loss(TrainConfig(class_weights="median-freq"), 2)


def test_train_with_focal_loss_and_median_frequency_weights(tmp_path, capsys):
    out = tmp_path / "run"
    # the objects world: every class shows in 4 scenes of 32 px, so no "absent" note follows the weights
    flags = ["train", "--model", "fcn32s", "--width", "0.03125", "--no-pad100", "--data", "size=32",
             "--data", "world=objects",
             "--train-limit", "4", "--val-split", "", "--batch-size", "2", "--log-every", "1",
             "--loss", "focal", "--class-weights", "median-freq", "--convention", "torchvision_rgb",
             "--threads", "1", "--out", str(out), "--no-progress"]
    assert main(flags + ["--steps", "2"]) == 0
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if "class weights (median-freq over 4 training images)" in ln]
    assert len(lines) == 1
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["loss"] == "focal"
    weights = parse_class_weights(saved["class_weights"])
    assert lines[0].endswith("): " + saved["class_weights"])  # printed as the list the run stores
    log = read_log(out / "log.jsonl")
    event = next(r for r in log if r.get("event") == "class_weights")
    assert event["source"] == "median-freq" and event["images"] == 4 and event["weights"] == weights
    assert len(weights) == 8 and any(w != 1 for w in weights)
    losses = [r["loss"] for r in log if r["type"] == "train"]
    assert len(losses) == 2 and all(math.isfinite(v) for v in losses)
    # resuming with the same flags reuses the stored weights: no recount, no "changed" option
    assert main(flags + ["--steps", "3", "--resume", "auto"]) == 0
    err = capsys.readouterr().err
    assert "from the checkpoint's config): " + saved["class_weights"] in err
    assert "median-freq over" not in err and "changed from the checkpoint's config: steps\n" in err
    assert yaml.safe_load((out / "config.yaml").read_text())["class_weights"] == saved["class_weights"]
