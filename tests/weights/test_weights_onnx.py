"""ONNX export of every model with both exporters (dynamo and TorchScript), checked in ONNX
Runtime; exporter choice and fallback; the OnnxModel engine."""

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
from pixelwise.weights import onnx_export
from pixelwise.weights.onnx_export import (
    dynamo_unavailable,
    example_input,
    export_onnx,
    read_metadata,
)
from pixelwise.models.layers import scatter_max_unpool2d

WIDTH = 1 / 32
CLASSES = 4
# |onnxruntime - torch| / max(1, max |logit|): float32 reordering (ONNX Runtime folds BN into the
# convolutions, uses other conv kernels) gives ~1e-6 for FCN and up to a few 1e-5 for DeconvNet
TOLERANCE = 1e-4
FCN_MODELS = ["fcn32s", "fcn16s", "fcn8s", "fcn8s_atonce"]
SWITCH_MODELS = ["deconvnet", "edeconvnet"]  # max-unpooling: compared on tie-free inputs
CLASS_NAMES = [f"class{i}" for i in range(CLASSES)]
# every parity test runs once per exporter; dynamo needs onnxscript (skipped without it)
EXPORTERS = [
    pytest.param("dynamo", marks=pytest.mark.skipif(dynamo_unavailable() is not None,
                                                    reason=f"dynamo exporter: {dynamo_unavailable()}")),
    "torchscript",
]


def _trained_like(name: str, size: int = 224, **kw):
    """A tiny model with random weights and BN statistics measured on random images (so nothing
    is zero or dead: score layers are zero-initialised in an untrained FCN)."""
    model = pixelwise.create_model(name, num_classes=CLASSES, width=WIDTH, min_channels=1, **kw)
    calib = example_input(model.input_convention, 2, size, size, seed=99)  # BN needs 2 at fc6
    return wf.make_alive(model, calib)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """(name, exporter) -> (model, path, report); each model is made once for this module and
    exported once per exporter."""
    models, files = {}, {}
    folder = tmp_path_factory.mktemp("onnx")

    def model_of(name):
        if name not in models:
            if name == "edeconvnet":  # the ensemble of the two members made here already
                model = pixelwise.create_model(name, num_classes=CLASSES, width=WIDTH, min_channels=1)
                model.fcn.load_state_dict(model_of("fcn8s").state_dict())
                model.deconvnet.load_state_dict(model_of("deconvnet").state_dict())
                models[name] = model.eval()
            else:
                models[name] = _trained_like(name, size=64 if name.startswith("fcn") else 224)
        return models[name]

    def get(name, exporter="torchscript"):
        if (name, exporter) not in files:
            fcn = name.startswith("fcn")
            model = model_of(name)
            path = folder / f"{name}-{exporter}.onnx"
            # FCN exports at 64x48 and is checked there and at 101x69; the switch models are
            # compared in their tests on tie-free inputs instead
            report = export_onnx(model, path, height=64 if fcn else 224, width=48 if fcn else 224,
                                 check=fcn, class_names=CLASS_NAMES, exporter=exporter)
            assert report.exporter == exporter and not report.notes
            files[name, exporter] = (model, path, report)
        return files[name, exporter]

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


def test_eager_unpooling_calls_the_fast_kernel(monkeypatch):
    """Outside an export DeconvNet unpools with torch's own kernel (once per decoder stage)."""
    calls = []
    kernel = F.max_unpool2d
    monkeypatch.setattr(F, "max_unpool2d", lambda *a, **k: calls.append(1) or kernel(*a, **k))
    model = pixelwise.create_model("deconvnet", num_classes=CLASSES, width=WIDTH, min_channels=1).eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 224, 224))
    assert len(calls) == 5


