"""ONNX export of every model, checked in ONNX Runtime; the OnnxModel engine."""

import json

import pytest
import torch
import torch.nn.functional as F

import pixelwise
import weights_fixtures as wf
from pixelwise.convention import TORCHVISION_RGB
from pixelwise.errors import CheckpointError, PixelwiseError
from pixelwise.models.ensemble import combine_scores
from pixelwise.weights.onnx_engine import OnnxModel
from pixelwise.weights.onnx_export import example_input, export_onnx, read_metadata, scatter_max_unpool2d

WIDTH = 1 / 32
CLASSES = 4
# |onnxruntime - torch| / max(1, max |logit|): float32 reordering (ONNX Runtime folds BN into the
# convolutions, uses other conv kernels) gives ~1e-6 for FCN and up to a few 1e-5 for DeconvNet
TOLERANCE = 1e-4
FCN_MODELS = ["fcn32s", "fcn16s", "fcn8s", "fcn8s_atonce"]
SWITCH_MODELS = ["deconvnet", "edeconvnet"]  # max-unpooling: compared on tie-free inputs
CLASS_NAMES = [f"class{i}" for i in range(CLASSES)]


def _trained_like(name: str, size: int = 224, **kw):
    """A tiny model with random weights and BN statistics measured on random images (so nothing
    is zero or dead: score layers are zero-initialised in an untrained FCN)."""
    model = pixelwise.create_model(name, num_classes=CLASSES, width=WIDTH, min_channels=1, **kw)
    calib = example_input(model.input_convention, 2, size, size, seed=99)  # BN needs 2 at fc6
    return wf.make_alive(model, calib)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """name -> (model, path, report); each model is made and exported once for this module."""
    cache = {}
    folder = tmp_path_factory.mktemp("onnx")

    def get(name):
        if name not in cache:
            fcn = name.startswith("fcn")
            if name == "edeconvnet":  # the ensemble of the two members made here already
                model = pixelwise.create_model(name, num_classes=CLASSES, width=WIDTH, min_channels=1)
                model.fcn.load_state_dict(get("fcn8s")[0].state_dict())
                model.deconvnet.load_state_dict(get("deconvnet")[0].state_dict())
                model.eval()
            else:
                model = _trained_like(name, size=64 if fcn else 224)
            path = folder / f"{name}.onnx"
            # FCN exports at 64x48 and is checked there and at 101x69; the switch models are
            # compared in their tests on tie-free inputs instead
            report = export_onnx(model, path, height=64 if fcn else 224, width=48 if fcn else 224,
                                 check=fcn, class_names=CLASS_NAMES)
            cache[name] = (model, path, report)
        return cache[name]

    return get


def _tie_free_input(model, size, batch=1, seed0=0):
    """An input on which no max-pool window has a near-tie (relative gap < 1e-5) that float noise
    could flip: DeconvNet routes values through the pool switches, so a flipped switch moves a
    value, which is not an export error. Returns the first such input."""
    deconvnet = getattr(model, "deconvnet", model)  # in EDeconvNet only this member unpools
    for seed in range(seed0, seed0 + 10):
        x = example_input(model.input_convention, batch, *size, seed=seed)
        if wf.min_pool_gap(deconvnet, x) > 1e-5:
            return x
    pytest.fail("no tie-free input found")  # pragma: no cover


def _rel(a, b):
    return float((a - b).abs().max() / max(1.0, float(b.abs().max())))


def test_every_registered_model_is_covered():
    assert sorted(pixelwise.list_models()) == sorted(FCN_MODELS + SWITCH_MODELS)


def test_scatter_unpool_equals_max_unpool():
    x = torch.randn(2, 3, 10, 14)
    pooled, idx = F.max_pool2d(x, 2, 2, return_indices=True)
    expected = F.max_unpool2d(pooled, idx, 2, 2, output_size=x.shape[-2:])
    assert torch.equal(scatter_max_unpool2d(pooled, idx, 2, 2, output_size=x.shape[-2:]), expected)
    assert torch.equal(scatter_max_unpool2d(pooled, idx, 2), F.max_unpool2d(pooled, idx, 2))


@pytest.mark.parametrize("name", FCN_MODELS)
def test_fcn_family_exports_with_dynamic_size(exported, name):
    model, path, report = exported(name)
    assert report.input_sizes == "any" and report.dynamic
    # checked at the export size and at a second, odd size (64+37 x 48+21)
    assert [(c.height, c.width) for c in report.checks] == [(64, 48), (101, 69)]
    for check in report.checks:
        assert check.max_abs_output > 1
        assert check.relative_diff < TOLERANCE and check.argmax_agreement == 1.0


