"""The CVPR-era Model Zoo ``fcn-8s-pascal``: the FCN-8s the DeconvNet release ensembles with.

The test caffemodel follows ``model/FCN/fcn-8s-pascal-deploy.prototxt`` of the DeconvNet release:
V1 ``layers`` (with the parameter-free ReLU, Pooling, Dropout, Crop and Eltwise layers, and the
bottoms/tops of the prototxt), hyphenated head names, a learned ``score2`` Deconvolution WITH a
bias, ``score4`` and ``upsample`` without one. The release runs it on a 500x500 input: the
mean-subtracted image at the top left, zeros elsewhere (``preprocess_image.m``), scores cropped
back to the image (``cache_FCN8s_results.m``). The reference forward below is written from the
blobs with ``torch.nn.functional``; its crop offsets (5, 9, 31) are what the prototxt's ``Crop``
layers derive from the layer geometry.
"""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import caffe_wire as cw
import weights_fixtures as wf
import pixelwise
from pixelwise.cli import main
from pixelwise.convention import CAFFE_BGR
from pixelwise.errors import CheckpointError, PixelwiseError
from pixelwise.weights.convert import convert_weights

WIDTH = 1 / 32
CLASSES = 5
RELEASE_SIDE = 500
CROPS = {"score-pool4": 5, "score-pool3": 9, "upsample": 31}
# V1LayerParameter.LayerType of the parameter-free layers (the weighted ones are in caffe_wire)
V1_EXTRA = {"ReLU": 18, "Pooling": 17, "Dropout": 6, "Eltwise": 25, "Crop": 40}
# pixelwise module -> fcn-8s-pascal layer
HEADS = {"score_fr": "score-fr", "score_pool4": "score-pool4", "score_pool3": "score-pool3",
         "upscore2": "score2", "upscore_pool4": "score4", "upscore8": "upsample"}


def pascal_blobs(rng) -> dict[str, list[np.ndarray]]:
    """Random weights for every weighted layer of fcn-8s-pascal (random, non-bilinear kernels)."""
    blobs = wf.vgg_blobs(WIDTH, rng)
    c, fc = CLASSES, wf.ch(4096, WIDTH)
    p4, p3 = wf.ch(512, WIDTH), wf.ch(256, WIDTH)

    def rand(*shape, scale=1.0):
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    blobs["score-fr"] = [rand(c, fc, 1, 1, scale=(2 / fc) ** 0.5), rand(c)]
    blobs["score2"] = [rand(c, c, 4, 4, scale=0.3), rand(c)]  # bias_term default: true
    blobs["score-pool4"] = [rand(c, p4, 1, 1, scale=(2 / p4) ** 0.5), rand(c)]
    blobs["score4"] = [rand(c, c, 4, 4, scale=0.3)]  # bias_term: false
    blobs["score-pool3"] = [rand(c, p3, 1, 1, scale=(2 / p3) ** 0.5), rand(c)]
    blobs["upsample"] = [rand(c, c, 16, 16, scale=0.1)]  # bias_term: false, blobs_lr: 0
    return blobs


