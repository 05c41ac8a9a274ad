"""The benchmarks' peer: pytorch-fcn (``torchfcn``), run on the same weights as pixelwise's FCN-8s.

torchfcn is never a pixelwise dependency. :func:`load_torchfcn` uses an installed torchfcn when it
imports; otherwise it fetches the sdist from the package registry once (``pip download --no-deps``,
checked against its SHA-256) into ``<cache>/peers/`` (:func:`pixelwise.cache.cache_dir`) and keeps
only its model files, unchanged. The published package cannot be imported as a whole here: its
``__init__`` imports its datasets and trainer (scikit-image, pytz, distutils, the ``fcn`` package)
and ``models/vgg.py`` imports torchvision. The FCN models need only torch, numpy and ``fcn`` (for
their pretrained downloads), so the cached copy is a ``torchfcn`` package holding
``models/fcn32s.py``, ``fcn16s.py`` and ``fcn8s.py`` with two generated ``__init__.py`` files, and
``fcn`` is replaced by an empty placeholder when it is not installed.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import subprocess
import sys
import tarfile
import types
from pathlib import Path

import torch
from torch import nn

from pixelwise.cache import cache_dir
from pixelwise.download import check_file, publish_dir, staging
from pixelwise.errors import PixelwiseError, first_line
from pixelwise.models.base import SegmentationModel

TORCHFCN_VERSION = "1.9.7"
TORCHFCN_SHA256 = "372fb22fee753a4a21daf078f25510e6140e0a3951a7bfec1bd0ce870eb27165"  # the PyPI sdist
MODEL_FILES = ("fcn32s.py", "fcn16s.py", "fcn8s.py")  # need torch, numpy and `fcn` only
PIP_TIMEOUT_S = 300
MODELS_INIT = (
    '"""Written by pixelwise.bench.peer: torchfcn\'s FCN models only (its vgg.py needs torchvision)."""\n'
    "from .fcn32s import FCN32s\nfrom .fcn16s import FCN16s\nfrom .fcn8s import FCN8s, FCN8sAtOnce\n"
)
PACKAGE_INIT = '"""Written by pixelwise.bench.peer: torchfcn without its datasets and trainer."""\n'


def peer_root() -> Path:
    """Return the folder that holds the cached copy (a ``torchfcn`` package inside; may not exist)."""
    return cache_dir() / "peers" / f"torchfcn-{TORCHFCN_VERSION}"


def _copy_complete(root: Path) -> bool:
    models = root / "torchfcn" / "models"
    return (models / "__init__.py").is_file() and all((models / f).is_file() for f in MODEL_FILES)


def _download_sdist(dest: Path) -> Path:
    """Download torchfcn's sdist into ``dest`` with pip; return its path (checked against the pin)."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "--quiet",
           "--retries", "1", "--timeout", "20", "-d", str(dest), f"torchfcn=={TORCHFCN_VERSION}"]
    if importlib.util.find_spec("setuptools") is not None:
        # pip prepares an sdist's metadata; without isolation it skips installing setuptools (6.5 -> 1.8 s)
        cmd.insert(5, "--no-build-isolation")
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PixelwiseError(f"pip download torchfcn=={TORCHFCN_VERSION} failed: {exc}") from None
    found = sorted(dest.glob("torchfcn-*.tar.gz"))
    if proc.returncode != 0 or not found:
        lines = [ln for ln in (proc.stderr + proc.stdout).splitlines() if ln.strip() and "WARNING" not in ln]
        raise PixelwiseError(f"pip download torchfcn=={TORCHFCN_VERSION} failed (offline?): "
                             f"{(lines or ['no output'])[-1].strip()[:200]}")
    check_file(found[0], f"sha256:{TORCHFCN_SHA256}", what="pinned")
    return found[0]


def _extract_models(sdist: Path, root: Path) -> None:
    """Write the model files (unchanged), the licence and the two generated ``__init__`` into ``root``."""
    top = f"torchfcn-{TORCHFCN_VERSION}"
    wanted = {f"{top}/torchfcn/models/{f}": root / "torchfcn" / "models" / f for f in MODEL_FILES}
    wanted[f"{top}/LICENSE"] = root / "LICENSE"
    with tarfile.open(sdist, "r:gz") as tar:
        for name, target in wanted.items():
            try:
                member = tar.extractfile(name)  # read by name: nothing else of the archive touches the disk
            except KeyError:
                member = None
            if member is None:
                raise PixelwiseError(f"{sdist.name}: {name} is not a file")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(member.read())
    (root / "torchfcn" / "__init__.py").write_text(PACKAGE_INIT)
    (root / "torchfcn" / "models" / "__init__.py").write_text(MODELS_INIT)


def ensure_torchfcn_copy() -> Path:
    """Return :func:`peer_root` after making sure it holds the model files (downloads them once).

    Raises :class:`PixelwiseError` (one line) when they cannot be obtained, e.g. offline.
    """
    root = peer_root()
    if _copy_complete(root):
        return root
    with staging(root.parent) as stage:
        staged = stage / "copy"
        _extract_models(_download_sdist(stage), staged)
        publish_dir(staged, root, complete=_copy_complete)  # atomic; a copy another process finished is kept
    return root


def _installed_models() -> types.ModuleType | None:
    """Return an installed torchfcn's ``models`` module when the package imports, else None (also
    when the only torchfcn found is the cached copy, on ``sys.path`` after :func:`load_torchfcn`)."""
    spec = importlib.util.find_spec("torchfcn")
    if spec is None or (spec.origin and Path(spec.origin).resolve().is_relative_to(peer_root().resolve())):
        return None
    try:
        models = importlib.import_module("torchfcn.models")
    except Exception:  # e.g. its datasets need scikit-image, its vgg torchvision
        _forget("torchfcn")
        return None
    return models if hasattr(models, "FCN8s") else None


def _forget(package: str) -> None:
    for name in [n for n in sys.modules if n == package or n.startswith(package + ".")]:
        del sys.modules[name]


def _fcn_placeholder() -> None:
    """Make ``import fcn`` succeed: torchfcn's models import it for their pretrained downloads only."""
    try:
        import fcn  # noqa: F401
    except Exception:
        stub = types.ModuleType("fcn", "placeholder for the fcn package (pixelwise.bench.peer)")

        def cached_download(*args, **kwargs):
            raise PixelwiseError("torchfcn's pretrained downloads need the fcn package (pip install fcn)")

        stub.data = types.SimpleNamespace(cached_download=cached_download)  # all torchfcn's models use of it
        sys.modules["fcn"] = stub


