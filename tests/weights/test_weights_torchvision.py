"""torchvision VGG16 / VGG16-BN state dicts -> pixelwise backbones ("net surgery")."""

import pytest
import torch
import torch.nn.functional as F

import pixelwise
import weights_fixtures as wf
from weights_fixtures import tv_state
from pixelwise.checkpoint import load_model, make_checkpoint, save_checkpoint
from pixelwise.convention import TORCHVISION_RGB
from pixelwise.errors import CheckpointError
from pixelwise.weights import load_backbone_weights
from pixelwise.weights.torchvision_vgg import backbone_mapping, source_layers, torchvision_feature_layout
from pixelwise.weights.transplant import apply_mapping

PLAIN_CONV_INDICES = [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]  # torchvision vgg16.features
BN_CONV_INDICES = [0, 3, 7, 10, 14, 17, 20, 24, 27, 30, 34, 37, 40]  # torchvision vgg16_bn.features


def test_feature_indices_match_torchvision():
    plain = torchvision_feature_layout(False)
    assert [int(p.split(".")[1]) for p, _ in plain] == PLAIN_CONV_INDICES
    assert [m for _, m in plain][:3] == ["conv1_1", "conv1_2", "conv2_1"]
    bn = torchvision_feature_layout(True)
    convs = [(int(p.split(".")[1]), m) for p, m in bn if not m.endswith("_bn")]
    bns = [(int(p.split(".")[1]), m) for p, m in bn if m.endswith("_bn")]
    assert [i for i, _ in convs] == BN_CONV_INDICES
    assert [i for i, _ in bns] == [i + 1 for i in BN_CONV_INDICES]
    assert [m for _, m in bns][-1] == "conv5_3_bn"


@pytest.mark.parametrize("bn, arch", [(False, "fcn32s"), (True, "deconvnet")])
def test_full_width_layout_fits_paper_models(bn, arch):
    # full-width VGG16 (138M parameters) checked on the meta device: shapes only, no memory
    state = tv_state(1.0, bn, device="meta")
    assert tuple(state["classifier.0.weight"].shape) == (4096, 25088)
    with torch.device("meta"):
        model = pixelwise.create_model(arch)
    sources = source_layers(state, "vgg16.pth")
    mapping = backbone_mapping("backbone", target_bn=model.backbone.batch_norm, source_bn=bn)
    rows, kept, used = apply_mapping(model, sources, mapping, origin="vgg16.pth")
    assert len(rows) == 15 + (13 if bn else 0)
    assert next(r for r in rows if r.target == "backbone.fc6").shape == (4096, 512, 7, 7)
    assert "classifier.6" not in used  # fc8 (1000 ImageNet classes) is dropped


def test_fc6_linear_equals_7x7_conv(tmp_path):
    state = tv_state(0.125, bn=False)
    path = tmp_path / "vgg16.pth"
    torch.save(state, path)
    model = pixelwise.create_model("fcn32s", width=0.125, min_channels=1)
    report = load_backbone_weights(model, path)
    assert report.input_convention == TORCHVISION_RGB == model.input_convention
    assert report.unused == ["classifier.6"]
    pool5 = torch.randn(2, wf.ch(512, 0.125), 7, 7)
    linear = F.linear(pool5.flatten(1), state["classifier.0.weight"], state["classifier.0.bias"])
    with torch.no_grad():
        conv = model.backbone.fc6(pool5)
    assert conv.shape == (2, wf.ch(4096, 0.125), 1, 1)
    torch.testing.assert_close(conv.flatten(1), linear, rtol=1e-5, atol=1e-5)
    fc7_in = torch.randn(1, wf.ch(4096, 0.125), 1, 1)
    torch.testing.assert_close(
        model.backbone.fc7(fc7_in).flatten(1).detach(),
        F.linear(fc7_in.flatten(1), state["classifier.3.weight"], state["classifier.3.bias"]),
        rtol=1e-5, atol=1e-5,
    )
    torch.testing.assert_close(model.backbone.conv4_2.weight.detach(), state["features.19.weight"])


