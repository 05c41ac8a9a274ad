"""Dense CRF presets: ``release`` reproduces the authors' MATLAB wrapper (meanfield-matlab around
Krähenbühl's densecrf), ``pydensecrf`` keeps pydensecrf2's defaults.

The wrapper's mean-field update, for every pixel i and label l (10 times, from Q = softmax(-U)):

    Q_i(l) <- softmax_l( -U_i(l) + sum_m w_m sum_j k_m(i, j) Q_j(l) )

with the sum over all pixels j, i itself included, no normalisation of the kernels, and Potts
compatibility applied as ``-w * Q`` and subtracted (equivalent to a penalty w_m k_m(i, j) for
different labels). The library evaluates ``sum_j k(i, j) Q_j`` with a permutohedral lattice,
which is only an approximation of the Gaussian (off by 10-60 % on a tiny image); the tests below
therefore check the update twice: with the lattice's own kernel matrix (probed through the
library, at the release weights, to float32 precision), and with the exact Gaussians in a
configuration where the lattice is close to them.
"""

import numpy as np
import pytest

from pixelwise.errors import PixelwiseError
from pixelwise.inference.crf import CRF_DEFAULTS, CRF_PRESETS, crf_unary, dense_crf

dcrf = pytest.importorskip("pydensecrf.densecrf")

H, W, C = 4, 5, 3


def _softmax(x):
    e = np.exp(x - x.max(0))
    return e / e.sum(0)


def _tiny_case(seed=0, spread=2.0):
    """A 4x5 two-colour image (with a little noise) and 3-class probabilities."""
    rng = np.random.default_rng(seed)
    image = np.where((np.arange(W) >= 2)[None, :, None], [40, 90, 200], [200, 60, 40])
    image = (image + rng.integers(-3, 4, (H, W, 3))).astype(np.uint8)
    probs = _softmax(rng.normal(0.0, spread, (C, H, W))).astype(np.float32)
    return image, probs


def _mean_field(unary, kernel, iterations):
    """Naive mean field: ``unary`` (C, N), ``kernel`` (N, N) = sum of weight * k over both kernels."""
    q = _softmax(-unary)
    for _ in range(iterations):
        q = _softmax(-unary + q @ kernel.T)
    return q


# -- the wrapper's layout: pixel p = row + col * H, features (row, col[, r, g, b]) / sigma ----------


def _wrapper_features(image, sxy, srgb=None):
    rows = np.tile(np.arange(H), W).astype(np.float32)
    cols = np.repeat(np.arange(W), H).astype(np.float32)
    feats = [rows / np.float32(sxy), cols / np.float32(sxy)]
    if srgb is not None:
        pixels = image.transpose(1, 0, 2).reshape(-1, 3).astype(np.float32)
        feats += [pixels[:, k] / np.float32(srgb) for k in range(3)]
    return np.ascontiguousarray(np.stack(feats))


def _lattice_kernel(features):
    """The (N, N) matrix the library's unnormalised filter applies, read off one column at a time:
    a two-label CRF whose only non-uniform pixel is j; after one mean-field step the log-odds of
    pixel i are -(U_i(0) - U_i(1)) + K[i, j] * (Q_j(0) - Q_j(1)) (Potts weight 1)."""
    n = features.shape[1]
    kernel = np.zeros((n, n))
    for j in range(n):
        q = np.full(n, 0.5)
        q[j] = 0.9
        unary = np.stack([-np.log(q), -np.log(1 - q)]).astype(np.float32)
        crf = dcrf.DenseCRF(n, 2)
        crf.setUnaryEnergy(np.ascontiguousarray(unary))
        crf.addPairwiseEnergy(features, compat=1.0, kernel=dcrf.CONST_KERNEL, normalization=dcrf.NO_NORMALIZATION)
        out = np.asarray(crf.inference(1), dtype=np.float64)
        kernel[:, j] = (np.log(out[0] / out[1]) + (unary[0] - unary[1])) / 0.8
    return kernel