def torchfcn_location() -> Path | None:
    """Return the folder to put first on ``sys.path`` to import the cached torchfcn copy, or None
    when an installed torchfcn imports (then a plain ``import torchfcn`` is the peer)."""
    if _installed_models() is not None:
        return None
    return ensure_torchfcn_copy()


@functools.lru_cache(maxsize=1)
def load_torchfcn() -> types.ModuleType:
    """Return torchfcn's ``models`` module (``FCN8s``, ``FCN16s``, ``FCN32s``, ``FCN8sAtOnce``).

    Raises :class:`PixelwiseError` in one line when torchfcn can be neither imported nor fetched.
    """
    installed = _installed_models()
    if installed is not None:
        return installed
    root = str(ensure_torchfcn_copy())
    if root not in sys.path:
        sys.path.insert(0, root)
    _forget("torchfcn")
    _fcn_placeholder()
    try:
        return importlib.import_module("torchfcn.models")
    except Exception as exc:
        raise PixelwiseError(f"cannot import torchfcn from {root}: {type(exc).__name__}: {exc}") from None


@functools.lru_cache(maxsize=1)
def torchfcn_unavailable() -> str | None:
    """Return why torchfcn cannot be used here (one line), or None when :func:`load_torchfcn` works."""
    try:
        load_torchfcn()
    except PixelwiseError as exc:
        return str(exc)
    return None


def torchfcn_state_dict(model: SegmentationModel) -> dict:
    """Return ``model``'s (a pixelwise FCN-8s) tensors under torchfcn's names: the backbone's
    without their ``backbone.`` prefix, the score and upsampling layers as they are."""
    prefix = f"{model.backbone_prefix}."
    return {k.removeprefix(prefix): v for k, v in model.state_dict().items()}


def torchfcn_fcn8s(model: SegmentationModel) -> nn.Module:
    """Return a ``torchfcn.models.FCN8s`` carrying the weights of the pixelwise FCN-8s ``model``:
    fp32, NCHW, eval mode (run it under ``torch.no_grad``, as a pytorch-fcn user does).

    Raises :class:`PixelwiseError` when ``model`` is not a paper-width FCN-8s (torchfcn has VGG16's
    fixed channel counts) or torchfcn is unavailable.
    """
    spec = dict(model.pixelwise_spec or {})
    plain = spec.get("name") == "fcn8s" and float(spec.get("width", 1.0)) == 1.0 and spec.get("pad100", True)
    if not plain or set(spec) - {"name", "num_classes", "width", "pad100"}:  # other options change the net
        raise PixelwiseError(f"torchfcn's FCN8s needs a width-1.0 fcn8s with pad 100, got {spec or type(model).__name__}")
    with torch.device("meta"):  # no init work: every tensor is assigned below
        peer = load_torchfcn().FCN8s(n_class=model.num_classes)
    own = {k: v.detach().to(torch.float32, memory_format=torch.contiguous_format, copy=True)
           for k, v in torchfcn_state_dict(model).items()}
    try:
        peer.load_state_dict(own, strict=True, assign=True)
    except RuntimeError as exc:
        raise PixelwiseError(f"pixelwise FCN-8s weights do not map onto torchfcn.FCN8s: {first_line(exc)}") from None
    return peer.eval()
