"""Every registered model keeps the common model interface (pixelwise.models.base), and a model
prepared for inference answers the same questions the same way."""

import dataclasses

import pytest
import torch
from torch import nn

import pixelwise
from pixelwise.convention import CAFFE_BGR
from pixelwise.errors import PixelwiseError
from pixelwise.models.base import FAMILIES, ModelCard, SegmentationModel, pad_to_multiple
from pixelwise.models.registry import get_entry
from pixelwise.models.vgg import VGG16
from pixelwise.optimize import PreparedModel, prepare_for_inference

CLASSES = 3
# small settings: 1/32 width, DeconvNet proposals of 64 pixels (fc6 2x2)
SMALL = {"fcn": {}, "deconvnet": {"input_size": 64}, "ensemble": {"input_size": 64}}
SIZES = [(1, 1), (37, 53), (64, 64), (65, 96), (100, 230)]
ODD = (37, 53)


def small(name: str) -> nn.Module:
    torch.manual_seed(0)
    kwargs = SMALL[get_entry(name).family]
    return pixelwise.create_model(name, num_classes=CLASSES, width=1 / 32, **kwargs).eval()


def images(h: int, w: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(1, 3, h, w, generator=torch.Generator().manual_seed(seed)) * 60


@pytest.fixture(scope="module", params=pixelwise.list_models())
def model(request):
    return small(request.param)


def test_pad_to_multiple_is_the_deconvnet_rule():
    assert [pad_to_multiple(s, 32, 224) for s in (1, 224, 225, 256, 500)] == [224, 224, 256, 256, 512]
    assert [pad_to_multiple(s, 1) for s in (1, 37)] == [1, 37]


def test_family_matches_the_registry(model):
    assert isinstance(model, SegmentationModel)
    assert model.family in FAMILIES and model.family == get_entry(model.pixelwise_spec["name"]).family


def test_valid_size_is_the_smallest_valid_size_holding_the_input(model):
    for h, w in SIZES:
        vh, vw = model.valid_size(h, w)
        assert vh >= h and vw >= w and model.is_valid_size(vh, vw)
        assert model.valid_size(vh, vw) == (vh, vw)
        assert not any(model.is_valid_size(s, vw) for s in range(h, vh))  # nothing smaller fits
        assert not any(model.is_valid_size(vh, s) for s in range(w, vw))
        if model.is_valid_size(h, w):
            model.check_input_size(h, w)
        else:
            with pytest.raises(PixelwiseError, match="forward_any_size"):
                model.check_input_size(h, w)


def test_forward_any_size_keeps_the_input_size(model):
    x = images(*ODD)
    with torch.no_grad():
        out = model.forward_any_size(x)
        assert out.shape == (1, CLASSES, *ODD) and torch.isfinite(out).all()
        valid = images(*model.valid_size(*ODD), seed=2)  # at a valid size it is just forward
        assert torch.equal(model.forward_any_size(valid), model(valid))


def test_declared_layer_names_are_real_modules(model):
    pairs = model.conv_bn_pairs()
    for conv, bn in pairs:
        conv_m, bn_m = model.get_submodule(conv), model.get_submodule(bn)
        assert isinstance(conv_m, (nn.Conv2d, nn.ConvTranspose2d)) and isinstance(bn_m, nn.BatchNorm2d)
        assert bn_m.num_features == conv_m.out_channels
    # every batch norm is declared (so folding leaves none behind)
    assert sorted(bn for _, bn in pairs) == sorted(n for n, m in model.named_modules() if isinstance(m, nn.BatchNorm2d))
    assert model.fc_layers and all(
        type(model.get_submodule(n)) in (nn.Conv2d, nn.ConvTranspose2d) for n in model.fc_layers
    )
    for name in model.score_layers:
        layer = model.get_submodule(name)
        assert isinstance(layer, nn.Conv2d) and layer.out_channels == CLASSES and layer.kernel_size == (1, 1)
    assert isinstance(model.dynamic_trace, bool)


def test_backbone_prefix_names_the_vgg16(model):
    if model.family == "ensemble":
        assert model.backbone_prefix is None
        members = [model.fcn, model.deconvnet]
    else:
        members = [model]
    for m in members:
        backbone = m.get_submodule(m.backbone_prefix)
        assert isinstance(backbone, VGG16)
        assert any(k.startswith(f"{m.backbone_prefix}.") for k in m.state_dict())


def test_card_fields(model):
    card = model.card
    assert isinstance(card, ModelCard) and card.spec is model.pixelwise_spec
    assert model.input_convention == CAFFE_BGR and model.class_names is None
    with pytest.raises(dataclasses.FrozenInstanceError):
        card.class_names = ["x"]
    model.class_names = ["a", "b", "c"]
    try:
        assert model.card.class_names == ["a", "b", "c"] and model.card.spec == card.spec
    finally:
        model.class_names = None


@pytest.mark.parametrize("engine", ["plain", "eager"])
def test_prepared_model_answers_the_same(model, engine):
    fast = prepare_for_inference(model, engine=engine)
    assert isinstance(fast, PreparedModel)
    assert fast.family == model.family and fast.num_classes == model.num_classes
    assert fast.card == model.card and fast.pixelwise_spec == model.pixelwise_spec
    assert fast.input_convention == model.input_convention and fast.class_names == model.class_names
    assert fast.size_rule == model.size_rule
    for h, w in SIZES:
        assert fast.valid_size(h, w) == model.valid_size(h, w)
        assert fast.is_valid_size(h, w) == model.is_valid_size(h, w)
    x = images(*ODD)
    with torch.no_grad():
        ref = model.forward_any_size(x)
    out = fast.forward_any_size(x)
    assert out.shape == ref.shape and float((out - ref).abs().max()) <= 1e-5 * float(ref.abs().max())
    if model.family == "ensemble":
        assert isinstance(fast.fcn, PreparedModel) and isinstance(fast.deconvnet, PreparedModel)
        assert fast.mode == model.mode and len(fast.member_logits(x)) == 2
    else:
        with pytest.raises(AttributeError):
            fast.fcn  # noqa: B018 - only an ensemble has members
