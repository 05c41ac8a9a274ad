"""Downloaded weight files: ``<cache>/weights/`` holds each file of
:data:`pixelwise.models.pretrained.PRETRAINED` under its published name (downloaded once, checked
against its published hash or the SHA-256 recorded at its first download), and names such as
``imagenet`` are what ``--backbone-weights`` takes besides a path."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from pixelwise.cache import cache_dir
from pixelwise.download import TIMEOUT_S, fetch, locked
from pixelwise.errors import CheckpointError, PixelwiseError
from pixelwise.fileio import atomic_file
from pixelwise.models.pretrained import Weights, find_weights, get_weights, weights_names


def weights_dir() -> Path:
    """Return the folder of downloaded and converted weights (``<cache>/weights``; not created here)."""
    return cache_dir() / "weights"


def weights_file(name: str | Weights, *, from_file: str | os.PathLike | None = None, url: str | None = None,
                 timeout: float = TIMEOUT_S, progress: bool | None = None) -> Path:
    """Return the checked file of weights ``name`` in :func:`weights_dir`: there already, copied
    from ``from_file`` (a file downloaded by hand), or downloaded (from ``url``,
    ``$PIXELWISE_MIRROR`` or its own URL). One line :class:`~pixelwise.download.DownloadError`
    when it cannot be had or does not match its hash."""
    entry = get_weights(name)
    folder = weights_dir()
    with locked(f"weights-{entry.name}"):
        found = fetch(entry.remote, folder, from_file=from_file, url=url, timeout=timeout, progress=progress,
                      record=True)
        target = folder / entry.remote.filename
        if found != target and not target.is_file():  # a file given with --from: the cache keeps a copy
            with atomic_file(target) as tmp:
                shutil.copyfile(found, tmp)
        return target


def resolve_backbone_weights(value: str | os.PathLike, *, progress: bool | None = None) -> Path:
    """Return the file of a ``--backbone-weights`` value: an existing file as it is, or the name of
    ImageNet weights (``imagenet``, ``vgg16``, ``vgg16-caffe``, ...), downloaded once. A one-line
    error for anything else."""
    path = Path(value).expanduser()
    if path.is_file():
        return path
    entry = find_weights(str(value))
    if entry is None:
        backbones = [n for n in weights_names(aliases=True) if find_weights(n).is_backbone]
        raise CheckpointError(f"{value}: no such backbone weights file, nor a weights name "
                              f"({', '.join(backbones)}; see `pixelwise weights list`)")
    if not entry.is_backbone:
        raise PixelwiseError(f"{value} are trained {entry.model} weights, not an ImageNet backbone; start from them "
                             f"with --init-from (after `pixelwise weights download {entry.name}`)")
    return weights_file(entry, progress=progress)


__all__ = ["resolve_backbone_weights", "weights_dir", "weights_file"]
