"""The engine cache: an exported ONNX graph is kept on disk, so the export is paid once.

An entry is ``<cache>/engines/<key>.onnx`` (``<cache>`` = :func:`pixelwise.cache.cache_dir`). The
key hashes everything the graph depends on: the model's weights (every tensor's bytes, so a
changed checkpoint misses), its spec, the engine and exporter, the traced size, and the pixelwise,
torch, onnx and onnxruntime versions. Entries are written atomically (a temporary file in the
same folder, then renamed); an entry ONNX Runtime cannot load is reported in one line and
rebuilt. ``PIXELWISE_ENGINE_CACHE=0`` turns the cache off (every call exports, as before).
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from pixelwise.cache import cache_dir, settings_key
from pixelwise.errors import CheckpointError
from pixelwise.models.base import ModelInterface

CACHE_FORMAT = 1


def cache_enabled() -> bool:
    """Return False when ``PIXELWISE_ENGINE_CACHE`` is ``0``/``false``/``no``/``off``."""
    return os.environ.get("PIXELWISE_ENGINE_CACHE", "1").strip().lower() not in ("0", "false", "no", "off")


def weights_digest(model: nn.Module) -> str:
    """Return a hex digest of every tensor of ``model.state_dict()`` (names, dtypes, shapes, bytes)."""
    # sha1 hashes without copying at ~1.5 GB/s here (0.35 s for full-width FCN-8s); a cache key, not a signature
    digest = hashlib.sha1(usedforsecurity=False)
    for name, tensor in model.state_dict().items():
        t = tensor.detach().cpu().contiguous()
        digest.update(f"{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        if t.numel():
            digest.update(memoryview(t.reshape(-1).view(torch.uint8).numpy()))
    return digest.hexdigest()


def _versions() -> dict:
    from pixelwise import __version__
    from pixelwise.runtime import cpu_model

    # the stored graph is ONNX Runtime's optimised one, specific to the CPU it was optimised on
    versions = {"pixelwise": __version__, "torch": torch.__version__, "cpu": cpu_model()}
    for module in ("onnx", "onnxruntime"):
        try:
            versions[module] = __import__(module).__version__
        except ImportError:
            versions[module] = None
    return versions


def engine_key(model: ModelInterface, *, engine: str, exporter: str, side: int, extra: dict | None = None) -> str:
    """Return the cache key of ``model``'s graph for ``engine`` exported by ``exporter`` at ``side``;
    ``extra``: whatever else the graph depends on (an int8 graph: its calibration's digest and settings)."""
    settings = {"format": CACHE_FORMAT, "weights": weights_digest(model),
                "spec": model.pixelwise_spec, "class": type(model).__name__,
                # the graph's metadata holds these: a checkpoint that differs only in them gets its own entry
                "names": model.class_names, "colors": model.class_colors,
                "scale": float(model.input_scale),
                "engine": engine, "exporter": exporter, "side": side, **_versions()}
    if extra:
        settings["extra"] = extra
    return settings_key(settings, length=24)


def entry_path(key: str) -> Path:
    """Return where the entry ``key`` lives (it may not exist)."""
    return cache_dir() / "engines" / f"{key}.onnx"


def has_entry(key: str) -> bool:
    """Return True when the cache holds an entry for ``key`` (and the cache is on)."""
    return cache_enabled() and entry_path(key).is_file()


Loader = Callable[..., object]
"""``load(path, optimized=False, save_optimized=None)`` -> engine (see ``OnnxModel``)."""


def load_or_build(key: str, export: Callable[[Path], None], load: Loader, *, rebuild: bool = False):
    """Return ``(engine, built)``: the cached entry ``key`` loaded as it is (it holds ONNX
    Runtime's optimised graph) when there is a usable one (and not ``rebuild``); else
    ``export(path)`` to a temporary file, loaded with its optimised graph saved as the new entry
    (``built`` True). A cache folder that cannot be written falls back to the temporary file, with
    one line saying so."""
    path = entry_path(key)
    if path.is_file() and not rebuild:
        try:
            return load(path, optimized=True), False
        except CheckpointError as exc:
            print(f"pixelwise: cached engine {path} is unusable ({exc}); rebuilding it", file=sys.stderr)
    with tempfile.TemporaryDirectory(prefix="pixelwise-onnx-") as folder:
        raw = Path(folder) / "model.onnx"
        export(raw)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{key}-", suffix=".onnx", dir=path.parent)
            os.close(fd)
        except OSError as exc:
            print(f"pixelwise: engine cache {path.parent} cannot be written ({exc.strerror or exc}); the engine "
                  "is not kept", file=sys.stderr)
            return load(raw), True
        try:
            engine = load(raw, save_optimized=tmp)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    return engine, True


def _file_index(checkpoint: str | os.PathLike, engine: str = "onnxruntime") -> Path:
    """Where the engine key of checkpoint file ``checkpoint`` is remembered: named by its resolved
    path, size and modification time (so a rewritten file misses) and, but for ``onnxruntime``, the
    engine."""
    path = Path(checkpoint).resolve()
    stat = path.stat()
    identity = f"{path}|{stat.st_size}|{stat.st_mtime_ns}"
    tag = "" if engine == "onnxruntime" else f"{engine}-"
    digest = hashlib.sha1(identity.encode(), usedforsecurity=False).hexdigest()[:24]
    return cache_dir() / "engines" / f"file-{tag}{digest}.json"


def write_json(path: Path, data: dict) -> None:
    """Write ``data`` to ``path`` as JSON, atomically (a temporary file in the same folder, renamed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".json", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def read_json(path: Path) -> dict | None:
    """Return the JSON object at ``path``, or None when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def remember_checkpoint(checkpoint: str | os.PathLike, key: str | None, *, engine: str = "onnxruntime",
                        **info) -> None:
    """Remember that checkpoint file ``checkpoint`` has the ``engine`` entry ``key`` (None: none,
    ``info`` says why), with ``info`` (JSON values) beside it; atomically. A cache that cannot be
    written is skipped silently: this only saves time."""
    try:
        write_json(_file_index(checkpoint, engine), {"key": key, "checkpoint": str(Path(checkpoint).resolve()), **info})
    except OSError:
        pass


def checkpoint_record(checkpoint: str | os.PathLike, engine: str = "onnxruntime") -> dict | None:
    """Return what :func:`remember_checkpoint` stored for checkpoint file ``checkpoint`` (unchanged
    since) and ``engine``, or None (nothing, or the cache is off)."""
    if not cache_enabled():
        return None
    try:
        return read_json(_file_index(checkpoint, engine))
    except OSError:
        return None


def entry_for_checkpoint(checkpoint: str | os.PathLike, engine: str = "onnxruntime") -> Path | None:
    """Return the ``engine`` entry remembered for checkpoint file ``checkpoint`` (unchanged since),
    or None: lets a caller run the cached engine without loading the checkpoint at all."""
    record = checkpoint_record(checkpoint, engine)
    if not record or not isinstance(record.get("key"), str):
        return None
    path = entry_path(record["key"])
    return path if path.is_file() else None
