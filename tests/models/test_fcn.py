import pytest
import torch
from torch import nn

import pixelwise
from pixelwise.models.fcn import ATONCE_SCALES, init_from

TINY = dict(num_classes=4, width=0.0625)
RELEASE_OFFSETS = {
    "fcn32s": {"upscore": 19},
    "fcn16s": {"score_pool4": 5, "upscore16": 27},
    "fcn8s": {"score_pool4": 5, "score_pool3": 9, "upscore8": 31},
    "fcn8s_atonce": {"score_pool4": 5, "score_pool3": 9, "upscore8": 31},
}


@pytest.mark.parametrize("name", sorted(RELEASE_OFFSETS))
def test_derived_crop_offsets_equal_the_release(name):
    with torch.device("meta"):
        model = pixelwise.create_model(name)
    assert model.crop_offsets == RELEASE_OFFSETS[name]


@pytest.mark.parametrize("name", ["fcn32s", "fcn16s", "fcn8s"])
@pytest.mark.parametrize("pad100", [True, False])
@pytest.mark.parametrize("size", [(1, 1), (37, 53), (224, 224), (500, 375)])
def test_output_matches_input_size(name, pad100, size):
    model = pixelwise.create_model(name, pad100=pad100, **TINY).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, *size))
    assert out.shape == (1, 4, *size)


def _linearise(model: nn.Module, live_scores: set[str]) -> None:
    """Make the FCN a positive linear filter: average pools, constant positive conv weights,
    no biases; only the named score layers pass signal. Geometry is unchanged."""
    bb = model.backbone
    for stage in range(1, 6):
        setattr(bb, f"pool{stage}", nn.AvgPool2d(2, 2, ceil_mode=True))
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, nn.Conv2d) and not isinstance(m, nn.ConvTranspose2d):
                fan_in = m.weight[0].numel()
                live = not name.startswith("score_") or name in live_scores
                m.weight.fill_(1.0 / fan_in if live else 0.0)
                m.bias.zero_()


def _influence_centroid(model, size, y, x):
    """Centroid of |d out[y, x] / d input|: for a linear, symmetric network it is the point the
    output pixel samples. Bilinear weights reproduce linear functions, so it equals (y, x)
    exactly when every crop is right."""
    img = (torch.rand(1, 3, *size, dtype=torch.float64) + 0.5).requires_grad_(True)
    model(img)[0, 0, y, x].backward()
    g = img.grad[0].abs().sum(0)
    rows = torch.arange(size[0], dtype=torch.float64)
    cols = torch.arange(size[1], dtype=torch.float64)
    return (g.sum(1) @ rows / g.sum()).item(), (g.sum(0) @ cols / g.sum()).item()


@pytest.mark.parametrize(
    "name, live",
    [
        ("fcn32s", {"score_fr"}),
        ("fcn16s", {"score_pool4"}),
        ("fcn8s", {"score_pool3"}),
        ("fcn8s", {"score_fr", "score_pool4", "score_pool3"}),
    ],
)
@pytest.mark.parametrize("pad100", [True, False])
def test_each_path_is_centred_on_its_output_pixel(name, live, pad100):
    """The input pixels that influence output pixel (y, x) are centred on (y, x): every crop and
    upsampling lines up pixel for pixel, for each skip path separately."""
    model = pixelwise.create_model(name, num_classes=1, width=0.03125, pad100=pad100).double().eval()
    _linearise(model, live)
    size = (520, 520) if "score_fr" in live else (200, 203)
    cy, cx = size[0] // 2, size[1] // 2
    for y, x in [(cy, cx), (cy + 1, cx - 3), (cy - 5, cx + 2)]:
        model.zero_grad()
        assert _influence_centroid(model, size, y, x) == pytest.approx((y, x), abs=1e-6)


def test_alignment_test_detects_an_off_by_one_crop():
    model = pixelwise.create_model("fcn8s", num_classes=1, width=0.03125).double().eval()
    _linearise(model, {"score_pool3"})
    model.fuse_steps[1] = type(model.fuse_steps[1])("pool3", 0, model.fuse_steps[1].crop_skip + 1)
    cy, cx = _influence_centroid(model, (200, 203), 100, 101)
    assert abs(cy - 100) > 1 and abs(cx - 101) > 1


@pytest.mark.parametrize("src_name, dst_name", [("fcn32s", "fcn16s"), ("fcn16s", "fcn8s")])
def test_init_from_keeps_the_output(src_name, dst_name):
    """The staged model starts where its source left off: every source tensor that fits is copied,
    the new skip scorer adds exactly zero, and the output equals the source's up to the change of
    bilinear upsampling path (one 32x step vs 2x then 16x, as in the release). Plain width
    multiplier (no floor): the bound on the score difference was set on that network."""
    tiny = dict(TINY, min_channels=1)
    src = pixelwise.create_model(src_name, **tiny).eval()
    with torch.no_grad():  # a trained-looking source: non-zero, smooth-ish scorers
        for n, p in src.named_parameters():
            if n.startswith("score_"):
                p.normal_(std=0.1)
    dst = pixelwise.create_model(dst_name, **tiny).eval()
    copied = init_from(dst, src)
    assert set(copied) == {k for k in src.state_dict() if k in dst.state_dict()}
    assert "score_fr.weight" in copied and "backbone.fc7.weight" in copied
    new_tap = dst.skips[-1]
    assert getattr(dst, f"score_{new_tap}").weight.abs().sum() == 0

    x = torch.randn(1, 3, 45, 61)
    skip_out = {}
    getattr(dst, f"score_{new_tap}").register_forward_hook(lambda m, i, o: skip_out.__setitem__("s", o))
    with torch.no_grad():
        a, b = dst(x), src(x)
    assert skip_out["s"].abs().max() == 0  # the new path contributes exactly nothing
    # the same predictions, and scores equal up to the interpolation path
    assert (a.argmax(1) == b.argmax(1)).float().mean() > 0.95
    assert (a - b).norm() / b.norm() < 0.1


def test_score_layers_start_at_zero_and_upsampling_fixed_by_default():
    model = pixelwise.create_model("fcn8s", **TINY)
    for name in ("score_fr", "score_pool4", "score_pool3"):
        assert getattr(model, name).weight.abs().sum() == 0
    for name in ("upscore2", "upscore_pool4", "upscore8"):
        assert not getattr(model, name).weight.requires_grad


def test_learned_upsampling_learns_the_2x_layers_only():
    model = pixelwise.create_model("fcn8s", upsampling="learned", **TINY)
    assert model.upscore2.weight.requires_grad and model.upscore_pool4.weight.requires_grad
    assert not model.upscore8.weight.requires_grad


def test_atonce_scales_the_skip_features():
    plain = pixelwise.create_model("fcn8s", **TINY).eval()
    atonce = pixelwise.create_model("fcn8s_atonce", **TINY).eval()
    atonce.load_state_dict(plain.state_dict())
    assert atonce.skip_scales == ATONCE_SCALES
    seen = {}
    atonce.score_pool4.register_forward_hook(lambda m, i, o: seen.__setitem__("p4", i[0]))
    plain.score_pool4.register_forward_hook(lambda m, i, o: seen.__setitem__("ref", i[0]))
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        atonce(x), plain(x)
    torch.testing.assert_close(seen["p4"], seen["ref"] * 0.01)


def test_pad_free_and_pad100_agree_in_shape_and_are_finite():
    model = pixelwise.create_model("fcn8s", pad100=False, **TINY).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 3, 70, 33))
    assert out.shape == (2, 4, 70, 33) and torch.isfinite(out).all()
