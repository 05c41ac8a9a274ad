"""Dense CRF: pulls a noisy labelling onto the image's colour boundary."""

import sys

import numpy as np
import pytest

from pixelwise.errors import PixelwiseError
from pixelwise.inference.crf import dense_crf


def _two_colour_case(seed=0):
    rng = np.random.default_rng(seed)
    h, w = 48, 64
    yy, xx = np.mgrid[0:h, 0:w]
    truth = ((xx - 40) ** 2 + (yy - 24) ** 2 < 15**2).astype(np.int64)  # a disc on a plain ground
    image = np.where(truth[..., None] == 1, [200, 40, 40], [30, 60, 200]).astype(np.uint8)
    # unary: right class at 0.6, but 35% of pixels have their labels swapped
    flip = rng.random((h, w)) < 0.35
    noisy = np.where(flip, 1 - truth, truth)
    probs = np.where(np.arange(2)[:, None, None] == noisy[None], 0.6, 0.4).astype(np.float32)
    return image, probs, truth


def test_crf_moves_a_noisy_labelling_to_the_colour_boundary():
    image, probs, truth = _two_colour_case()
    before = (probs.argmax(0) == truth).mean()
    refined = dense_crf(image, probs)
    after = (refined.argmax(0) == truth).mean()
    assert before < 0.7
    assert after > 0.97
    assert refined.shape == probs.shape and refined.dtype == np.float32
    np.testing.assert_allclose(refined.sum(0), 1.0, atol=1e-4)


def test_shape_mismatch_is_a_clear_error():
    image, probs, _ = _two_colour_case()
    with pytest.raises(PixelwiseError, match="do not match"):
        dense_crf(image[:10], probs)


def test_missing_extra_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "pydensecrf", None)
    monkeypatch.setitem(sys.modules, "pydensecrf.densecrf", None)
    image, probs, _ = _two_colour_case()
    with pytest.raises(PixelwiseError, match=r"pip install 'pixelwise\[crf\]'"):
        dense_crf(image, probs)
