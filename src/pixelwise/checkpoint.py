"""Checkpoints: one format for training, conversion (Caffe/torchvision) and inference.

A checkpoint is a dict saved with ``torch.save``::

    {"format": "pixelwise.checkpoint", "version": 1,
     "model_spec": {"name": "fcn8s", "num_classes": 21, "width": 1.0, ...},  # create_model args
     "state_dict": {...},
     "input_convention": {...},          # InputConvention.to_dict()
     "class_names": [...] | None,
     "class_colors": [[r, g, b], ...] | None,   # the dataset's class colours (None: VOC's)
     "input_scale": 1.0,                  # images are resized by this before the network runs
     "weights": "voc-fcn8s" | None,       # the published weights it carries (models.pretrained)
     "config": {...} | None,             # the full training config
     "training": {...} | None,           # optimiser, scheduler, scaler, RNG states, step
     "metrics": {...} | None,
     "pixelwise_version": "0.1.0"}

Writes are atomic (temporary file in the same folder, fsync, rename), so a crash never leaves a
half-written checkpoint under the real name; a path that cannot be written raises
:class:`pixelwise.fileio.WriteError` (``cannot write PATH: REASON``).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pixelwise.convention import InputConvention, get_convention
from pixelwise.errors import CheckpointError, first_line, one_line
from pixelwise.fileio import atomic_file  # noqa: F401  (imported from here by older code)
from pixelwise.models.base import ModelInterface

FORMAT = "pixelwise.checkpoint"
VERSION = 1


def make_checkpoint(
    model: ModelInterface,
    *,
    input_convention: InputConvention | None = None,
    class_names: list[str] | None = None,
    config: dict | None = None,
    training: dict | None = None,
    metrics: dict | None = None,
) -> dict:
    """Return a checkpoint dict for a model built by :func:`pixelwise.create_model`."""
    from pixelwise import __version__

    spec = model.pixelwise_spec if isinstance(model, ModelInterface) else None
    if spec is None:
        raise CheckpointError("model was not built by pixelwise.create_model; cannot record its spec")
    convention = input_convention or model.input_convention
    return {
        "format": FORMAT,
        "version": VERSION,
        "model_spec": dict(spec),
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "input_convention": convention.to_dict(),
        "class_names": list(class_names) if class_names is not None else None,
        "class_colors": model.class_colors,
        "input_scale": float(model.input_scale),
        "weights": model.card.weights,
        "config": config,
        "training": training,
        "metrics": metrics,
        "pixelwise_version": __version__,
    }


def save_checkpoint(path: str | os.PathLike, checkpoint: dict) -> Path:
    """Write ``checkpoint`` to ``path`` atomically (temporary file, fsync, rename); return the path."""
    with atomic_file(path) as tmp, open(tmp, "wb") as f:
        torch.save(checkpoint, f)
        f.flush()
        os.fsync(f.fileno())
    return Path(path)


def load_checkpoint(path: str | os.PathLike, *, map_location: Any = "cpu") -> dict:
    """Read and validate a checkpoint; raise :class:`CheckpointError` with one clear line if bad."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.stat().st_size == 0:
        raise CheckpointError(f"{path}: checkpoint file is empty")
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, ValueError, OSError) as exc:
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or corrupt?): {first_line(exc)}"
        ) from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT:
        raise CheckpointError(
            f"{path}: not a pixelwise checkpoint (convert Caffe/torchvision weights with "
            "`pixelwise convert`)"
        )
    if ckpt.get("version", 0) > VERSION:
        raise CheckpointError(
            f"{path}: checkpoint version {ckpt['version']} is newer than this pixelwise supports "
            f"({VERSION}); upgrade pixelwise"
        )
    return ckpt


def model_from_checkpoint(ckpt: dict, *, source: str = "checkpoint") -> nn.Module:
    """Build the model a checkpoint describes and load its weights; returns it in train mode."""
    from pixelwise.models.registry import create_model

    spec = dict(ckpt["model_spec"])
    name = spec.pop("name")
    model = create_model(name, **spec)
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{source}: weights do not fit model {name!r}: {one_line(exc)}") from None
    model.input_convention = get_convention(ckpt.get("input_convention") or "caffe_bgr")
    model.class_names = ckpt.get("class_names")
    model.class_colors = ckpt.get("class_colors")
    model.input_scale = ckpt.get("input_scale") or 1.0
    model.card = replace(model.card, weights=ckpt.get("weights"))
    return model


def load_model(path: str | os.PathLike, *, map_location: Any = "cpu") -> nn.Module:
    """Load a checkpoint file and return its model in eval mode, with ``.input_convention`` and
    ``.class_names`` set."""
    model = model_from_checkpoint(load_checkpoint(path, map_location=map_location), source=str(path))
    return model.eval()
