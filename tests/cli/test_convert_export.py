"""``pixelwise convert`` and ``pixelwise export`` end to end."""

import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import pixelwise
from pixelwise.cli import main
from pixelwise.convention import CAFFE_BGR, TORCHVISION_RGB
from pixelwise.data.palette import VOC_CLASSES

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "weights"))
import caffe_wire as cw  # noqa: E402
import weights_fixtures as wf  # noqa: E402
from weights_fixtures import tv_state  # noqa: E402

WIDTH = 1 / 32


@pytest.fixture
def fcn8s_caffemodel(tmp_path):
    blobs = wf.fcn_blobs("fcn8s", WIDTH, 21, np.random.default_rng(21))
    path = tmp_path / "fcn8s-heavy-pascal.caffemodel"
    path.write_bytes(cw.net([(n, wf.caffe_type(n, blobs), blobs[n]) for n in wf.fcn_layer_order(blobs)], v1=True))
    return path, blobs


def test_convert_caffemodel_then_load_and_export(tmp_path, fcn8s_caffemodel, capsys):
    src, blobs = fcn8s_caffemodel
    ckpt = tmp_path / "fcn8s.pt"
    assert main(["convert", str(src), "-o", str(ckpt)]) == 0
    out = capsys.readouterr().out
    assert re.search(r"^score_pool3\s+score_pool3\s+21x8x1x1", out, re.M)  # the layer table
    assert "wrote" in out and "fcn8s, 21 classes, width 0.03125" in out and "caffe_bgr" in out

    model = pixelwise.load_model(ckpt)
    assert model.input_convention == CAFFE_BGR and model.class_names == list(VOC_CLASSES)
    x = wf.caffe_input(1, 35, 42)
    with torch.no_grad():
        assert wf.rel_err(model(x), wf.ref_fcn("fcn8s", blobs, x)) < 1e-5

    onnx_path = tmp_path / "fcn8s.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "-o", str(onnx_path), "--size", "64", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert onnx_path.is_file() and "input sizes: any" in out
    # the default exporter is dynamo where onnxscript is installed, else TorchScript
    from pixelwise.weights.onnx_export import dynamo_unavailable

    assert f"{'torchscript' if dynamo_unavailable() else 'dynamo'} exporter" in out
    assert len(re.findall(r"onnxruntime vs torch at \d+x\d+", out)) == 2
    diff = float(re.search(r"^max abs diff: (\S+)", out, re.M).group(1))
    logits = max(float(v) for v in re.findall(r"logits up to (\S+);", out))
    assert logits > 1 and diff <= 1e-4 * logits

    from pixelwise.weights.onnx_engine import OnnxModel

    engine = OnnxModel(onnx_path)
    assert engine.class_names == list(VOC_CLASSES) and engine.input_convention == CAFFE_BGR
    with torch.no_grad():
        assert wf.rel_err(engine(x), model(x)) < 1e-4


def test_convert_torchvision_backbone(tmp_path, capsys):
    src = tmp_path / "vgg16.pth"
    torch.save(tv_state(0.0625, bn=False), src)
    ckpt = tmp_path / "init.pt"
    assert main(["convert", str(src), "--arch", "fcn32s", "--num-classes", "3", "-o", str(ckpt), "--quiet"]) == 0
    assert "fcn32s, 3 classes, width 0.0625" in capsys.readouterr().out
    model = pixelwise.load_model(ckpt)
    assert model.input_convention == TORCHVISION_RGB and model.class_names is None
    torch.testing.assert_close(model.backbone.fc7.weight.detach().flatten(1), torch.load(src)["classifier.3.weight"])


def test_export_untrained_model_by_name(tmp_path, capsys):
    out_path = tmp_path / "deconvnet.onnx"
    assert main(["export", "--model", "deconvnet", "--width", str(WIDTH), "--num-classes", "3",
                 "-o", str(out_path), "--quiet", "--no-check", "--exporter", "torchscript"]) == 0
    out = capsys.readouterr().out
    assert out_path.is_file() and "multiple_of_32_min_224" in out and "max abs diff" not in out
    assert "opset 17" in out and "torchscript exporter" in out


def test_export_auto_notes_a_switch_to_torchscript(tmp_path, capsys):
    out_path = tmp_path / "fcn32s.onnx"
    assert main(["export", "--model", "fcn32s", "--width", str(WIDTH), "--num-classes", "3", "--size", "64",
                 "-o", str(out_path), "--quiet", "--opset", "17"]) == 0
    captured = capsys.readouterr()
    assert "opset 17" in captured.out and "torchscript exporter" in captured.out
    assert len(re.findall(r"onnxruntime vs torch at \d+x\d+", captured.out)) == 2
    (note,) = captured.err.strip().splitlines()
    assert note.startswith("pixelwise export: note: ") and "used the TorchScript exporter" in note


@pytest.mark.parametrize(
    "argv, message",
    [
        (["export", "--model", "deconvnet", "--width", "0.03125", "--size", "100", "-o", "x.onnx"], "multiples of 32"),
        (["export", "--model", "nope", "-o", "x.onnx"], "unknown model 'nope'"),
        (["export", "--checkpoint", "missing.pt", "-o", "x.onnx"], "no such checkpoint"),
        (["export", "--model", "fcn8s", "--exporter", "dynamo", "--opset", "17", "-o", "x.onnx"], "opset >= 18"),
        (["convert", "missing.caffemodel", "-o", "x.pt"], "no such file"),
        (["convert", "SRC", "--map", "seg_score", "-o", "x.pt"], "MODULE=LAYER"),
    ],
)
def test_cli_errors_are_one_line(tmp_path, fcn8s_caffemodel, capsys, argv, message, monkeypatch):
    monkeypatch.chdir(tmp_path)
    argv = [str(fcn8s_caffemodel[0]) if a == "SRC" else a for a in argv]
    assert main(argv + ["--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and err[0].startswith(f"pixelwise {argv[0]}: error:")


def test_convert_reports_missing_layer(tmp_path, capsys):
    blobs = wf.fcn_blobs("fcn16s", WIDTH, 21, np.random.default_rng(22))
    order = [n for n in wf.fcn_layer_order(blobs) if n != "conv4_2"]
    src = tmp_path / "broken.caffemodel"
    src.write_bytes(cw.net([(n, wf.caffe_type(n, blobs), blobs[n]) for n in order], v1=False))
    assert main(["convert", str(src), "-o", str(tmp_path / "x.pt"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "no layer 'conv4_2' for backbone.conv4_2" in err and "broken.caffemodel" in err
    assert not (tmp_path / "x.pt").exists()
