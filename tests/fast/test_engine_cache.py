"""The engine cache: an exported ONNX graph is reused by later processes and rebuilt when the
weights change or the entry is unusable; ``auto`` takes ONNX Runtime for FCN once it is cached."""

import os
import subprocess
import sys

import pytest
import torch

from pixelwise.fast.engine_cache import entry_path
from pixelwise.fast.onnx import onnxruntime_available
from pixelwise.models import create_model
from pixelwise.optimize import onnx_cache_key, prepare_for_inference

pytestmark = pytest.mark.skipif(not onnxruntime_available(), reason="needs the onnx extra")


@pytest.fixture(autouse=True)
def _engine_cache_on(tmp_path, monkeypatch):
    """The engine cache on, in a folder of this test's own."""
    monkeypatch.setenv("PIXELWISE_ENGINE_CACHE", "1")
    monkeypatch.setenv("PIXELWISE_CACHE", str(tmp_path / "cache"))

SCRIPT = """
import sys, torch
from pixelwise.models import create_model
from pixelwise.optimize import prepare_for_inference
torch.manual_seed(int(sys.argv[1]))
model = create_model("fcn8s", num_classes=3, width=0.03125, min_channels=4, pad100=False).eval()
prepared = prepare_for_inference(model, engine="onnxruntime")
print(prepared.inner.cache_status)
"""


def _tiny(seed: int = 0):
    torch.manual_seed(seed)
    return create_model("fcn8s", num_classes=3, width=0.03125, min_channels=4, pad100=False).eval()


def _status_in_new_process(seed: int, cache) -> str:
    env = {**os.environ, "PIXELWISE_CACHE": str(cache), "PIXELWISE_ENGINE_CACHE": "1"}
    out = subprocess.run([sys.executable, "-c", SCRIPT, str(seed)], env=env, capture_output=True, text=True,
                         check=True)
    return out.stdout.strip().splitlines()[-1]


def test_a_second_process_reuses_the_export_and_changed_weights_do_not(tmp_path):
    assert _status_in_new_process(0, tmp_path) == "built"
    assert _status_in_new_process(0, tmp_path) == "hit"  # no export: the graph comes from the cache
    assert _status_in_new_process(1, tmp_path) == "built"  # other weights, other key
    assert len(list((tmp_path / "engines").glob("*.onnx"))) == 2
    assert not list((tmp_path / "engines").glob(".*"))  # no temporary file left behind


def test_an_unusable_entry_is_reported_and_rebuilt(capsys):
    model = _tiny(2)
    key = onnx_cache_key(model, "onnxruntime", "fp32", torch.device("cpu"))
    path = entry_path(key)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not an onnx file")
    prepared = prepare_for_inference(model, engine="onnxruntime")
    assert prepared.inner.cache_status == "built"
    assert "is unusable" in capsys.readouterr().err and path.stat().st_size > 100
    x = torch.randn(1, 3, 40, 56)
    torch.testing.assert_close(prepared(x), model(x), rtol=1e-4, atol=1e-4)


def test_auto_takes_onnxruntime_for_fcn_once_cached(monkeypatch):
    model = _tiny(3)
    assert prepare_for_inference(model, engine="auto").engine == "channels_last"  # nothing cached: no export
    prepare_for_inference(model, engine="onnxruntime")
    assert prepare_for_inference(model, engine="auto").engine == "onnxruntime"
    monkeypatch.setenv("PIXELWISE_ENGINE_CACHE", "0")
    assert prepare_for_inference(model, engine="auto").engine == "channels_last"
    assert prepare_for_inference(model, engine="onnxruntime").inner.cache_status == "off"


def test_a_fixed_size_fcn_never_gets_onnxruntime_from_auto():
    torch.manual_seed(0)
    model = create_model("fcn8s", num_classes=3, width=0.03125, min_channels=4, pad_input_to=64).eval()
    assert prepare_for_inference(model, engine="auto", images=100).engine == "channels_last"


def test_a_deconvnet_with_proposals_above_224_gets_an_engine():
    torch.manual_seed(0)
    model = create_model("deconvnet", num_classes=3, width=0.03125, min_channels=4, input_size=256).eval()
    prepared = prepare_for_inference(model, engine="onnxruntime")
    x = torch.randn(1, 3, 256, 256)
    torch.testing.assert_close(prepared(x), model(x), rtol=1e-4, atol=1e-4)


def test_predict_stores_the_engine_once_for_the_next_runs(tmp_path, capsys):
    from pixelwise.checkpoint import make_checkpoint, save_checkpoint
    from pixelwise.cli import main
    from pixelwise.data import write_image

    ckpt = save_checkpoint(tmp_path / "fcn.pt", make_checkpoint(_tiny(4), class_names=["a", "b", "c"]))
    write_image(tmp_path / "img.png", torch.randint(0, 255, (40, 48, 3), dtype=torch.uint8).numpy())
    args = ["predict", str(tmp_path / "img.png"), "-c", str(ckpt)]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert "stored the ONNX Runtime engine" in capsys.readouterr().err
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert "stored the ONNX Runtime engine" not in capsys.readouterr().err  # the second run found it
    model = _tiny(4)
    model.class_names = ["a", "b", "c"]  # the graph's metadata holds them: they are part of the key
    key = onnx_cache_key(model, "auto", "fp32", torch.device("cpu"))
    assert entry_path(key).is_file()


def test_predict_runs_the_cached_engine_without_loading_the_checkpoint(tmp_path, monkeypatch):
    import os

    import pixelwise.checkpoint
    from pixelwise.checkpoint import make_checkpoint, save_checkpoint
    from pixelwise.cli import main
    from pixelwise.data import write_image

    ckpt = save_checkpoint(tmp_path / "fcn.pt", make_checkpoint(_tiny(5), class_names=["a", "b", "c"]))
    write_image(tmp_path / "img.png", torch.randint(0, 255, (40, 48, 3), dtype=torch.uint8).numpy())
    args = ["predict", str(tmp_path / "img.png"), "-c", str(ckpt)]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0  # channels_last, then stores the engine
    loaded = []
    original = pixelwise.checkpoint.load_model
    monkeypatch.setattr(pixelwise.checkpoint, "load_model", lambda *a, **k: loaded.append(a) or original(*a, **k))
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert loaded == []  # the checkpoint was not read: the engine came from the cache's file index
    stat = ckpt.stat()
    os.utime(ckpt, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))  # a rewritten file is not trusted
    assert main([*args, "--out", str(tmp_path / "c")]) == 0
    assert loaded  # the usual path loaded it (and ran the cached graph: same weights)
    assert (tmp_path / "c" / "img.png").read_bytes() == (tmp_path / "b" / "img.png").read_bytes()
