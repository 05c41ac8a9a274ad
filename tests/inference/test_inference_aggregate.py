"""DeconvNet's instance-wise inference: crops, batches, and max / sum / mean aggregation."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from pixelwise.errors import PixelwiseError
from pixelwise.inference.aggregate import ScoreAccumulator, crop_box, deconvnet_on_boxes, pad_fill


def test_a_whole_image_box_equals_a_direct_forward_pass_resized_back(deconvnet):
    # 240 x 300: the crop is shrunk to 224 x 224 (bilinear, antialiased like MATLAB's imresize),
    # the score map is enlarged back (bilinear)
    x = torch.randn(3, 240, 300)
    with torch.no_grad():
        scores, coverage = deconvnet_on_boxes(deconvnet, x, [[0, 0, 300, 240]], size=224)
        small = F.interpolate(x[None], size=(224, 224), mode="bilinear", align_corners=False, antialias=True)
        expected = F.interpolate(deconvnet(small), size=(240, 300), mode="bilinear", align_corners=False)[0]
    assert coverage.all()
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=1e-5)


def test_hand_made_score_maps_aggregate_by_max_sum_and_mean():
    a = torch.tensor([1.0, 5.0, -2.0]).view(3, 1, 1).expand(3, 4, 6)
    b = torch.tensor([3.0, 0.0, -4.0]).view(3, 1, 1).expand(3, 4, 6)
    box_a, box_b = (0, 0, 6, 4), (4, 2, 10, 6)  # overlap: x 4..5, y 2..3
    results = {}
    for mode in ("max", "sum", "mean"):
        acc = ScoreAccumulator(3, 8, 12, mode=mode)
        acc.add(box_a, a)
        acc.add(box_b, b)
        results[mode], coverage = acc.result()
    both, only_a, only_b = (slice(None), 3, 5), (slice(None), 1, 1), (slice(None), 5, 8)
    assert results["max"][both].tolist() == [3.0, 5.0, -2.0]
    assert results["sum"][both].tolist() == [4.0, 5.0, -6.0]
    assert results["mean"][both].tolist() == [2.0, 2.5, -3.0]
    for mode in results:  # where one box covers a pixel all three give that box's scores
        assert results[mode][only_a].tolist() == [1.0, 5.0, -2.0]
        assert results[mode][only_b].tolist() == [3.0, 0.0, -4.0]
        assert results[mode][:, 7, 0].tolist() == [0.0, 0.0, 0.0]  # uncovered: 0, flagged
    assert coverage.sum() == 4 * 6 + 4 * 6 - 2 * 2 and not coverage[7, 0]


def test_negative_scores_survive_max_aggregation():
    # the release started its max from zeros, clipping negative scores; here they survive
    acc = ScoreAccumulator(2, 4, 4, mode="max")
    acc.add((0, 0, 4, 4), torch.full((2, 4, 4), -3.0))
    assert acc.result()[0].max() == -3.0


def test_crops_are_zero_padded_outside_the_image():
    img = torch.arange(2 * 3 * 4, dtype=torch.float32).view(2, 3, 4)
    crop = crop_box(img, (-1, 1, 3, 5))  # x -1..2, y 1..4
    assert crop.shape == (2, 4, 4)
    assert (crop[:, :, 0] == 0).all() and (crop[:, 2:, :] == 0).all()
    assert torch.equal(crop[:, :2, 1:], img[:, 1:3, 0:3])


def test_batching_does_not_change_the_result(deconvnet):
    x = torch.randn(3, 90, 120)
    boxes = np.array([[-10, -5, 70, 80], [30, 20, 120, 90]])
    with torch.no_grad():
        one, cov1 = deconvnet_on_boxes(deconvnet, x, boxes, batch=1)
        three, cov3 = deconvnet_on_boxes(deconvnet, x, boxes, batch=2)
    torch.testing.assert_close(one, three, atol=1e-5, rtol=1e-5)
    assert torch.equal(cov1, cov3)
    assert cov1.sum() == 70 * 80 + 90 * 70 - 40 * 60  # the union of the boxes' in-image parts


def test_no_boxes_means_nothing_covered(deconvnet):
    scores, coverage = deconvnet_on_boxes(deconvnet, torch.zeros(3, 20, 30), np.zeros((0, 4)))
    assert scores.shape == (4, 20, 30) and not coverage.any() and (scores == 0).all()


def test_bad_arguments(deconvnet):
    x = torch.zeros(3, 20, 30)
    with pytest.raises(PixelwiseError, match="multiples of 32"):
        deconvnet_on_boxes(deconvnet, x, [[0, 0, 10, 10]], size=100)
    with pytest.raises(PixelwiseError, match="max, max0, sum, mean"):
        deconvnet_on_boxes(deconvnet, x, [[0, 0, 10, 10]], mode="median")
    with pytest.raises(PixelwiseError, match="x0 < x1"):
        deconvnet_on_boxes(deconvnet, x, [[5, 0, 5, 10]])


def test_max0_is_the_releases_zero_started_max():
    a = torch.tensor([1.0, -5.0, -2.0]).view(3, 1, 1).expand(3, 4, 6)
    b = torch.tensor([-3.0, -1.0, -4.0]).view(3, 1, 1).expand(3, 4, 6)
    out = {}
    for mode in ("max", "max0"):
        acc = ScoreAccumulator(3, 8, 12, mode=mode)
        acc.add((0, 0, 6, 4), a)
        acc.add((4, 2, 10, 6), b)
        out[mode], coverage = acc.result()
    assert out["max"][:, 3, 5].tolist() == [1.0, -1.0, -2.0]
    assert out["max0"][:, 3, 5].tolist() == [1.0, 0.0, 0.0]  # max(0, max_i s_i)
    assert out["max0"][:, 5, 8].tolist() == [0.0, 0.0, 0.0]  # one box, all negative: all 0
    assert (out["max0"][:, ~coverage] == 0).all()


def test_black_padding_is_the_normalised_black_pixel():
    from pixelwise.convention import CAFFE_BGR, TORCHVISION_RGB

    assert pad_fill("mean", CAFFE_BGR) is None
    torch.testing.assert_close(pad_fill("black", CAFFE_BGR), -torch.tensor([104.00699, 116.66877, 122.67892]))
    expected = -torch.tensor(TORCHVISION_RGB.mean) / torch.tensor(TORCHVISION_RGB.std)
    torch.testing.assert_close(pad_fill("black", TORCHVISION_RGB), expected)
    image = torch.ones(3, 4, 5)
    crop = crop_box(image, (-2, -1, 3, 3), pad_fill("black", CAFFE_BGR))
    assert crop.shape == (3, 4, 5)
    assert (crop[:, 1:, 2:] == 1).all()
    torch.testing.assert_close(crop[:, 0, 0], pad_fill("black", CAFFE_BGR))
    with pytest.raises(PixelwiseError, match="mean, black"):
        pad_fill("grey", CAFFE_BGR)


def test_black_padding_equals_cropping_a_black_padded_raw_image(deconvnet):
    # the release pads the raw image with zeros, then crops and normalises: same crops, same scores
    from pixelwise.convention import CAFFE_BGR
    from pixelwise.data.transforms import normalize_image

    rng = np.random.default_rng(1)
    raw = rng.integers(0, 256, (40, 50, 3), dtype=np.uint8)
    box = [-20, -10, 44, 54]  # reaches past the top-left corner
    padded = np.zeros((80, 80, 3), np.uint8)
    padded[10:50, 20:70] = raw
    x = normalize_image(raw, CAFFE_BGR)
    with torch.no_grad():
        ours, _ = deconvnet_on_boxes(deconvnet, x, [box], size=224, fill=pad_fill("black", CAFFE_BGR))
        theirs, _ = deconvnet_on_boxes(deconvnet, normalize_image(padded, CAFFE_BGR), [[0, 0, 64, 64]], size=224)
        mean_padded, _ = deconvnet_on_boxes(deconvnet, x, [box], size=224)
    # the box covers raw columns 0..43 (x1 = 44 exclusive), all 40 rows
    torch.testing.assert_close(ours[:, :, :44], theirs[:, 10:50, 20:64], atol=1e-4, rtol=1e-4)
    assert not torch.allclose(ours, mean_padded, atol=1e-3)
