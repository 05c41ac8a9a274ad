"""hubconf.py at the repository root: thin, one entry per registered model, loadable by torch.hub."""

import ast
import dataclasses
import hashlib
import importlib.util
import sys
from pathlib import Path

import torch

import pixelwise
from loopback import server  # noqa: F401  (the fixture)
from pixelwise.download import Remote
from pixelwise.models import pretrained

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests" / "weights"))
import weights_fixtures as wf  # noqa: E402


def _entries() -> list[str]:
    """The names torch.hub lists: the module's public callables."""
    spec = importlib.util.spec_from_file_location("pixelwise_hubconf", REPO / "hubconf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.dependencies and all(isinstance(d, str) for d in module.dependencies)
    return sorted(n for n in dir(module) if callable(getattr(module, n)) and not n.startswith("_"))


def test_entries_are_the_models():
    assert _entries() == pixelwise.list_models()


def test_hubconf_is_thin():
    tree = ast.parse((REPO / "hubconf.py").read_text())
    assert not [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))]  # no logic of its own


def test_torch_hub_load_local(server, monkeypatch, tmp_path):
    monkeypatch.setenv("PIXELWISE_CACHE", str(tmp_path / "cache"))  # nothing converted by other tests
    model = torch.hub.load(str(REPO), "fcn8s", source="local", num_classes=3, width=1 / 32)
    assert model.num_classes == 3 and model.pixelwise_spec["name"] == "fcn8s"

    data = wf.release_caffemodel("fcn32s")
    server.files["fcn32s-heavy-pascal.caffemodel"] = data
    entry = pretrained.PRETRAINED["voc-fcn32s"]
    remote = Remote(server.url("fcn32s-heavy-pascal.caffemodel"), entry.remote.filename,
                    f"sha1:{hashlib.sha1(data).hexdigest()}")
    monkeypatch.setitem(pretrained.PRETRAINED, "voc-fcn32s", dataclasses.replace(entry, remote=remote))
    trained = torch.hub.load(str(REPO), "fcn32s", source="local", weights="voc-fcn32s")
    assert trained.card.weights == "voc-fcn32s" and trained.num_classes == 21