def pascal_layers() -> list[tuple[str, str, list[str], list[str]]]:
    """(name, type, bottoms, tops) of fcn-8s-pascal-deploy.prototxt, in file order."""
    layers, bottom = [], "data"
    for s, (_, reps) in enumerate(wf.STAGES, 1):
        for j in range(1, reps + 1):
            name = f"conv{s}_{j}"
            layers += [(name, "Convolution", [bottom], [name]), (f"relu{s}_{j}", "ReLU", [name], [name])]
            bottom = name
        layers.append((f"pool{s}", "Pooling", [bottom], [f"pool{s}"]))
        bottom = f"pool{s}"
    for fc, n in (("fc6", 6), ("fc7", 7)):
        layers += [(fc, "Convolution", [bottom], [fc]), (f"relu{n}", "ReLU", [fc], [fc]),
                   (f"drop{n}", "Dropout", [fc], [fc])]
        bottom = fc
    layers += [
        ("score-fr", "Convolution", ["fc7"], ["score"]),
        ("score2", "Deconvolution", ["score"], ["score2"]),
        ("score-pool4", "Convolution", ["pool4"], ["score-pool4"]),
        ("crop", "Crop", ["score-pool4", "score2"], ["score-pool4c"]),
        ("fuse", "Eltwise", ["score2", "score-pool4c"], ["score-fused"]),
        ("score4", "Deconvolution", ["score-fused"], ["score4"]),
        ("score-pool3", "Convolution", ["pool3"], ["score-pool3"]),
        ("crop", "Crop", ["score-pool3", "score4"], ["score-pool3c"]),
        ("fuse", "Eltwise", ["score4", "score-pool3c"], ["score-final"]),
        ("upsample", "Deconvolution", ["score-final"], ["bigscore"]),
        ("crop", "Crop", ["bigscore", "data"], ["upscore"]),
    ]
    return layers


def v1_layer(name: str, type_: str, bottoms: list[str], tops: list[str], blobs: list[np.ndarray]) -> bytes:
    """A V1LayerParameter: bottom 2, top 3, name 4, type 5 (enum), blobs 6 (legacy 4-D shapes)."""
    out = b"".join(cw.f_string(2, b) for b in bottoms) + b"".join(cw.f_string(3, t) for t in tops)
    out += cw.f_string(4, name) + cw.f_varint(5, cw.V1_TYPES.get(type_) or V1_EXTRA[type_])
    return out + b"".join(cw.f_bytes(6, cw.blob(b, legacy=True)) for b in blobs)


def write_pascal(path, blobs) -> None:
    data = cw.f_string(1, "FCN")
    for name, type_, bottoms, tops in pascal_layers():
        data += cw.f_bytes(2, v1_layer(name, type_, bottoms, tops, blobs.get(name, []) if type_ in
                                       ("Convolution", "Deconvolution") else []))
    path.write_bytes(data)


@pytest.fixture(scope="module")
def pascal_file(tmp_path_factory):
    blobs = pascal_blobs(np.random.default_rng(8))
    path = tmp_path_factory.mktemp("pascal") / "fcn-8s-pascal.caffemodel"
    write_pascal(path, blobs)
    return path, blobs


@pytest.fixture(scope="module")
def converted(pascal_file):
    path, _ = pascal_file
    return convert_weights(path)


def ref_pascal(blobs: dict, x: torch.Tensor) -> torch.Tensor:
    """fcn-8s-pascal's deploy net on exactly ``x`` (no padding), from the blobs."""
    t = {k: [torch.from_numpy(np.ascontiguousarray(b)) for b in v] for k, v in blobs.items()}
    h, pools = x, {}
    for s, (_, reps) in enumerate(wf.STAGES, 1):
        for j in range(1, reps + 1):
            w, b = t[f"conv{s}_{j}"]
            h = F.relu(F.conv2d(h, w, b, padding=100 if (s, j) == (1, 1) else 1))
        h = F.max_pool2d(h, 2, 2, ceil_mode=True)  # Caffe pools round up
        pools[s] = h
    h = F.relu(F.conv2d(h, *t["fc6"]))
    h = F.relu(F.conv2d(h, *t["fc7"]))
    score = F.conv2d(h, *t["score-fr"])
    score2 = F.conv_transpose2d(score, t["score2"][0], t["score2"][1], stride=2)
    o = CROPS["score-pool4"]
    sp4 = F.conv2d(pools[4], *t["score-pool4"])[..., o : o + score2.shape[2], o : o + score2.shape[3]]
    score4 = F.conv_transpose2d(score2 + sp4, t["score4"][0], stride=2)
    o = CROPS["score-pool3"]
    sp3 = F.conv2d(pools[3], *t["score-pool3"])[..., o : o + score4.shape[2], o : o + score4.shape[3]]
    big = F.conv_transpose2d(score4 + sp3, t["upsample"][0], stride=8)
    o = CROPS["upsample"]
    return big[..., o : o + x.shape[2], o : o + x.shape[3]]


