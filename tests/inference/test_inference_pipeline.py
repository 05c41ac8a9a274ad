"""segment(): the right path per model type, TTA, uncovered pixels, ensembles, CRF."""

from dataclasses import replace

import numpy as np
import pytest
import torch

from pixelwise.convention import TORCHVISION_RGB
from pixelwise.data.transforms import normalize_image
from pixelwise.errors import PixelwiseError
from pixelwise.inference import DenseOptions, PostOptions, ProposalOptions, predict_batch, segment
from pixelwise.models.ensemble import combine_scores


def _x(image, convention=None):
    return normalize_image(image, convention or "caffe_bgr")[None]


def test_fcn_whole_image_is_the_softmax_of_the_model(fcn8s, image):
    probs = segment(fcn8s, image)
    with torch.no_grad():
        expected = fcn8s(_x(image)).softmax(1)[0].numpy()
    assert probs.shape == (4, 96, 112) and probs.dtype == np.float32
    np.testing.assert_allclose(probs, expected, atol=1e-6)
    np.testing.assert_array_equal(segment(fcn8s, image, dense=DenseOptions(tile=128)), probs)  # one tile = whole image


def test_the_model_input_convention_is_used(fcn8s, image):
    fcn8s.input_convention = TORCHVISION_RGB
    probs = segment(fcn8s, image)
    with torch.no_grad():
        expected = fcn8s(_x(image, TORCHVISION_RGB)).softmax(1)[0].numpy()
    np.testing.assert_allclose(probs, expected, atol=1e-6)


def test_flip_tta_averages_the_mirrored_view(fcn8s, image):
    plain = segment(fcn8s, image)
    mirrored = segment(fcn8s, np.ascontiguousarray(image[:, ::-1]))[:, :, ::-1]
    np.testing.assert_allclose(segment(fcn8s, image, dense=DenseOptions(tta="flip")), (plain + mirrored) / 2, atol=1e-5)


def test_scale_tta_on_a_pointwise_model_and_a_flat_image(pointwise):
    # a flat image looks the same at every scale, so every view agrees
    flat = np.full((40, 50, 3), 120, np.uint8)
    np.testing.assert_allclose(segment(pointwise, flat, dense=DenseOptions(scales=(0.5, 1.0, 1.5), tta="flip")), segment(pointwise, flat), atol=1e-5)
    image = np.random.default_rng(0).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    multi = segment(pointwise, image, dense=DenseOptions(scales=(0.5, 1.0)))
    assert multi.shape == (4, 40, 50) and not np.allclose(multi, segment(pointwise, image), atol=1e-3)
    np.testing.assert_allclose(multi.sum(0), 1.0, atol=1e-5)


def test_deconvnet_without_proposals_is_one_whole_image_pass(deconvnet, image):
    with torch.no_grad():
        expected = deconvnet.forward_any_size(_x(image)).softmax(1)[0].numpy()
    np.testing.assert_allclose(segment(deconvnet, image), expected, atol=1e-6)


def test_uncovered_pixels_whole_or_background(deconvnet, image):
    half = ProposalOptions(boxes=np.array([[0, 0, 56, 96]]), enlarge=1.0, min_box=0)  # the left half only
    info = {}
    filled = segment(deconvnet, image, proposals=replace(half, uncovered="whole"), info=info)
    assert info["boxes"] == 1 and info["coverage"] == pytest.approx(0.5)
    whole = segment(deconvnet, image)
    np.testing.assert_allclose(filled[:, :, 56:], whole[:, :, 56:], atol=1e-6)  # right half: whole-image pass
    assert not np.allclose(filled[:, :, :56], whole[:, :, :56], atol=1e-3)  # left half: the box's own scores
    background = segment(deconvnet, image, proposals=replace(half, uncovered="background"))
    assert (background[:, :, 56:].argmax(0) == 0).all()
    np.testing.assert_allclose(background[:, :, :56], filled[:, :, :56], atol=1e-6)


def test_uncovered_zero_is_uniform_like_the_release(deconvnet, edeconvnet, image):
    half = ProposalOptions(boxes=np.array([[0, 0, 56, 96]]), enlarge=1.0, min_box=0, uncovered="zero")
    probs = segment(deconvnet, image, proposals=half)
    np.testing.assert_allclose(probs[:, :, 56:], 1 / probs.shape[0], atol=1e-6)
    covered = segment(deconvnet, image, proposals=replace(half, uncovered="background"))
    np.testing.assert_allclose(probs[:, :, :56], covered[:, :, :56], atol=1e-6)
    # the release's ensemble: max0 aggregation, product with FCN-8s -> 0 where no box is, uniform
    ens = segment(edeconvnet, image, proposals=replace(half, aggregate="max0"),
                  post=PostOptions(ensemble_mode="product"))
    np.testing.assert_allclose(ens[:, :, 56:], 1 / ens.shape[0], atol=1e-6)