def _tv_features(state, x, bn):
    """torchvision's VGG16(-BN) ``features`` (pool5), written with F from the state dict."""
    stage_ends = {f"conv{s}_{reps}" for s, (_, reps) in enumerate(wf.STAGES, 1)}
    h = x
    for prefix, module in torchvision_feature_layout(bn):
        if module.endswith("_bn"):
            h = F.batch_norm(h, state[f"{prefix}.running_mean"], state[f"{prefix}.running_var"],
                             state[f"{prefix}.weight"], state[f"{prefix}.bias"], eps=1e-5)
        else:
            h = F.conv2d(h, state[f"{prefix}.weight"], state[f"{prefix}.bias"], padding=1)
        if module.endswith("_bn") or not bn:  # the unit is complete: ReLU, and a pool at stage end
            h = F.relu(h)
            if module.removesuffix("_bn") in stage_ends:
                h = F.max_pool2d(h, 2, 2)
    return h


def test_vgg16_bn_into_both_models(tmp_path):
    width = 0.125
    state = tv_state(width, bn=True, seed=1)
    path = tmp_path / "vgg16_bn.pth"
    torch.save(state, path)
    x = torch.randn(1, 3, 224, 224)
    ref = _tv_features(state, x, bn=True)
    # DeconvNet's BN backbone takes the statistics as they are
    deconv = pixelwise.create_model("deconvnet", width=width, min_channels=1).eval()
    report = load_backbone_weights(deconv, path)
    assert report.kept == ["backbone.fc6_bn", "backbone.fc7_bn"]
    torch.testing.assert_close(deconv.backbone.conv2_1_bn.running_var, state["features.8.running_var"])
    with torch.no_grad():
        torch.testing.assert_close(deconv.backbone(x)["pool5"], ref, rtol=1e-4, atol=1e-4)
    # FCN has no BN: the statistics are folded into its convolutions, same function
    fcn = pixelwise.create_model("fcn32s", width=width, pad100=False, min_channels=1).eval()
    report = load_backbone_weights(fcn, path)
    assert all("folded" in r.note for r in report.rows if r.target.startswith("backbone.conv"))
    with torch.no_grad():
        torch.testing.assert_close(fcn.backbone(x)["pool5"], ref, rtol=1e-4, atol=1e-4)


def test_width_mismatch_is_clear(tmp_path):
    path = tmp_path / "vgg16.pth"
    torch.save(tv_state(0.125, bn=False), path)
    model = pixelwise.create_model("fcn8s", width=0.25, min_channels=1)
    before = model.backbone.conv1_1.weight.detach().clone()
    with pytest.raises(CheckpointError, match=r"width 0.125 \(conv1_1 has 8 filters\).*width 0.25.*width=0.125"):
        load_backbone_weights(model, path)
    assert torch.equal(model.backbone.conv1_1.weight, before)  # nothing written


def test_not_vgg16_files(tmp_path):
    bad = tmp_path / "resnet.pth"
    torch.save({"conv1.weight": torch.zeros(1)}, bad)
    with pytest.raises(CheckpointError, match="not a torchvision VGG16"):
        load_backbone_weights(pixelwise.create_model("fcn32s", width=0.125, min_channels=1), bad)
    vgg11 = tv_state(0.125, bn=False)
    del vgg11["features.28.weight"]
    torch.save(vgg11, bad)
    with pytest.raises(CheckpointError, match="features.28.weight is missing"):
        load_backbone_weights(pixelwise.create_model("fcn32s", width=0.125, min_channels=1), bad)


def test_convention_travels_with_checkpoint(tmp_path):
    path = tmp_path / "vgg16.pth"
    torch.save(tv_state(0.125, bn=False), path)
    model = pixelwise.create_model("fcn16s", num_classes=4, width=0.125, min_channels=1)
    load_backbone_weights(model, path)
    ckpt = tmp_path / "init.pt"
    save_checkpoint(ckpt, make_checkpoint(model))
    loaded = load_model(ckpt)
    assert loaded.input_convention == TORCHVISION_RGB
    torch.testing.assert_close(loaded.backbone.conv3_3.weight, model.backbone.conv3_3.weight)
