"""Every proposal generator returns valid boxes; EdgeBoxes without its model fails clearly."""

from types import SimpleNamespace

import numpy as np
import pytest

from pixelwise.data import build_dataset
from pixelwise.errors import PixelwiseError
from pixelwise.inference.boxes import TOP_K, prepare_boxes, write_box_file
from pixelwise.inference.proposals import generate_proposals


@pytest.fixture(scope="module")
def sample():
    return build_dataset("synthetic", split="val", length=2)[0]


def _check(boxes, scores, image):
    h, w = image.shape[:2]
    assert boxes.dtype == np.float32 and scores.dtype == np.float32
    assert boxes.ndim == 2 and boxes.shape[1] == 4 and len(boxes) == len(scores) > 0
    assert (boxes[:, :2] >= 0).all() and (boxes[:, 2] <= w).all() and (boxes[:, 3] <= h).all()  # inside the image
    assert (boxes[:, 0] < boxes[:, 2]).all() and (boxes[:, 1] < boxes[:, 3]).all()
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


# -- EdgeBoxes candidate count (OpenCV replaced by a fake: no structured-edge model needed) ------


class _FakeEdgeBoxes:
    """Stands in for OpenCV's EdgeBoxes: returns the first ``maxBoxes`` of a fixed ranked list,
    as OpenCV does (its NMS is greedy in score order, so a larger request extends a smaller one)."""

    def __init__(self, rects, requests):
        self.rects, self.requests, self.n = rects, requests, None

    def setMaxBoxes(self, n):
        self.n = n
        self.requests.append(n)

    def setAlpha(self, a):
        pass

    def setBeta(self, b):
        pass

    def getBoundingBoxes(self, edges, orientation):
        rects = self.rects[: self.n]
        scores = np.linspace(1.0, 0.01, len(self.rects), dtype=np.float32)[: self.n]
        return rects.astype(np.int32), scores.reshape(-1, 1)


class _FakeDetector:
    def detectEdges(self, image):
        return np.zeros(image.shape[:2], np.float32)

    def computeOrientation(self, edges):
        return np.zeros_like(edges)

    def edgesNms(self, edges, orientation):
        return edges


def _ranked(small: int, large: int) -> np.ndarray:
    """``small`` 20 px boxes ranked first, then ``large`` 150 px ones, as (x, y, w, h) rects."""
    i, j = np.arange(small), np.arange(large)
    return np.concatenate([
        np.stack([(i * 7) % 380, (i * 3) % 280, np.full(small, 20), np.full(small, 20)], 1),
        np.stack([j % 300, j % 200, np.full(large, 150), np.full(large, 150)], 1),
    ]).reshape(-1, 4)


@pytest.fixture
def fake_edge_boxes(monkeypatch, tmp_path):
    """Return ``setup(rects) -> (model_path, requests)``: EdgeBoxes on a fake OpenCV."""
    from pixelwise.inference import proposals

    def setup(rects):
        requests: list[int] = []
        fake = SimpleNamespace(
            error=type("error", (Exception,), {}),
            ximgproc=SimpleNamespace(
                createStructuredEdgeDetection=lambda path: _FakeDetector(),
                createEdgeBoxes=lambda: _FakeEdgeBoxes(rects, requests),
            ),
        )
        monkeypatch.setattr(proposals, "_cv2_ximgproc", lambda: fake)
        model = tmp_path / "model.yml.gz"
        model.write_bytes(b"fake")
        return model, requests

    return setup


def test_edge_boxes_asks_for_enough_candidates_for_the_top_50_after_the_size_rule(fake_edge_boxes):
    image = np.zeros((400, 500, 3), np.uint8)
    rects = _ranked(1500, 5000)  # the 1500 best boxes are all too small for the 112 px rule
    model, requests = fake_edge_boxes(rects)
    boxes, scores = generate_proposals(image, "edge-boxes", model_path=model)
    _check(boxes, scores, image)
    assert requests == [1000, 4000]  # 1000 first: none passes; 4000: enough pass
    kept, _ = prepare_boxes(boxes, scores, image_hw=(400, 500))  # the pipeline's defaults
    assert len(kept) == TOP_K == 50
    # the same 50 as from every candidate there is: the best large ones, in order
    everything = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], 1).astype(np.float32)
    want, _ = prepare_boxes(everything, np.linspace(1.0, 0.01, len(rects), dtype=np.float32),
                            image_hw=(400, 500))
    np.testing.assert_array_equal(kept, want)

    # enough in the first pass: a single request
    model, requests = fake_edge_boxes(_ranked(100, 5000))
    generate_proposals(image, "edge-boxes", model_path=model)
    assert requests == [1000]


def test_edge_boxes_stops_when_candidates_run_out_or_cannot_pass(fake_edge_boxes):
    image = np.zeros((400, 500, 3), np.uint8)
    model, requests = fake_edge_boxes(_ranked(1500, 20))  # OpenCV has only 1520 boxes
    boxes, scores = generate_proposals(image, "edge-boxes", model_path=model)
    assert requests == [1000, 4000] and len(boxes) == 1520
    assert len(prepare_boxes(boxes, scores, image_hw=(400, 500))[0]) == 20  # all there are

    model, requests = fake_edge_boxes(_ranked(20000, 0))  # only small boxes: stop at the limit
    boxes, _ = generate_proposals(image, "edge-boxes", model_path=model)
    assert requests == [1000, 4000, 10000] and len(boxes) == 10000

    model, requests = fake_edge_boxes(_ranked(1500, 5000))
    generate_proposals(np.zeros((80, 90, 3), np.uint8), "edge-boxes", model_path=model)
    assert requests == [1000]  # even the whole 80 x 90 image is under 112 px when enlarged

    model, requests = fake_edge_boxes(_ranked(1500, 5000))
    generate_proposals(image, "edge-boxes", model_path=model, want=None, max_boxes=100)
    assert requests == [100]  # one pass, as asked

    model, requests = fake_edge_boxes(_ranked(1500, 5000))
    generate_proposals(image, "edge-boxes", model_path=model, min_box=0)
    assert requests == [1000]  # a looser rule (as the pipeline may pass): the first pass suffices
