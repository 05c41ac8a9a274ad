import pytest
import torch

import pixelwise
from pixelwise.models.ensemble import combine_scores


def test_mean_mode_averages_probabilities():
    a, b = torch.randn(2, 5, 4, 4), torch.randn(2, 5, 4, 4)
    probs = combine_scores(a, b, "mean").softmax(1)
    torch.testing.assert_close(probs, (a.softmax(1) + b.softmax(1)) / 2)


def test_product_mode_is_the_releases_formula():
    # the release: max(0, max_i s_i) .* max(0, fcn); a class both members score negative must not
    # come out positive (the old raw product gave (-2) x (-3) = 6 here and picked class 3)
    fcn = torch.tensor([1.0, -2.0, 3.0, -3.0]).view(1, 4, 1, 1)
    dec = torch.tensor([2.0, 5.0, -1.0, -2.0]).view(1, 4, 1, 1)
    out = combine_scores(fcn, dec, "product")
    assert out.flatten().tolist() == [2.0, 0.0, 0.0, 0.0]
    assert out.argmax(1).item() == 0


def test_unknown_mode():
    with pytest.raises(ValueError, match="mean, product"):
        combine_scores(torch.zeros(1, 2, 1, 1), torch.zeros(1, 2, 1, 1), "max")


def test_edeconvnet_whole_image():
    model = pixelwise.create_model("edeconvnet", num_classes=3, width=0.0625, mode="product").eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, 50, 70))
    assert out.shape == (1, 3, 50, 70) and torch.isfinite(out).all()
