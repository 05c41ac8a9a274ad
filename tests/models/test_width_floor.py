"""The width floor and the small variants' sizes: no layer squeezed below what the task needs,
width 1.0 untouched."""

import pytest
import torch
from torch import nn

import pixelwise
from pixelwise.errors import PixelwiseError
from pixelwise.models.vgg import MIN_CHANNELS, scaled


def test_scaled_keeps_the_floor_but_never_exceeds_the_paper():
    assert MIN_CHANNELS == 16
    assert scaled(64, 0.125, 16) == 16 and scaled(512, 0.125, 16) == 64 and scaled(4096, 0.125, 16) == 512
    assert scaled(8, 0.125, 16) == 8  # a layer the paper makes narrower than the floor keeps its count
    assert scaled(64, 0.125) == 8  # floor 1: the plain multiplier


def _conv_widths(model: nn.Module) -> dict[str, int]:
    return {n: m.out_channels for n, m in model.named_modules()
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and not n.endswith(("score", "score_fr"))
            and "score" not in n}


@pytest.mark.parametrize("name", ["fcn8s", "deconvnet"])
def test_no_hidden_layer_below_the_floor(name):
    model = pixelwise.create_model(name, num_classes=5, width=0.125)
    widths = _conv_widths(model)
    assert min(widths.values()) == 16, widths
    plain = _conv_widths(pixelwise.create_model(name, num_classes=5, width=0.125, min_channels=1))
    assert min(plain.values()) == 8
    if name == "deconvnet":  # the stages unpooling ties to pool1/pool2
        assert widths["deconv1_2"] == widths["deconv2_2"] == 16


@pytest.mark.parametrize("name", ["fcn8s", "deconvnet"])
def test_width_one_is_paper_exact(name):
    with torch.device("meta"):
        a = pixelwise.create_model(name)
        b = pixelwise.create_model(name, min_channels=1)
    assert [p.shape for p in a.parameters()] == [p.shape for p in b.parameters()]


def test_deconvnet_proposal_side_sets_fc6():
    model = pixelwise.create_model("deconvnet", num_classes=3, width=0.0625, input_size=96).eval()
    assert model.backbone.fc6.kernel_size == (3, 3) and model.deconv_fc6.kernel_size == (3, 3)
    assert model.valid_size(50, 130) == (96, 160)
    with torch.no_grad():
        assert model(torch.randn(1, 3, 96, 128)).shape == (1, 3, 96, 128)
        assert model.forward_any_size(torch.randn(1, 3, 40, 70)).shape == (1, 3, 40, 70)
    with pytest.raises(PixelwiseError, match="multiples of 32 and >= 96"):
        model(torch.randn(1, 3, 64, 96))
    with pytest.raises(PixelwiseError, match="input_size must be a multiple of 32"):
        pixelwise.create_model("deconvnet", input_size=100)
    with pytest.raises(PixelwiseError, match="odd fc6_kernel"):
        pixelwise.create_model("fcn8s", fc6_kernel=2, pad100=False)


def test_deep_supervision_scores_every_stage():
    model = pixelwise.create_model("deconvnet", num_classes=3, width=0.0625, input_size=96, deep_supervision=True)
    assert model.aux_layers == ["deconv_fc6", "deconv5_3", "deconv4_3", "deconv3_3", "deconv2_2"]
    logits, aux = model.forward_aux(torch.randn(2, 3, 96, 96))
    assert logits.shape == (2, 3, 96, 96)
    assert [a.shape[-1] for a in aux] == [3, 6, 12, 24, 48] and all(a.shape[:2] == (2, 3) for a in aux)
    model.eval()
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.forward_aux(x)[0])
    plain = pixelwise.create_model("deconvnet", num_classes=3, width=0.0625, input_size=96)
    with pytest.raises(PixelwiseError, match="deep_supervision=True"):
        plain.forward_aux(x)
