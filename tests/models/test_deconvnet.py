import pytest
import torch
import torch.nn.functional as F

import pixelwise
from pixelwise.errors import PixelwiseError
from pixelwise.models.deconvnet import DECODER_STAGES


def test_unpooling_puts_every_value_back_at_its_switch():
    model = pixelwise.create_model("deconvnet", num_classes=3, width=0.0625)
    pool = model.backbone.pool1
    x = torch.randn(2, 4, 10, 14)
    pooled, idx = pool(x)
    restored = F.max_unpool2d(pooled, idx, 2, 2, output_size=x.shape[-2:])
    flat_x, flat_r = x.flatten(2), restored.flatten(2)
    # every pooled value sits exactly at its switch and equals the input there
    torch.testing.assert_close(flat_r.gather(2, idx.flatten(2)), pooled.flatten(2))
    torch.testing.assert_close(flat_x.gather(2, idx.flatten(2)), pooled.flatten(2))
    # everything else is zero
    assert (restored != 0).sum() == pooled.numel()


def test_decoder_layer_table():
    model = pixelwise.create_model("deconvnet")
    widths = [(n, getattr(model, n).out_channels) for names in model.deconv_names for n in names]
    assert widths == [
        ("deconv5_1", 512), ("deconv5_2", 512), ("deconv5_3", 512),
        ("deconv4_1", 512), ("deconv4_2", 512), ("deconv4_3", 256),
        ("deconv3_1", 256), ("deconv3_2", 256), ("deconv3_3", 128),
        ("deconv2_1", 128), ("deconv2_2", 64),
        ("deconv1_1", 64), ("deconv1_2", 64),
    ]
    assert model.deconv_fc6.kernel_size == (7, 7) and model.backbone.fc6.padding == (0, 0)
    assert len(DECODER_STAGES) == 5
    names = {n for n, _ in model.named_parameters()}
    for expected in ("backbone.conv1_1_bn.weight", "backbone.fc6_bn.weight", "deconv_fc6_bn.weight",
                     "deconv1_2_bn.weight", "seg_score.weight"):
        assert expected in names


@pytest.mark.parametrize("size", [(224, 224), (256, 288)])
def test_valid_sizes(size):
    model = pixelwise.create_model("deconvnet", num_classes=3, width=0.0625).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, *size)).shape == (1, 3, *size)


def test_invalid_size_is_a_clear_error_and_any_size_pads():
    model = pixelwise.create_model("deconvnet", num_classes=3, width=0.0625).eval()
    with pytest.raises(PixelwiseError, match="multiples of 32"):
        model(torch.randn(1, 3, 100, 100))
    with torch.no_grad():
        assert model.forward_any_size(torch.randn(1, 3, 100, 230)).shape == (1, 3, 100, 230)


def test_caffe_bn_and_proposal_pad_are_part_of_the_model():
    import pixelwise
    from pixelwise.errors import PixelwiseError

    model = pixelwise.create_model("deconvnet", num_classes=3, width=0.03125, caffe_bn=True, proposal_pad="black")
    bns = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert bns and all(m.eps == 1e-9 for m in bns)  # the authors' Caffe BN layer
    assert all(torch.all(m.bias == 0.001) and torch.all(m.weight == 1) for m in bns)
    assert model.proposal_pad == "black"
    assert model.pixelwise_spec["caffe_bn"] is True and model.pixelwise_spec["proposal_pad"] == "black"
    plain = pixelwise.create_model("deconvnet", num_classes=3, width=0.03125)
    assert all(m.eps == 1e-5 for m in plain.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert plain.proposal_pad == "mean"
    with pytest.raises(PixelwiseError, match="proposal_pad"):
        pixelwise.create_model("deconvnet", num_classes=3, width=0.03125, proposal_pad="grey")