def _exact_kernel(image, gaussian_sxy, gaussian_weight, bilateral_sxy, bilateral_srgb, bilateral_weight):
    yy, xx = np.mgrid[0:H, 0:W]
    pos = np.stack([yy.ravel(), xx.ravel()], 1).astype(np.float64)
    rgb = image.reshape(-1, 3).astype(np.float64)
    d_pos = ((pos[:, None] - pos[None]) ** 2).sum(-1)
    d_rgb = ((rgb[:, None] - rgb[None]) ** 2).sum(-1)
    return gaussian_weight * np.exp(-d_pos / (2 * gaussian_sxy**2)) + bilateral_weight * np.exp(
        -d_pos / (2 * bilateral_sxy**2) - d_rgb / (2 * bilateral_srgb**2)
    )  # i == j included: k(i, i) = 1


def test_presets_give_different_marginals():
    image, probs = _tiny_case()
    big = np.kron(image, np.ones((4, 4, 1), dtype=np.uint8))  # 16x20
    big_probs = np.kron(probs, np.ones((1, 4, 4), dtype=np.float32))
    release = dense_crf(big, big_probs, preset="release")
    pyd = dense_crf(big, big_probs, preset="pydensecrf")
    for q in (release, pyd):
        assert q.shape == big_probs.shape and q.dtype == np.float32
        np.testing.assert_allclose(q.sum(0), 1.0, atol=1e-4)
    assert np.abs(release - pyd).max() > 0.1


def test_release_is_the_default():
    assert CRF_DEFAULTS["preset"] == "release"
    image, probs = _tiny_case()
    np.testing.assert_array_equal(dense_crf(image, probs), dense_crf(image, probs, preset="release"))
    np.testing.assert_array_equal(dense_crf(image, probs, **CRF_DEFAULTS), dense_crf(image, probs))


@pytest.mark.parametrize(
    "gaussian_weight, bilateral_weight, iterations",
    [(3.0, 5.0, 1), (0.3, 0.5, 10)],  # release weights (10 steps saturate a 20-pixel image), and 10 steps
)
def test_release_preset_is_the_wrappers_mean_field_update(gaussian_weight, bilateral_weight, iterations):
    """Naive dense mean field with the library's own (lattice) kernels, release sxy/srgb, wrapper
    layout: agrees to float32 precision (observed < 1e-6; symmetric normalisation is 0.4-0.6 off,
    the row-major layout 0.04-0.1, leaving out j == i 0.08-0.8)."""
    image, probs = _tiny_case(spread=3.0)
    kernel = gaussian_weight * _lattice_kernel(_wrapper_features(image, 3.0)) + bilateral_weight * _lattice_kernel(
        _wrapper_features(image, 20.0, 3.0)
    )
    assert np.diag(kernel).min() > 0  # the library's sum includes j == i
    unary = (-np.log(probs.astype(np.float64))).astype(np.float32)
    unary = unary.transpose(0, 2, 1).reshape(C, -1).astype(np.float64)
    expected = _mean_field(unary, kernel, iterations).reshape(C, W, H).transpose(0, 2, 1)
    assert np.abs(expected - probs).max() > 0.1 and expected.max(0).min() < 0.9  # pairwise matters, not saturated
    kw = dict(gaussian_weight=gaussian_weight, bilateral_weight=bilateral_weight, iterations=iterations)
    np.testing.assert_allclose(dense_crf(image, probs, **kw), expected, atol=1e-5)
    assert np.abs(dense_crf(image, probs, preset="pydensecrf", **kw) - expected).max() > 0.05