def release_protocol(blobs: dict, x: torch.Tensor) -> torch.Tensor:
    """preprocess_image.m + cache_FCN8s_results.m: zero-pad the (mean-subtracted) image 'post' to
    500x500, run the net, keep the scores of the image's pixels."""
    height, width = x.shape[-2:]
    padded = torch.zeros(x.shape[0], 3, RELEASE_SIDE, RELEASE_SIDE)
    padded[..., :height, :width] = x
    return ref_pascal(blobs, padded)[..., :height, :width]


def test_layout_and_release_policy_are_detected(converted):
    model, report = converted
    assert (report.arch, report.num_classes, report.width, report.layout) == ("fcn8s", CLASSES, WIDTH, "fcn-pascal")
    assert report.source_format == "Caffe caffemodel (layers (V1))"
    assert model.input_convention == CAFFE_BGR and not model.training
    assert model.pad_input_to == RELEASE_SIDE
    assert model.upsample_bias == ("upscore2",)
    assert model.pixelwise_spec["pad_input_to"] == RELEASE_SIDE
    assert tuple(model.pixelwise_spec["upsample_bias"]) == ("upscore2",)
    assert model.crop_offsets == {"score_pool4": 5, "score_pool3": 9, "upscore8": 31}  # the prototxt's crops
    # blobs_lr: score2 and score4 learn, upsample is fixed
    assert model.upscore2.weight.requires_grad and model.upscore2.bias.requires_grad
    assert model.upscore_pool4.weight.requires_grad and not model.upscore8.weight.requires_grad


def test_every_layer_lands(pascal_file, converted):
    _, blobs = pascal_file
    model, report = converted
    params = dict(model.named_parameters())
    targets = {f"backbone.{n}": n for n in wf.conv_names() + ["fc6", "fc7"]}
    targets.update(HEADS)
    for module, layer in targets.items():
        weight = params[f"{module}.weight"].detach().numpy()
        np.testing.assert_array_equal(weight, blobs[layer][0].reshape(weight.shape), err_msg=module)
        if len(blobs[layer]) > 1:
            bias = params[f"{module}.bias"].detach().numpy()
            np.testing.assert_array_equal(bias, blobs[layer][1].reshape(-1), err_msg=module)
        else:
            assert f"{module}.bias" not in params, module
    assert {r.source for r in report.rows} == set(blobs) and not report.unused and not report.kept
    assert len(model.state_dict()) == sum(len(b) for b in blobs.values())


@pytest.mark.parametrize("size", [(37, 45), (500, 375), (1, 500)])
def test_forward_pads_to_500_like_the_release(pascal_file, converted, size):
    _, blobs = pascal_file
    model, _ = converted
    x = wf.caffe_input(1, *size, seed=2)
    with torch.no_grad():
        out = model(x)
        ref = release_protocol(blobs, x)
    assert out.shape == ref.shape == (1, CLASSES, *size)
    assert ref.abs().max() > 1
    assert wf.rel_err(out, ref) < 1e-5


def test_padding_policy_is_what_the_model_does(pascal_file, converted):
    # the policy equals a hand-padded forward of the same model with the policy off, cropped back,
    # and it matters: the unpadded forward differs (FCN-8s pad-100 outputs depend on the canvas)
    path, blobs = pascal_file
    model, _ = converted
    plain, _ = convert_weights(path, pad_input_to=None)
    assert plain.pad_input_to is None
    x = wf.caffe_input(2, 61, 90, seed=3)
    with torch.no_grad():
        padded = F.pad(x, (0, RELEASE_SIDE - 90, 0, RELEASE_SIDE - 61))
        by_hand = plain(padded)[..., :61, :90]
        assert torch.equal(model(x), by_hand)
        unpadded = plain(x)
    assert wf.rel_err(unpadded, ref_pascal(blobs, x)) < 1e-5
    assert wf.rel_err(unpadded, by_hand) > 1e-3


