"""Caffe release weights -> pixelwise models, checked against reference forward passes computed
directly from the blobs with torch.nn.functional (tests/weights/weights_fixtures.py)."""

import numpy as np
import pytest
import torch

import caffe_wire as cw
import weights_fixtures as wf
from pixelwise.convention import CAFFE_BGR
from pixelwise.errors import CheckpointError, PixelwiseError
from pixelwise.weights import load_backbone_weights
from pixelwise.weights.convert import convert_weights

WIDTH = 1 / 32
CLASSES = 5


def _fcn_file(tmp_path, arch, *, v1, rng, name="fcn.caffemodel"):
    blobs = wf.fcn_blobs(arch, WIDTH, CLASSES, rng)
    layers = [(n, wf.caffe_type(n, blobs), blobs[n]) for n in wf.fcn_layer_order(blobs)]
    path = tmp_path / name
    path.write_bytes(cw.net(layers, v1=v1))
    return path, blobs


def _is_bn(name):
    return name.startswith(("bn", "debn")) or name.endswith("-bn")


def _deconvnet_file(tmp_path, blobs, *, style, name="deconvnet.caffemodel", rng=None, skip=()):
    """style "fork": V1 layers with the fork's BN (bn_mode INFERENCE), as the release;
    "bvlc": new layers with BatchNorm + Scale pairs."""
    layers = []
    for n in wf.deconvnet_layer_order(blobs):
        if n in skip:
            continue
        if not _is_bn(n):
            layers.append((n, wf.caffe_type(n, blobs), blobs[n]))
        elif style == "fork":
            layers.append((n, "BN", blobs[n], {"bn_mode": 1}))
        else:
            bn, scale = wf.bvlc_bn_from_fork(*blobs[n], rng, eps=1e-3)
            layers += [(n, "BatchNorm", bn, {"bn_eps": 1e-3}), (f"{n}_scale", "Scale", scale, {"scale_bias": True})]
    path = tmp_path / name
    path.write_bytes(cw.net(layers, v1=style == "fork"))
    return path


@pytest.mark.parametrize(
    "arch, v1", [("fcn32s", True), ("fcn16s", False), ("fcn8s", True), ("fcn8s", False)],
    ids=["fcn32s-V1-layers", "fcn16s-new-layer", "fcn8s-V1-layers", "fcn8s-new-layer"],
)
def test_fcn_reproduces_reference(tmp_path, arch, v1):
    path, blobs = _fcn_file(tmp_path, arch, v1=v1, rng=np.random.default_rng(3))
    model, report = convert_weights(path)
    assert (report.arch, report.num_classes, report.width) == (arch, CLASSES, WIDTH)
    assert model.input_convention == CAFFE_BGR and report.input_convention == CAFFE_BGR
    assert not model.training
    x = wf.caffe_input(1, 37, 45, seed=1)
    with torch.no_grad():
        out = model(x)
    ref = wf.ref_fcn(arch, blobs, x)
    assert out.shape == ref.shape == (1, CLASSES, 37, 45)
    assert ref.abs().max() > 1  # the comparison is not between zeros
    assert wf.rel_err(out, ref) < 1e-5
    assert {r.source for r in report.rows} == set(blobs)


def test_fcn8s_atonce_scale_layers(tmp_path):
    rng = np.random.default_rng(4)
    path, blobs = _fcn_file(tmp_path, "fcn8s_atonce", v1=False, rng=rng)
    model, report = convert_weights(path)
    assert report.arch == "fcn8s_atonce"
    x = wf.caffe_input(1, 33, 41)
    ref = wf.ref_fcn("fcn8s_atonce", blobs, x)
    with torch.no_grad():
        assert wf.rel_err(model(x), ref) < 1e-5
    # the same file as a plain FCN-8s: the fixed skip scales move into score_pool4/3's weights
    plain, report = convert_weights(path, arch="fcn8s")
    assert any("moved into weights" in r.note for r in report.rows)
    assert any("look like fcn8s_atonce" in w for w in report.warnings)
    with torch.no_grad():
        assert wf.rel_err(plain(x), ref) < 1e-5


