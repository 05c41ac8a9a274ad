"""The model zoo (pixelwise.weights.zoo, files, models.pretrained): release files from a loopback
server, checked, converted once, loaded by name (create_model(weights=), --backbone-weights NAME)."""

from __future__ import annotations

import dataclasses
import hashlib
import io

import pytest
import torch

import pixelwise
import weights_fixtures as wf
from loopback import server  # noqa: F401  (the fixture)
from pixelwise.checkpoint import load_checkpoint
from pixelwise.download import DownloadError, Remote
from pixelwise.errors import CheckpointError, PixelwiseError
from pixelwise.models import pretrained
from pixelwise.weights import load_backbone_weights
from pixelwise.weights.convert import convert_weights
from pixelwise.weights.files import resolve_backbone_weights, weights_dir
from pixelwise.weights.zoo import checkpoint_path, pretrained_checkpoint, weights_rows

WIDTH = 1 / 32


@pytest.fixture(autouse=True)
def _own_cache(tmp_path, monkeypatch):
    """A cache of this test's own: what another test downloaded or converted is not there."""
    monkeypatch.setenv("PIXELWISE_CACHE", str(tmp_path / "cache"))


def caffemodel_bytes(arch: str = "fcn8s", seed: int = 0) -> bytes:
    """A width-1/32, 21-class FCN caffemodel in the release's layer layout."""
    return wf.release_caffemodel(arch, WIDTH, 21, seed)


def torchvision_bytes() -> bytes:
    """A width-1/32 torchvision VGG16 state dict, as vgg16-397923af.pth is laid out."""
    buffer = io.BytesIO()
    torch.save(wf.tv_state(WIDTH, bn=False), buffer)
    return buffer.getvalue()


def serve_weights(server, monkeypatch, name: str, data: bytes, *, published: bool = True) -> pretrained.Weights:
    """Serve ``data`` as weights ``name``'s file and point the table at it (its SHA-1, or no hash)."""
    entry = pretrained.PRETRAINED[name]
    filename = entry.remote.filename
    server.files[filename] = data
    digest = f"sha1:{hashlib.sha1(data).hexdigest()}" if published else None
    new = dataclasses.replace(entry, remote=Remote(server.url(filename), filename, digest, len(data)))
    monkeypatch.setitem(pretrained.PRETRAINED, name, new)
    return new


def test_trained_weights_download_convert_and_load(server, monkeypatch, tmp_path):
    data = caffemodel_bytes()
    serve_weights(server, monkeypatch, "voc-fcn8s", data)
    path = pretrained_checkpoint("voc-fcn8s", progress=False)
    assert path == checkpoint_path("voc-fcn8s") and not (weights_dir() / "fcn8s-heavy-pascal.caffemodel").exists()
    ckpt = load_checkpoint(path)
    assert ckpt["weights"] == "voc-fcn8s" and ckpt["class_names"][15] == "person"
    assert ckpt["config"]["weights"]["sha256"] == hashlib.sha256(data).hexdigest()
    model = pixelwise.create_model("fcn8s", weights="voc-fcn8s")
    assert model.card.weights == "voc-fcn8s" and not model.training and model.num_classes == 21
    source = tmp_path / "fcn8s.caffemodel"
    source.write_bytes(data)
    reference, _ = convert_weights(source)
    x = torch.randn(1, 3, 40, 40)
    with torch.no_grad():
        assert torch.equal(model(x), reference(x))
    assert pixelwise.create_model("fcn8s", weights="voc-fcn8s", num_classes=21) is not None
    assert server.names() == ["fcn8s-heavy-pascal.caffemodel"]  # converted once, then read from the cache
    with pytest.raises(PixelwiseError, match="weights voc-fcn8s are for fcn8s, not fcn32s .*voc-fcn32s"):
        pixelwise.create_model("fcn32s", weights="voc-fcn8s")
    with pytest.raises(PixelwiseError, match="weights voc-fcn8s fix num_classes=21; got num_classes=5"):
        pixelwise.create_model("fcn8s", weights="voc-fcn8s", num_classes=5)
    with pytest.raises(PixelwiseError, match="unknown weights 'voc-fcn9s'"):
        pixelwise.create_model("fcn8s", weights="voc-fcn9s")