def test_side_longer_than_500_is_left_unpadded(pascal_file, converted):
    path, _ = pascal_file
    model, _ = converted
    plain, _ = convert_weights(path, pad_input_to=None)
    x = wf.caffe_input(1, 520, 33, seed=4)
    with torch.no_grad():
        out = model(x)
        by_hand = plain(F.pad(x, (0, RELEASE_SIDE - 33, 0, 0)))[..., :520, :33]
    assert out.shape == (1, CLASSES, 520, 33)
    assert torch.equal(out, by_hand)


def test_cli_convert_records_the_policy_in_the_checkpoint(tmp_path, pascal_file, capsys):
    path, blobs = pascal_file
    ckpt = tmp_path / "fcn8s-pascal.pt"
    assert main(["convert", str(path), "-o", str(ckpt), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "layout fcn-pascal" in out and "padded to 500x500" in out
    model = pixelwise.load_model(ckpt)
    assert model.pad_input_to == RELEASE_SIDE and model.upsample_bias == ("upscore2",)
    x = wf.caffe_input(1, 40, 29, seed=5)
    with torch.no_grad():
        assert wf.rel_err(model(x), release_protocol(blobs, x)) < 1e-5
    raw = torch.load(ckpt, weights_only=True)
    assert raw["config"]["convert"]["layout"] == "fcn-pascal"
    # --pad-input-to 0 turns the policy off
    off = tmp_path / "off.pt"
    assert main(["convert", str(path), "-o", str(off), "--quiet", "--pad-input-to", "0"]) == 0
    assert pixelwise.load_model(off).pad_input_to is None


def test_explicit_layout_fcn_names_the_missing_layer(pascal_file):
    path, _ = pascal_file
    with pytest.raises(CheckpointError, match="score_fr"):
        convert_weights(path, layout="fcn")
    with pytest.raises(PixelwiseError, match="layout"):
        convert_weights(path, layout="voc")


def test_ensemble_keeps_the_members_policy(converted):
    from pixelwise.models.assemble import build_edeconvnet

    fcn, _ = converted
    floor = fcn.pixelwise_spec["min_channels"]
    deconv = pixelwise.create_model("deconvnet", num_classes=CLASSES, width=WIDTH, min_channels=floor).eval()
    ens = build_edeconvnet(fcn, deconv)
    assert ens.fcn.pad_input_to == RELEASE_SIDE and ens.fcn.upsample_bias == ("upscore2",)
    x = wf.caffe_input(1, 32, 48, seed=6)
    with torch.no_grad():
        assert torch.equal(ens.fcn(x), fcn(x))


def test_onnx_graph_of_a_padded_fcn_is_fixed_size(converted):
    from pixelwise.weights.onnx_export import input_sizes_of

    model, _ = converted
    assert input_sizes_of(model, 64, 64, True) == "fixed:64x64"
    assert input_sizes_of(pixelwise.create_model("fcn8s", num_classes=3, width=WIDTH), 64, 64, True) == "any"


def test_standard_fcn_is_unchanged():
    model = pixelwise.create_model("fcn8s", num_classes=CLASSES, width=WIDTH)
    assert model.pad_input_to is None and model.upsample_bias == ()
    assert not any(k.startswith("upscore") and k.endswith(".bias") for k in model.state_dict())
    with pytest.raises(PixelwiseError, match="upsample_bias"):
        pixelwise.create_model("fcn8s", num_classes=CLASSES, width=WIDTH, upsample_bias=("upscore16",))
    with pytest.raises(PixelwiseError, match="pad_input_to"):
        pixelwise.create_model("fcn8s", num_classes=CLASSES, width=WIDTH, pad_input_to=0)