def test_upsampling_weights_keep_caffe_layout(tmp_path):
    # Caffe's Deconvolution blob is (C_in, C_out, k, k), the layout of torch's ConvTranspose2d:
    # copied as is, no transposition or flip
    path, blobs = _fcn_file(tmp_path, "fcn8s", v1=True, rng=np.random.default_rng(5))
    model, _ = convert_weights(path)
    np.testing.assert_array_equal(model.upscore8.weight.detach().numpy(), blobs["upscore8"][0])
    np.testing.assert_array_equal(model.upscore2.weight.detach().numpy(), blobs["upscore2"][0])


@pytest.mark.parametrize("style", ["fork", "bvlc"])
def test_deconvnet_reproduces_reference(tmp_path, style):
    rng = np.random.default_rng(6)
    blobs = wf.deconvnet_blobs(WIDTH, CLASSES, rng)
    path = _deconvnet_file(tmp_path, blobs, style=style, rng=rng)
    model, report = convert_weights(path)
    assert (report.arch, report.num_classes, report.width) == ("deconvnet", CLASSES, WIDTH)
    assert report.matched == 59 and not report.kept and not report.unused and not report.warnings
    assert model.proposal_pad == "black"  # released weights: proposals padded as the release padded them
    x = wf.caffe_input(1, 224, 224, seed=2)
    with torch.no_grad():
        out = model(x)
    ref = wf.ref_deconvnet(blobs, x)
    assert ref.abs().max() > 1 and ref.std() > 0.1
    assert wf.rel_err(out, ref) < 1e-5


def test_deconvnet_learn_mode_warns_about_statistics(tmp_path):
    rng = np.random.default_rng(7)
    blobs = wf.deconvnet_blobs(WIDTH, CLASSES, rng)
    layers = [(n, "BN" if _is_bn(n) else wf.caffe_type(n, blobs), blobs[n]) for n in wf.deconvnet_layer_order(blobs)]
    path = tmp_path / "stage_2_snapshot.caffemodel"
    path.write_bytes(cw.net(layers, v1=True))  # no bn_mode stored: the proto default, LEARN
    model, report = convert_weights(path)
    assert any("recompute" in w for w in report.warnings)
    np.testing.assert_allclose(model.backbone.conv1_1_bn.weight.detach().numpy(), blobs["bn1_1"][0].reshape(-1))
    # --bn-mode folded overrides: the file then reproduces the INFERENCE reference
    model, report = convert_weights(path, bn_mode="folded")
    assert not report.warnings
    x = wf.caffe_input(1, 224, 224, seed=3)
    with torch.no_grad():
        assert wf.rel_err(model(x), wf.ref_deconvnet(blobs, x)) < 1e-5


def test_missing_layer_is_named(tmp_path):
    rng = np.random.default_rng(8)
    blobs = wf.deconvnet_blobs(WIDTH, CLASSES, rng)
    path = _deconvnet_file(tmp_path, blobs, style="fork", skip=("debn3_2",))
    with pytest.raises(CheckpointError, match=r"no layer 'debn3_2'.*deconv3_2_bn.*--map"):
        convert_weights(path)


def test_override_maps_renamed_layer(tmp_path):
    rng = np.random.default_rng(9)
    blobs = wf.deconvnet_blobs(WIDTH, CLASSES, rng)
    blobs["my_score"] = blobs.pop("seg-score-voc")
    order = [n if n != "seg-score-voc" else "my_score" for n in wf.deconvnet_layer_order(blobs | {"seg-score-voc": 0})]
    layers = [(n, "BN" if _is_bn(n) else wf.caffe_type(n, blobs), blobs[n], {"bn_mode": 1} if _is_bn(n) else {})
              for n in order]
    path = tmp_path / "renamed.caffemodel"
    path.write_bytes(cw.net(layers, v1=True))
    with pytest.raises(CheckpointError, match="seg_score"):
        convert_weights(path, num_classes=CLASSES)
    model, report = convert_weights(path, num_classes=CLASSES, overrides={"seg_score": "my_score"})
    np.testing.assert_array_equal(model.seg_score.bias.detach().numpy(), blobs["my_score"][1])
    with pytest.raises(PixelwiseError, match="not a module"):
        convert_weights(path, num_classes=CLASSES, overrides={"segscore": "my_score"})


