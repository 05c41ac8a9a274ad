"""Every proposal generator returns valid boxes; EdgeBoxes without its model fails clearly."""

import numpy as np
import pytest

from pixelwise.data import build_dataset
from pixelwise.errors import PixelwiseError
from pixelwise.inference.boxes import valid_boxes, write_box_file
from pixelwise.inference.proposals import generate_proposals


@pytest.fixture(scope="module")
def sample():
    return build_dataset("synthetic", split="val", length=2)[0]


def _check(boxes, scores, image):
    h, w = image.shape[:2]
    assert boxes.dtype == np.float32 and scores.dtype == np.float32
    assert boxes.ndim == 2 and boxes.shape[1] == 4 and len(boxes) == len(scores) > 0
    assert valid_boxes(boxes, h, w).all()  # inside the image, x0 < x1, y0 < y1
    assert (np.diff(scores) <= 0).all()  # best first


def test_selective_search(sample):
    boxes, scores = generate_proposals(sample["image"], "selective-search")
    _check(boxes, scores, sample["image"])
    # the ranking is seeded: the same image gives the same boxes in the same order
    again, _ = generate_proposals(sample["image"], "selective_search")
    np.testing.assert_array_equal(boxes, again)


def test_selective_search_on_a_downscaled_copy(sample):
    big = np.repeat(np.repeat(sample["image"], 2, 0), 3, 1)[:200, :300]  # 200 x 300
    boxes, scores = generate_proposals(big, "selective-search", max_side=100, max_boxes=50)
    _check(boxes, scores, big)
    assert len(boxes) <= 50 and boxes[:, 2].max() > 150  # scaled back to full-size coordinates


def test_sliding_boxes(sample):
    boxes, scores = generate_proposals(sample["image"], "sliding")
    _check(boxes, scores, sample["image"])
    assert len(boxes) == 39  # 1 + 4 + 9 + 25 squares on a square image
    wide = np.zeros((50, 120, 3), np.uint8)
    b, s = generate_proposals(wide, "sliding", fractions=(1.0,), step=0.5)
    _check(b, s, wide)
    assert b[:, 2].max() == 120  # the last box is flush with the far edge


def test_ground_truth_and_file_boxes(sample, tmp_path):
    boxes, scores = generate_proposals(sample["image"], "gt", sample=sample)
    _check(boxes, scores, sample["image"])
    np.testing.assert_allclose(boxes[:, :2].min(0), sample["boxes"][:, :2].min(0))
    path = write_box_file(tmp_path / "b.json", {"img.png": (np.array([[-5, 3, 60, 200], [1, 1, 9, 9]]), None)})
    fb, fs = generate_proposals(sample["image"], "file", path=path, name="img.png")
    _check(fb, fs, sample["image"])
    np.testing.assert_array_equal(fb[0], [0, 3, 60, 128])  # clipped to the image


def test_edge_boxes_without_model_file_is_a_clear_error(sample, tmp_path):
    with pytest.raises(PixelwiseError, match="model.yml.gz") as err:
        generate_proposals(sample["image"], "edge-boxes", model_path=None)
    assert "--edge-model" in str(err.value) and "opencv_extra" in str(err.value)
    with pytest.raises(PixelwiseError, match="not found"):
        generate_proposals(sample["image"], "edge-boxes", model_path=tmp_path / "model.yml.gz")
    junk = tmp_path / "junk.yml.gz"
    junk.write_bytes(b"not a model")
    with pytest.raises(PixelwiseError, match="not a structured-edge model"):
        generate_proposals(sample["image"], "edge-boxes", model_path=junk)


def test_unknown_method_lists_the_valid_ones(sample):
    with pytest.raises(PixelwiseError, match="selective-search, edge-boxes, sliding, file, gt"):
        generate_proposals(sample["image"], "rpn")