def test_release_preset_matches_exact_gaussian_mean_field_where_the_lattice_is_close():
    """Naive dense mean field with the exact Gaussians exp(-|p_i-p_j|^2/2sxy^2) and
    exp(-|p_i-p_j|^2/2sxy^2 - |I_i-I_j|^2/2srgb^2), i == j included, no normalisation.

    The lattice is close to the exact kernels only when all features nearly coincide (huge sxy and
    srgb), where it returns about 0.90 (2-D) and 0.985 (5-D) of the exact sum; so the weights are
    small (pairwise effect ~1.5e-3 on the marginals) and the Gaussian one smaller still. Tolerance
    1e-4: observed release error 3e-5 (the lattice's few-% deficit), symmetric normalisation 1.4e-3
    off (it divides every message by its row sum, ~20)."""
    image, probs = _tiny_case(spread=1.0)
    kw = dict(gaussian_sxy=1e4, gaussian_weight=1e-4, bilateral_sxy=1e4, bilateral_srgb=1e5, bilateral_weight=3e-3)
    unary = (-np.log(probs.astype(np.float64))).astype(np.float32).reshape(C, -1).astype(np.float64)
    expected = _mean_field(unary, _exact_kernel(image, **kw), 10).reshape(C, H, W)
    assert np.abs(expected - probs).max() > 1e-3
    np.testing.assert_allclose(dense_crf(image, probs, **kw), expected, atol=1e-4)
    assert np.abs(dense_crf(image, probs, preset="pydensecrf", **kw) - expected).max() > 5e-4


def test_pydensecrf_preset_is_the_previous_behaviour():
    image, probs = _tiny_case()
    crf = dcrf.DenseCRF2D(W, H, C)
    crf.setUnaryEnergy(np.ascontiguousarray(-np.log(np.clip(probs, 1e-8, 1.0)).reshape(C, -1), dtype=np.float32))
    crf.addPairwiseGaussian(sxy=3.0, compat=3.0)
    crf.addPairwiseBilateral(sxy=20.0, srgb=3.0, rgbim=np.ascontiguousarray(image), compat=5.0)
    expected = np.asarray(crf.inference(10), dtype=np.float32).reshape(C, H, W)
    np.testing.assert_array_equal(dense_crf(image, probs, preset="pydensecrf"), expected)


def test_release_unary_is_float64_log_without_cap_and_finite_at_zero():
    probs = np.array([[[0.7]], [[1e-12]], [[0.0]]], dtype=np.float32)
    unary = crf_unary(probs, "release")
    assert unary.dtype == np.float32 and np.isfinite(unary).all()
    assert unary[0, 0, 0] == np.float32(-np.log(np.float64(np.float32(0.7))))
    assert unary[1, 0, 0] == pytest.approx(-np.log(np.float64(np.float32(1e-12))), rel=1e-6)  # ~27.6, not 18.4
    assert unary[2, 0, 0] == pytest.approx(149 * np.log(2), rel=1e-6)  # 0 -> smallest float32, 2**-149
    assert crf_unary(probs.astype(np.float64), "release")[2, 0, 0] == pytest.approx(1074 * np.log(2), rel=1e-6)
    assert crf_unary(probs, "pydensecrf")[1:].max() == pytest.approx(-np.log(1e-8), rel=1e-6)

    image, p = _tiny_case()
    p[0] = 0.0
    p /= p.sum(0)
    q = dense_crf(image, p)
    assert np.isfinite(q).all()
    np.testing.assert_allclose(q.sum(0), 1.0, atol=1e-4)


def test_bad_preset_and_bad_probabilities_are_clear_errors():
    image, probs = _tiny_case()
    with pytest.raises(PixelwiseError, match="unknown CRF preset"):
        dense_crf(image, probs, preset="paper")
    bad = probs.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(PixelwiseError, match="probabilities must be"):
        dense_crf(image, bad)
    assert set(CRF_PRESETS) == {"release", "pydensecrf"}


def test_cli_crf_preset_reaches_segment():
    import argparse

    from pixelwise.cli.inference_options import add_inference_args, post_options_from

    parser = argparse.ArgumentParser()
    add_inference_args(parser)
    args = parser.parse_args(["--crf"])
    assert args.crf_preset == "release"
    assert post_options_from(args).crf and post_options_from(args).crf_settings()["preset"] == "release"
    args = parser.parse_args(["--crf", "--crf-preset", "pydensecrf"])
    assert post_options_from(args).crf_settings()["preset"] == "pydensecrf"