def _watching_unpool(model, seen: list):
    """``model`` wrapped so that each trace appends to ``seen`` the ``F.max_unpool2d`` that the
    exporting thread and another thread see (a closure: export restores module attributes)."""
    import threading

    class Watch(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.model = model

        def forward(self, x):
            other = []
            thread = threading.Thread(target=lambda: other.append(torch.nn.functional.max_unpool2d))
            thread.start()
            thread.join()
            seen.extend([torch.nn.functional.max_unpool2d, *other])
            return self.model(x)

    return Watch()


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_export_never_replaces_max_unpool2d(tmp_path, exporter):
    kernel = torch.nn.functional.max_unpool2d
    seen = []
    watch = _watching_unpool(_trained_like("deconvnet"), seen)
    report = export_onnx(watch, tmp_path / "d.onnx", height=224, width=224, check=False, exporter=exporter)
    assert report.exporter == exporter and len(seen) == 2
    assert all(f is kernel for f in seen)  # while exporting, in the exporting thread and another one
    assert torch.nn.functional.max_unpool2d is kernel
    assert not hasattr(onnx_export, "exportable_unpooling")


@pytest.mark.parametrize("exporter", EXPORTERS)
@pytest.mark.parametrize("name", FCN_MODELS)
def test_fcn_family_exports_with_dynamic_size(exported, name, exporter):
    model, path, report = exported(name, exporter)
    assert report.input_sizes == "any" and report.dynamic
    assert report.opset == (18 if exporter == "dynamo" else 17)
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


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_fcn_pad_free_mode_exports(tmp_path, exporter):
    model = _trained_like("fcn8s", size=64, pad100=False)
    report = export_onnx(model, tmp_path / "padfree.onnx", height=64, exporter=exporter)
    assert report.exporter == exporter and report.input_sizes == "any"
    assert len(report.checks) == 2 and all(c.relative_diff < TOLERANCE for c in report.checks)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_fcn_pad_input_to_exports_at_fixed_size(tmp_path, exporter):
    # the DeconvNet release's fcn-8s-pascal protocol: 64x48 zero-padded to 96x96, scores cropped back
    model = _trained_like("fcn8s", size=64, pad_input_to=96)
    report = export_onnx(model, tmp_path / "padded.onnx", height=64, width=48, exporter=exporter)
    assert report.exporter == exporter and report.input_sizes == "fixed:64x48" and not report.dynamic
    assert [(c.height, c.width) for c in report.checks] == [(64, 48)]
    assert report.checks[0].max_abs_output > 1 and report.checks[0].relative_diff < TOLERANCE
    assert OnnxModel(tmp_path / "padded.onnx")(example_input(model.input_convention, 2, 64, 48)).shape == (2, 4, 64, 48)


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_deconvnet_exports_with_multiple_of_32_sizes(exported, exporter):
    model, path, report = exported("deconvnet", exporter)
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


@pytest.mark.parametrize("exporter", EXPORTERS)
def test_edeconvnet_exports_at_fixed_size(exported, exporter):
    model, path, report = exported("edeconvnet", exporter)
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
    export_onnx(model, other, height=64, check=False, input_convention=TORCHVISION_RGB, exporter="torchscript")
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


# -- exporter choice, fallback and write errors (fast: TorchScript exports or none) ----------------


def test_choose_exporter(monkeypatch):
    monkeypatch.setattr(onnx_export, "dynamo_unavailable", lambda: None)
    assert onnx_export.choose_exporter("auto", None) == ("dynamo", [])
    assert onnx_export.choose_exporter("dynamo", 18) == ("dynamo", [])
    assert onnx_export.choose_exporter("torchscript", None) == ("torchscript", [])
    kind, notes = onnx_export.choose_exporter("auto", 17)
    assert kind == "torchscript" and len(notes) == 1 and "opset 17" in notes[0]
    with pytest.raises(PixelwiseError, match="opset >= 18, got 17"):
        onnx_export.choose_exporter("dynamo", 17)
    with pytest.raises(PixelwiseError, match="unknown ONNX exporter 'jit'"):
        onnx_export.choose_exporter("jit", None)
    # without onnxscript: auto takes TorchScript with a note, dynamo is an error
    monkeypatch.setattr(onnx_export, "dynamo_unavailable", lambda: "onnxscript is not installed")
    kind, notes = onnx_export.choose_exporter("auto", None)
    assert kind == "torchscript" and notes == ["the dynamo exporter is not available, onnxscript is not installed: "
                                               "used the TorchScript exporter"]
    with pytest.raises(PixelwiseError, match="cannot run: onnxscript is not installed"):
        onnx_export.choose_exporter("dynamo", None)


def test_auto_falls_back_to_torchscript_with_a_note(monkeypatch, tmp_path):
    model = pixelwise.create_model("fcn32s", num_classes=CLASSES, width=WIDTH, min_channels=1).eval()
    original = onnx_export._run_exporter

    def dynamo_fails(kind, *args, **kwargs):
        if kind == "dynamo":
            raise RuntimeError("outer") from NotImplementedError("no ONNX translation for aten::foo")
        return original(kind, *args, **kwargs)

    monkeypatch.setattr(onnx_export, "dynamo_unavailable", lambda: None)
    monkeypatch.setattr(onnx_export, "_run_exporter", dynamo_fails)
    path = tmp_path / "m.onnx"
    report = export_onnx(model, path, height=64, exporter="auto")
    assert report.exporter == "torchscript" and report.opset == 17
    assert report.notes == ["the dynamo exporter failed (NotImplementedError: no ONNX translation for aten::foo): "
                            "used the TorchScript exporter"]
    assert all(c.relative_diff < TOLERANCE for c in report.checks) and len(report.checks) == 2
    # asked for by name, a failing exporter is one error line and the old file stays as it was
    path.write_bytes(b"previous export")
    with pytest.raises(PixelwiseError, match=r"m\.onnx: the dynamo exporter failed: NotImplementedError: no ONNX"):
        export_onnx(model, path, height=64, exporter="dynamo")
    assert path.read_bytes() == b"previous export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]  # no temporary file left


def test_export_to_a_path_that_cannot_be_written(tmp_path):
    from pixelwise.fileio import WriteError

    model = pixelwise.create_model("fcn32s", num_classes=CLASSES, width=WIDTH, min_channels=1)
    with pytest.raises(WriteError, match="it is a directory"):
        export_onnx(model, tmp_path, height=64, exporter="torchscript")
    (tmp_path / "file").write_text("x")
    with pytest.raises(WriteError, match=r"file[/\\]m\.onnx: .*file is not a directory"):
        export_onnx(model, tmp_path / "file" / "m.onnx", height=64, exporter="torchscript")


def test_dynamo_graph_with_a_fixed_axis_is_refused():
    # torch.onnx may narrow a declared dimension to a constant instead of failing; caught here
    class Graph:
        def __init__(self, shape):
            self.inputs = [type("Value", (), {"shape": shape})()]

    def program(shape):
        return type("Program", (), {"model": type("Model", (), {"graph": Graph(shape)})()})()

    onnx_export._check_dynamic_axes(program(["batch", 3, "height", "width"]), "any")
    onnx_export._check_dynamic_axes(program(["batch", 3, 224, 224]), "fixed:224x224")
    with pytest.raises(RuntimeError, match="fixed the batch to 1"):
        onnx_export._check_dynamic_axes(program([1, 3, 224, 224]), "fixed:224x224")
    with pytest.raises(RuntimeError, match="fixed the height to 64, width to 48"):
        onnx_export._check_dynamic_axes(program(["batch", 3, 64, 48]), "any")