def test_proposal_padding_follows_the_model_unless_told(deconvnet, image):
    black = deconvnet
    black.proposal_pad = "black"
    box = ProposalOptions(boxes=np.array([[-30, -30, 70, 70]]), enlarge=1.0, min_box=0, uncovered="zero")
    own = segment(black, image, proposals=box)
    np.testing.assert_allclose(own, segment(black, image, proposals=replace(box, pad="black")), atol=1e-6)
    assert not np.allclose(own, segment(black, image, proposals=replace(box, pad="mean")), atol=1e-4)
    with pytest.raises(PixelwiseError, match="--pad"):
        segment(black, image, proposals=replace(box, pad="grey"))


def test_proposal_methods_and_small_image_minimum(deconvnet, image):
    info = {}
    segment(deconvnet, image, proposals=ProposalOptions(method="sliding", top_k=3, min_box_frac=0.3), info=info)
    assert info["proposals"] == "sliding" and info["boxes"] == 3
    segment(deconvnet, image, proposals=ProposalOptions(method="sliding"), info=info)  # paper minimum: 112 px after enlarging
    assert info["boxes"] == 2  # only the two 96 px boxes (115 px enlarged) pass on a 96 x 112 image
    segment(deconvnet, image, proposals=ProposalOptions(method="sliding", min_box=120), info=info)
    assert info["boxes"] == 0 and info["coverage"] == 0.0  # nothing left: the whole-image pass fills all


def test_edeconvnet_combines_fcn_and_deconvnet(edeconvnet, image):
    with torch.no_grad():
        x = _x(image)
        f, d = edeconvnet.fcn(x), edeconvnet.deconvnet.forward_any_size(x)
    for mode in ("mean", "product"):
        expected = combine_scores(f, d, mode).softmax(1)[0].numpy()
        np.testing.assert_allclose(segment(edeconvnet, image, post=PostOptions(ensemble_mode=mode)), expected, atol=1e-5)
    # uncovered = fcn: outside the boxes the ensemble is FCN-8s alone
    box = ProposalOptions(boxes=np.array([[0, 0, 40, 96]]), enlarge=1.0, min_box=0, uncovered="fcn")
    probs = segment(edeconvnet, image, proposals=box)
    np.testing.assert_allclose(probs[:, :, 40:], f.softmax(1)[0, :, :, 40:].numpy(), atol=1e-5)


def test_crf_option_returns_refined_probabilities(fcn8s, image):
    probs = segment(fcn8s, image, post=PostOptions(crf=True))
    assert probs.shape == (4, 96, 112)
    np.testing.assert_allclose(probs.sum(0), 1.0, atol=1e-4)


def test_bad_combinations_are_clear_errors(fcn8s, deconvnet, image):
    with pytest.raises(PixelwiseError, match="DeconvNet and EDeconvNet only"):
        segment(fcn8s, image, proposals=ProposalOptions(method="sliding"))
    with pytest.raises(PixelwiseError, match="needs an EDeconvNet"):
        segment(deconvnet, image, proposals=ProposalOptions(uncovered="fcn"))
    with pytest.raises(PixelwiseError, match=r"\(H, W, 3\) uint8"):
        segment(fcn8s, image.astype(np.float32))
    with pytest.raises(PixelwiseError, match="not both"):
        segment(deconvnet, image, proposals=ProposalOptions(method="sliding", boxes=np.array([[0, 0, 9, 9]])))
    with pytest.raises(TypeError, match="takes a ProposalOptions"):
        segment(deconvnet, image, proposals="sliding")  # the keyword arguments of old


def test_predict_batch_matches_segment(fcn8s, image):
    other = np.ascontiguousarray(image[::-1])
    small = image[:40, :50].copy()
    out = predict_batch(fcn8s, [image, small, other], batch=2)
    for img, probs in zip([image, small, other], out):
        np.testing.assert_allclose(probs, segment(fcn8s, img), atol=1e-5)


def test_option_defaults_and_info(fcn8s, image):
    dense, proposals, post = DenseOptions(), ProposalOptions(), PostOptions()
    assert (dense.tile, dense.overlap, dense.window, dense.context, dense.tta, dense.scales, dense.precision) == (
        None, 0.33, "linear", 0, None, None, "fp32")
    assert not proposals.enabled and proposals.box_rules() == dict(enlarge=1.2, square=False, min_box=112,
                                                                   min_box_frac=None, top_k=50)
    assert (proposals.size, proposals.batch, proposals.aggregate, proposals.uncovered, proposals.pad) == (
        None, 8, "max", "whole", None)
    assert post.crf_settings()["preset"] == "release" and not post.crf and post.ensemble_mode is None
    assert DenseOptions(scales=[0.5, 1]).scales == (0.5, 1.0) and DenseOptions(scales=[1], tta="flip").views == 2
    info = {}
    np.testing.assert_array_equal(segment(fcn8s, image, dense=dense, proposals=proposals, post=post, info=info),
                                  segment(fcn8s, image))
    assert (info["model_kind"], info["proposals"], info["views"], info["crf"]) == ("fcn", None, 1, False)