def test_engine_runs_other_sizes_and_batches(exported):
    model, path, _ = exported("fcn8s")
    x = example_input(model.input_convention, 2, 33, 90, seed=5)
    with torch.no_grad():
        ref = model(x)
    out = OnnxModel(path)(x)
    assert out.shape == ref.shape == (2, CLASSES, 33, 90)
    assert _rel(out, ref) < TOLERANCE


def test_fcn_pad_free_mode_exports(tmp_path):
    model = _trained_like("fcn8s", size=64, pad100=False)
    report = export_onnx(model, tmp_path / "padfree.onnx", height=64)
    assert len(report.checks) == 2 and all(c.relative_diff < TOLERANCE for c in report.checks)


def test_deconvnet_exports_with_multiple_of_32_sizes(exported):
    model, path, report = exported("deconvnet")
    assert report.input_sizes == "multiple_of_32_min_224" and report.dynamic
    engine = OnnxModel(path)
    x = _tie_free_input(model, (224, 224))
    with torch.no_grad():
        ref = model(x)
    assert ref.std() > 0.1
    assert _rel(engine(x), ref) < TOLERANCE
    with pytest.raises(PixelwiseError, match="multiples of 32"):
        engine(torch.zeros(1, 3, 230, 224))
    # another size through forward_any_size: 200x250 is padded to 224x256, run, cropped back
    x = _tie_free_input(model, (224, 256), seed0=3)[..., :200, :250]
    with torch.no_grad():
        ref = model.forward_any_size(x)
    assert _rel(engine.forward_any_size(x), ref) < TOLERANCE


def test_edeconvnet_exports_at_fixed_size(exported):
    model, path, report = exported("edeconvnet")
    assert report.input_sizes == "fixed:224x224" and not report.dynamic
    engine = OnnxModel(path)
    x = _tie_free_input(model, (224, 224), batch=2)  # batch stays dynamic
    with torch.no_grad():
        members = model.member_logits(x)
        ref = combine_scores(*members, model.mode)
        scale = max(float(m.abs().max()) for m in members)
    out = engine(x)
    # mode "mean" outputs log-probabilities, whose far tail (p ~ 1e-12) magnifies the members'
    # differences; compare the probabilities: softmax moves by at most half the change of its
    # logits, so TOLERANCE relative to the members' logits bounds them
    assert float((out.softmax(1) - ref.softmax(1)).abs().max()) < TOLERANCE * max(1.0, scale)
    assert float((out.argmax(1) == ref.argmax(1)).float().mean()) > 0.999
    with pytest.raises(PixelwiseError, match="exported for 224x224"):
        engine(torch.zeros(1, 3, 256, 256))


def test_metadata_round_trip(exported, tmp_path):
    model, path, _ = exported("fcn16s")
    meta = read_metadata(path)
    assert json.loads(meta["model_spec"])["name"] == "fcn16s"
    engine = OnnxModel(path)
    assert engine.input_convention == model.input_convention
    assert engine.class_names == CLASS_NAMES and engine.num_classes == CLASSES
    assert engine.pixelwise_spec["width"] == WIDTH
    assert engine.eval() is engine and engine.to("cpu") is engine
    # the convention is the model's, or the one given
    other = tmp_path / "rgb.onnx"
    export_onnx(model, other, height=64, check=False, input_convention=TORCHVISION_RGB)
    assert OnnxModel(other).input_convention == TORCHVISION_RGB


def test_engine_errors(exported, tmp_path):
    with pytest.raises(CheckpointError, match="no such ONNX file"):
        OnnxModel(tmp_path / "missing.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not an onnx model")
    with pytest.raises(CheckpointError, match="not a loadable ONNX model"):
        OnnxModel(junk)
    _, path, _ = exported("fcn32s")
    with pytest.raises(PixelwiseError, match=r"\(N, 3, H, W\)"):
        OnnxModel(path)(torch.zeros(3, 64, 64))


def test_deconvnet_bad_export_size():
    model = pixelwise.create_model("deconvnet", num_classes=CLASSES, width=WIDTH)
    with pytest.raises(PixelwiseError, match="multiples of 32"):
        export_onnx(model, "unused.onnx", height=100)