def test_unpublished_hash_is_recorded_then_enforced(server, monkeypatch):
    serve_weights(server, monkeypatch, "voc-fcn16s", caffemodel_bytes("fcn16s"), published=False)
    pretrained_checkpoint("voc-fcn16s", progress=False, keep_source=True)
    row = next(r for r in weights_rows() if r["name"] == "voc-fcn16s")
    assert row["state"] == "converted" and row["hash"].endswith("(recorded)")
    (weights_dir() / "fcn16s-heavy-pascal.caffemodel").unlink()
    server.files["fcn16s-heavy-pascal.caffemodel"] = caffemodel_bytes("fcn16s", seed=1)  # changed upstream
    with pytest.raises(DownloadError, match="does not match the recorded sha256") as err:
        pretrained_checkpoint("voc-fcn16s", progress=False, force=True)
    assert "\n" not in str(err.value)


def test_a_file_of_another_model_is_refused_by_the_layer_mapping(server, monkeypatch):
    serve_weights(server, monkeypatch, "voc-fcn8s-atonce", caffemodel_bytes("fcn32s"), published=False)
    with pytest.raises(CheckpointError, match="score_pool4"):
        pretrained_checkpoint("voc-fcn8s-atonce", progress=False)
    assert not checkpoint_path("voc-fcn8s-atonce").exists()


def test_backbone_weights_by_name(server, monkeypatch):
    data = torchvision_bytes()
    entry = serve_weights(server, monkeypatch, "vgg16", data)
    monkeypatch.setitem(pretrained.PRETRAINED, "vgg16",
                        dataclasses.replace(entry, remote=dataclasses.replace(
                            entry.remote, hash=f"sha256:{hashlib.sha256(data).hexdigest()}")))
    model = pixelwise.create_model("fcn32s", weights="imagenet", num_classes=3, width=WIDTH, min_channels=1)
    state = torch.load(io.BytesIO(data), weights_only=True)
    assert torch.equal(model.backbone.conv1_1.weight, state["features.0.weight"])
    assert model.input_convention.name == "torchvision_rgb"
    assert resolve_backbone_weights("vgg16") == weights_dir() / "vgg16-397923af.pth"
    other = pixelwise.create_model("fcn8s", num_classes=3, width=WIDTH, min_channels=1)
    assert load_backbone_weights(other, "imagenet").rows  # the --backbone-weights path
    assert server.names() == ["vgg16-397923af.pth"]
    with pytest.raises(PixelwiseError, match="trained fcn8s weights, not an ImageNet backbone"):
        resolve_backbone_weights("voc-fcn8s")
    with pytest.raises(CheckpointError, match="no such backbone weights file, nor a weights name .*imagenet"):
        resolve_backbone_weights("missing.pth")


def test_the_table():
    names = pretrained.weights_names()
    assert {"vgg16", "vgg16-caffe", "voc-fcn32s", "voc-fcn16s", "voc-fcn8s", "voc-fcn8s-atonce", "fcn-8s-pascal",
            "voc-deconvnet"} <= set(names)
    assert pretrained.get_weights("imagenet").remote.filename == "vgg16-397923af.pth"
    assert pretrained.PRETRAINED["voc-fcn8s"].remote.url == "http://dl.caffe.berkeleyvision.org/fcn8s-heavy-pascal.caffemodel"
    assert pretrained.PRETRAINED["fcn-8s-pascal"].convert == {"layout": "fcn-pascal"}
    for entry in pretrained.PRETRAINED.values():
        assert entry.model is None or entry.model in pixelwise.list_models()
    assert pixelwise.list_models(pretrained=True) == ["deconvnet", "fcn16s", "fcn32s", "fcn8s", "fcn8s_atonce"]
