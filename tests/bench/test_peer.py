"""The pytorch-fcn peer (torchfcn): obtaining it, the exact weight mapping, its benchmark rows and
summary, and the whole-process comparison's set-up and peer script."""

from __future__ import annotations

import importlib.util
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import pixelwise
from pixelwise.bench import Case
from pixelwise.bench.cases import inference_callable, randomise
from pixelwise.bench.report import peer_lines, peer_speedups
from pixelwise.bench.runner import measure_engine, skip_reason, with_peer
from pixelwise.cli import build_parser, main
from pixelwise.cli.bench import build_plan
from pixelwise.errors import PixelwiseError

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def _script(name: str):
    """Import ``benchmarks/NAME.py`` as a module."""
    spec = importlib.util.spec_from_file_location(f"bench_script_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def torchfcn():
    """torchfcn's models module (fetched into this session's cache), or a skip when offline."""
    from pixelwise.bench.peer import load_torchfcn

    try:
        return load_torchfcn()
    except PixelwiseError as exc:
        pytest.skip(f"torchfcn unavailable: {exc}")


@pytest.fixture(scope="module")
def paper_fcn8s():
    """A paper-width FCN-8s (torchfcn's channel counts are fixed) with random score layers."""
    torch.manual_seed(0)
    return randomise(pixelwise.create_model("fcn8s", num_classes=21, width=1.0), 0).eval()


def test_weight_mapping_is_exact(torchfcn, paper_fcn8s):
    from pixelwise.bench.peer import torchfcn_fcn8s

    peer = torchfcn_fcn8s(paper_fcn8s)
    assert isinstance(peer, torchfcn.FCN8s) and not peer.training
    assert all(p.device.type == "cpu" and p.dtype == torch.float32 for p in peer.parameters())
    x = torch.randn(1, 3, 64, 64) * 60
    with torch.no_grad():
        a, b = paper_fcn8s(x), peer(x)
    assert a.shape == b.shape == (1, 21, 64, 64)
    assert float((a - b).abs().max() / a.abs().max()) <= 1e-6  # measured: 0 (same ops, same order)
    runner = inference_callable(paper_fcn8s, "torchfcn")  # the benchmark's engine: the same mapping, no_grad
    assert isinstance(runner.module, torchfcn.FCN8s)
    assert torch.equal(runner.module.fc6.weight, paper_fcn8s.backbone.fc6.weight)


def test_torchfcn_fcn8s_refuses_other_models():
    from pixelwise.bench.peer import torchfcn_fcn8s

    with pytest.raises(PixelwiseError, match="width-1.0 fcn8s"):
        torchfcn_fcn8s(pixelwise.create_model("fcn8s", num_classes=21, width=0.0625))
    with pytest.raises(PixelwiseError, match="width-1.0 fcn8s"):
        torchfcn_fcn8s(pixelwise.create_model("fcn32s", num_classes=21, width=0.0625))


def test_runner_skips_the_peer_cleanly(monkeypatch):
    import pixelwise.bench.peer as peer

    def no_network():
        raise AssertionError("these cases must be refused without looking for torchfcn")

    monkeypatch.setattr(peer, "torchfcn_unavailable", no_network)
    assert "FCN-8s inference only" in skip_reason(Case("infer", "deconvnet", 224, 224), "torchfcn")
    assert "FCN-8s inference only" in skip_reason(Case("proposals", "deconvnet", 160, 200, batch=2), "torchfcn")
    assert "inference only" in skip_reason(Case("train", "fcn8s", 64, 64), "torchfcn")
    assert "width 1.0 only" in skip_reason(Case("infer", "fcn8s", 96, 96, model_width=0.0625), "torchfcn")
    row = measure_engine(Case("infer", "fcn32s", 64, 64, model_width=0.0625), "torchfcn", peaks={"fp32": 100.0})
    assert row["engine"] == "torchfcn" and row["skipped"] and row["median_ms"] is None
    monkeypatch.setattr(peer, "torchfcn_unavailable", lambda: "pip download torchfcn==1.9.7 failed (offline?): x")
    reason = skip_reason(Case("infer", "fcn8s", 500, 500), "torchfcn")
    assert reason.startswith("torchfcn unavailable: pip download")


def test_offline_fetch_fails_in_one_line(monkeypatch, tmp_path):
    import pixelwise.bench.peer as peer

    monkeypatch.setenv("PIXELWISE_CACHE", str(tmp_path))
    failed = subprocess.CompletedProcess([], 1, stdout="", stderr="ERROR: Could not find a version (offline)\n")
    monkeypatch.setattr(peer.subprocess, "run", lambda *a, **k: failed)
    with pytest.raises(PixelwiseError, match=r"failed \(offline\?\): ERROR: Could not find") as info:
        peer.ensure_torchfcn_copy()
    assert "\n" not in str(info.value)
    assert not peer.peer_root().exists()


def test_peer_joins_the_default_engines_of_paper_fcn8s_only():
    default = ["reference", "eager", "channels_last", "bf16", "onnxruntime", "cuda"]
    assert with_peer(Case("infer", "fcn8s", 500, 500), default)[:3] == ["reference", "torchfcn", "eager"]
    assert with_peer(Case("infer", "fcn8s", 96, 96, model_width=0.0625), default) == default  # quick: offline
    assert with_peer(Case("infer", "fcn16s", 500, 500), default) == default
    parser = build_parser()
    (case, engines), = build_plan(parser.parse_args(["bench", "--model", "fcn8s"]))
    assert "torchfcn" in engines
    (case, engines), = build_plan(parser.parse_args(["bench", "--quick"]))
    assert "torchfcn" not in engines


def test_peer_speedup_lines():
    rows = [
        {"case": "infer fcn8s 500x500 x1", "engine": "reference", "median_ms": 1500.0, "ref_ratio": 1.0},
        {"case": "infer fcn8s 500x500 x1", "engine": "torchfcn", "median_ms": 1500.0, "ref_ratio": 0.98},
        {"case": "infer fcn8s 500x500 x1", "engine": "channels_last", "median_ms": 1000.0, "ref_ratio": 1.47},
        {"case": "infer fcn8s 500x500 x1", "engine": "onnxruntime", "median_ms": 900.0, "ref_ratio": 1.62},
    ]
    (s,) = peer_speedups(rows)
    got = {e["engine"]: e for e in s["engines"]}
    assert got["channels_last"]["speedup"] == pytest.approx(1.5)
    assert got["onnxruntime"]["speedup"] == pytest.approx(1500 / 900)
    assert got["channels_last"]["speedup_via_ref"] == pytest.approx(1.5)
    text = "\n".join(peer_lines(rows))
    assert "x1.50 vs torchfcn" in text and "x1.67 vs torchfcn" in text and "engine cache" in text
    skipped = [dict(rows[1], median_ms=None, skipped="torchfcn unavailable: offline")] + rows[2:]
    assert peer_speedups(skipped) == [] and peer_lines(skipped) == []


def test_predict_vs_peer_setup_is_read_by_pixelwise_predict(tmp_path, capsys):
    script = _script("predict_vs_peer")
    images = script.write_images(tmp_path / "images", count=2, size=48)
    assert [p.suffix for p in images] == [".jpg", ".png"]
    ckpt, pth = script.write_weights(tmp_path, width=0.0625)
    state = torch.load(pth)
    assert "conv1_1.weight" in state and "score_fr.weight" in state and not any(k.startswith("backbone.") for k in state)
    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", str(ckpt), "--device", "cpu", str(tmp_path / "images"), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.glob("image_0?.png")) == ["image_00.png", "image_01.png"]
    cmds = script.commands(tmp_path, tmp_path / "images", ckpt, pth, None, threads=1)
    assert list(cmds) == ["pixelwise", "torchfcn", "pixelwise-cache-off"]
    assert cmds["pixelwise-cache-off"][1]["PIXELWISE_ENGINE_CACHE"] == "0"
    assert "PIXELWISE_ENGINE_CACHE" not in cmds["pixelwise"][1]
    assert cmds["pixelwise"][1]["PIXELWISE_CACHE"] == str(tmp_path / "cache")


def test_peer_script_segments_like_pixelwise(torchfcn, paper_fcn8s, tmp_path):
    from PIL import Image

    from pixelwise.bench.peer import torchfcn_location, torchfcn_state_dict
    from pixelwise.data.io import read_image
    from pixelwise.inference.pipeline import segment

    (image,) = _script("predict_vs_peer").write_images(tmp_path / "images", count=1, size=48)
    torch.save(torchfcn_state_dict(paper_fcn8s), tmp_path / "w.pth")
    location = torchfcn_location()
    args = [str(tmp_path / "images"), "--weights", str(tmp_path / "w.pth"), "--out", str(tmp_path / "out")]
    assert _script("peer_torchfcn_predict").main(args + (["--torchfcn-path", str(location)] if location else [])) == 0
    mask = Image.open(tmp_path / "out" / "image_00.png")
    assert mask.mode == "P"
    expected = segment(paper_fcn8s, read_image(image)).argmax(0)
    assert np.mean(np.asarray(mask) == expected) >= 0.999  # same preprocessing, same network