def test_misshaped_blob_names_layer_and_shapes(tmp_path):
    rng = np.random.default_rng(10)
    blobs = wf.fcn_blobs("fcn16s", WIDTH, CLASSES, rng)
    blobs["conv3_2"][0] = blobs["conv3_2"][0][:, :, :2, :]  # a 3x2 kernel
    layers = [(n, wf.caffe_type(n, blobs), blobs[n]) for n in wf.fcn_layer_order(blobs)]
    path = tmp_path / "bad.caffemodel"
    path.write_bytes(cw.net(layers, v1=False))
    with pytest.raises(CheckpointError, match=r"layer 'conv3_2' blob 0 has shape \(8, 8, 2, 3\), but backbone.conv3_2 needs \(8, 8, 3, 3\)"):
        convert_weights(path)


def test_explicit_width_mismatch_is_clear(tmp_path):
    path, _ = _fcn_file(tmp_path, "fcn32s", v1=True, rng=np.random.default_rng(11))
    with pytest.raises(CheckpointError, match=r"conv1_1.*shape.*needs.*--width"):
        convert_weights(path, width=0.0625)


def test_caffe_vgg16_initialises_backbone(tmp_path):
    # the ImageNet VGG16: fc6/fc7 are InnerProduct (4096 x 25088), fc8 the 1000 classes
    rng = np.random.default_rng(12)
    blobs = wf.vgg_blobs(WIDTH, rng, fc_as_ip=True)
    fc = wf.ch(4096, WIDTH)
    blobs["fc8"] = [rng.standard_normal((10, fc)).astype(np.float32), np.zeros(10, np.float32)]
    order = wf.conv_names() + ["fc6", "fc7", "fc8"]
    path = tmp_path / "VGG_ILSVRC_16_layers.caffemodel"
    path.write_bytes(cw.net([(n, "InnerProduct" if n.startswith("fc") else "Convolution", blobs[n]) for n in order], v1=True))
    with pytest.raises(PixelwiseError, match="--arch"):
        convert_weights(path)
    model, report = convert_weights(path, arch="fcn8s", num_classes=3)
    assert report.unused == ["fc8"] and report.matched == 15
    assert report.input_convention == CAFFE_BGR
    assert "fully connected" in next(r.note for r in report.rows if r.target == "backbone.fc6")
    np.testing.assert_array_equal(model.backbone.fc6.weight.detach().reshape(fc, -1).numpy(), blobs["fc6"][0])
    # heads untouched: score layers still zero, so the untrained model predicts nothing yet
    assert float(model.score_fr.weight.detach().abs().sum()) == 0
    # and the same file through load_backbone_weights, into DeconvNet (BN left at init, reported)
    deconv = __import__("pixelwise").create_model("deconvnet", num_classes=3, width=WIDTH, min_channels=1)
    report = load_backbone_weights(deconv, path)
    assert "backbone.conv1_1_bn" in report.kept and deconv.input_convention == CAFFE_BGR
    np.testing.assert_array_equal(deconv.backbone.conv5_3.bias.detach().numpy(), blobs["conv5_3"][1])


def test_edeconvnet_is_refused_with_advice(tmp_path):
    path, _ = _fcn_file(tmp_path, "fcn8s", v1=True, rng=np.random.default_rng(13))
    with pytest.raises(PixelwiseError, match="pixelwise ensemble"):
        convert_weights(path, arch="edeconvnet")
