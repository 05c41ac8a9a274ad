"""Sliding-window inference equals whole-image inference where that can honestly hold."""

import pytest
import torch

from pixelwise.errors import PixelwiseError
from pixelwise.inference.sliding import sliding_window, tile_spans


@pytest.mark.parametrize("length,tile,overlap", [(736, 256, 0.33), (100, 64, 0.5), (97, 40, 0.0), (64, 64, 0.33)])
def test_tile_spans_cover_the_axis_on_the_stride_grid(length, tile, overlap):
    spans = tile_spans(length, tile, overlap, align=32)
    assert spans[0][0] == 0 and spans[-1][1] == length
    covered = torch.zeros(length, dtype=torch.bool)
    for start, end in spans:
        assert start % 32 == 0  # FCN/DeconvNet are shift-equivariant only by multiples of 32
        assert end - start <= tile + 31
        covered[start:end] = True
    assert covered.all()
    for (s0, _), (s1, _) in zip(spans, spans[1:]):
        assert s1 > s0


def test_one_tile_covering_the_image_is_exactly_whole_image(fcn8s):
    x = torch.randn(1, 3, 75, 97)
    with torch.no_grad():
        whole = fcn8s(x)
        for window in ("linear", "uniform"):
            tiled = sliding_window(fcn8s, x, tile=128, overlap=0.33, window=window)
            assert torch.equal(tiled, whole)


@pytest.mark.parametrize("window", ["linear", "uniform"])
def test_real_tiling_is_exact_for_a_pointwise_model(pointwise, window):
    # receptive field 1 px: every tile computes exactly the whole-image scores, so this checks
    # tile placement and weight normalisation alone
    x = torch.randn(2, 3, 100, 131) * 60
    with torch.no_grad():
        whole = pointwise(x)
        tiled = sliding_window(pointwise, x, tile=40, overlap=0.5, window=window, align=8)
    torch.testing.assert_close(tiled, whole, atol=1e-5, rtol=1e-5)


def test_fcn8s_tiling_is_exact_away_from_seams(fcn8s):
    # FCN-8s sees about 220 px on each side of a pixel. Tiles (0, 480) and (256, 736): a pixel
    # weighted by one tile only and more than 224 px from that tile's inner edge sees the same
    # input as in the whole image -> identical scores (the tiles sit on the 32-px grid)
    x = torch.randn(1, 3, 64, 736) * 50
    with torch.no_grad():
        whole = fcn8s(x)
        tiled = sliding_window(fcn8s, x, tile=(64, 480), overlap=0.33)
    assert tile_spans(736, 480, 0.33) == [(0, 480), (256, 736)]
    torch.testing.assert_close(tiled[..., :256], whole[..., :256], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(tiled[..., 480:], whole[..., 480:], atol=1e-4, rtol=1e-5)
    # in the blended band the tiles disagree with the whole image (zero padding at their edges)
    assert (tiled[..., 256:480] - whole[..., 256:480]).abs().max() > 1e-3


def test_fcn8s_tiling_with_context_equals_whole_image(fcn8s):
    # with 224 px of real context around every tile, every tile sees what the whole image sees
    x = torch.randn(1, 3, 64, 640) * 50
    with torch.no_grad():
        whole = fcn8s(x)
        tiled = sliding_window(fcn8s, x, tile=256, overlap=0.25, context=224)
        rough = sliding_window(fcn8s, x, tile=256, overlap=0.25, context=0)
    assert tile_spans(640, 256, 0.25) == [(0, 256), (192, 448), (384, 640)]
    torch.testing.assert_close(tiled, whole, atol=1e-4, rtol=1e-5)
    assert (rough - whole).abs().max() > 1e-3  # without context the seams do differ


@pytest.mark.parametrize(
    "kw,match",
    [({"tile": 0}, "--tile"), ({"tile": 16}, "at least 32"), ({"tile": 64, "overlap": 1.0}, "--overlap"), ({"tile": 64, "window": "gauss"}, "linear, uniform")],
)
def test_bad_options_are_clear_errors(pointwise, kw, match):
    with pytest.raises(PixelwiseError, match=match):
        sliding_window(pointwise, torch.zeros(1, 3, 8, 8), **kw)
