"""The int8 engine: quantized graphs agree with the plain model, the cache key follows the
calibration, the accuracy guard refuses (and fp32 keeps running), ``export --int8`` end to end."""

import json

import numpy as np
import pytest
import torch

import pixelwise
from pixelwise.bench.cases import randomise
from pixelwise.checkpoint import make_checkpoint, save_checkpoint
from pixelwise.cli import main
from pixelwise.data import build_dataset, write_image
from pixelwise.errors import PixelwiseError
from pixelwise.fast.deconv import as_conv, transposed_as_conv
from pixelwise.fast.int8 import Calibration, QuantSettings, base_key, int8_key
from pixelwise.fast.onnx import onnxruntime_available
from pixelwise.inference.int8 import build_int8
from pixelwise.inference.loading import ModelRequest, load_inference_model
from pixelwise.optimize import prepare_for_inference
from pixelwise.weights.onnx_export import read_metadata

pytestmark = pytest.mark.skipif(not onnxruntime_available(), reason="needs the onnx extra")

SCENE = {"size": 64, "num_classes": 4, "length": 12}


@pytest.fixture(autouse=True)
def _engine_cache_on(tmp_path, monkeypatch):
    monkeypatch.setenv("PIXELWISE_ENGINE_CACHE", "1")
    monkeypatch.setenv("PIXELWISE_CACHE", str(tmp_path / "cache"))


def _model(name: str, seed: int = 0):
    torch.manual_seed(seed)  # random batch-norm statistics and scorers: outputs with several classes
    return randomise(pixelwise.create_model(name, num_classes=4, width=0.0625), seed).eval()


def _calibration(side: int, seed: int = 1, scale: float = 60.0) -> Calibration:
    gen = torch.Generator().manual_seed(seed)
    return Calibration.from_batches([torch.randn(2, 3, side, side, generator=gen) * scale], source="random")


def _agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.argmax(1) == b.argmax(1)).float().mean())


@pytest.mark.parametrize("name, side", [("fcn8s", 80), ("deconvnet", 224)])
def test_int8_engine_agrees_with_the_plain_model(name, side):
    model = _model(name)
    engine = prepare_for_inference(model, engine="int8", calibration=_calibration(side))
    assert engine.engine == "int8" and engine.inner.cache_status == "built"
    x = torch.randn(2, 3, side, side, generator=torch.Generator().manual_seed(5)) * 60
    with torch.no_grad():
        ref = model(x)
    out = engine(x)
    assert out.shape == ref.shape and out.dtype == torch.float32
    assert _agreement(out, ref) >= 0.97
    assert float((out - ref).abs().max() / ref.abs().max()) < 0.1
    again = prepare_for_inference(model, engine="int8", calibration=_calibration(side))
    assert again.inner.cache_status == "hit"  # same weights, same calibration: from the engine cache


def test_cache_key_follows_weights_and_calibration():
    model = _model("fcn8s")
    base = base_key(model)
    one, other = _calibration(64, seed=1), _calibration(64, seed=2)
    assert int8_key(base, one, QuantSettings()) == int8_key(base, _calibration(64, seed=1), QuantSettings())
    assert int8_key(base, one, QuantSettings()) != int8_key(base, other, QuantSettings())
    assert int8_key(base, one, QuantSettings()) != int8_key(base, one, QuantSettings(float_parts=()))
    assert base_key(_model("fcn8s", seed=3)) != base


def test_stride_one_transposed_convs_become_exact_convs():
    model = _model("deconvnet")
    x = torch.randn(1, 3, 224, 224) * 60
    with torch.no_grad():
        ref = model(x)
        names = transposed_as_conv(model)
        out = model(x)
    assert "deconv5_1" in names and "deconv_fc6" not in names  # 1x1 -> 7x7 would multiply zeros
    assert float((out - ref).abs().max() / ref.abs().max()) < 1e-5
    with pytest.raises(ValueError):
        as_conv(torch.nn.ConvTranspose2d(4, 4, 4, stride=2))


def test_guard_refuses_and_fp32_keeps_running(capsys):
    model = _model("fcn8s")
    gen = np.random.default_rng(0)
    images = [gen.integers(0, 256, (48, 64, 3), dtype=np.uint8) for _ in range(2)]
    result = build_int8(model, images[:1], [{"image": im} for im in images[1:]], calibration_source="random",
                        check_source="random", min_agreement=1.01)  # unreachable: always refused
    assert not result.accepted and result.record()["key"] is None and result.report.miou_int8 is None  # unlabelled
    engine = prepare_for_inference(model, engine="int8")
    assert engine.engine != "int8"
    assert "refused: label agreement" in capsys.readouterr().err
    with pytest.raises(PixelwiseError, match="no int8 engine for this model yet"):
        prepare_for_inference(_model("fcn8s", seed=4), engine="int8")


def _export(tmp_path, name: str, *extra: str) -> tuple:
    """A checkpoint of a tiny randomised ``name`` trained (says its config) on tiny scenes, and the
    arguments of ``export --int8`` for it (2 calibration, 2 held-out images)."""
    torch.manual_seed(0)
    options = {"input_size": 96, "deep_supervision": True} if name == "deconvnet" else {}
    model = randomise(pixelwise.create_model(name, num_classes=4, width=0.0625, **options), 0).eval()
    config = {"dataset": "synthetic", "data_options": SCENE, "train_split": "train", "val_split": "val"}
    ckpt = save_checkpoint(tmp_path / f"{name}.pt", make_checkpoint(model, config=config))
    out = tmp_path / f"{name}-int8.onnx"
    return ckpt, out, ["export", "--int8", "--checkpoint", str(ckpt), "-o", str(out), "--calibrate-images", "2",
                       "--check-images", "2", "--quiet", *extra]


def test_export_int8_then_predict_a_pair(tmp_path, capsys):
    fcn, out, args = _export(tmp_path, "fcn8s")
    assert main([*args, "--min-agreement", "0.5"]) == 0
    text = capsys.readouterr().out
    assert "calibrated on synthetic/train (2 images" in text and "guard: label agreement" in text
    assert json.loads(read_metadata(out)["int8"])["settings"]["float_parts"] == ["scores"]  # the default
    guard = json.loads(read_metadata(out)["int8_guard"])
    assert guard["accepted"] and guard["guard"]["source"] == "synthetic/val" and guard["guard"]["miou_int8"] is not None
    deconv, _, args_d = _export(tmp_path, "deconvnet", "--proposals", "sliding", "--min-agreement", "0")
    assert main(args_d) == 0
    image = tmp_path / "scene.png"
    write_image(image, np.asarray(build_dataset("synthetic", split="test", **SCENE)[0]["image"]))
    # the EDeconvNet's members run their own checkpoints' int8 engines (the DeconvNet's deep
    # supervision, which the ensemble drops, does not stand in the way)
    assert main(["predict", "--fcn", str(fcn), "--deconvnet", str(deconv), "--engine", "int8", "--device", "cpu",
                 "--proposals", "sliding", str(image), "--out", str(tmp_path / "pred")]) == 0
    assert json.loads((tmp_path / "pred" / "scene.json").read_text())["classes"]
    pair = load_inference_model(ModelRequest(fcn=str(fcn), deconvnet=str(deconv), engine="int8"))
    assert pair.engine == "fcn:int8+deconvnet:int8"
    capsys.readouterr()
    assert main([*args, "--min-agreement", "1.0"]) in (0, 1)  # refused unless int8 matches every pixel
    err = capsys.readouterr().err
    if "refused" in err:
        assert err.count("\n") == 1 and "fp32" in err
