"""The model zoo: published weights (:data:`pixelwise.models.pretrained.PRETRAINED`) downloaded
once, converted once and loaded by name.

- :func:`pretrained_checkpoint`: the pixelwise checkpoint of trained weights (``voc-fcn8s``),
  ``<cache>/weights/<name>.pt``: the release file is downloaded (:func:`~pixelwise.weights.files.weights_file`),
  converted by :func:`~pixelwise.weights.convert.convert_weights` (whose layer mapping checks every
  shape), checked for its model and classes, and saved with the weights' name on its card and
  their provenance (URL, hash, SHA-256) in its config; the release file is then deleted unless
  ``keep_source`` (its recorded SHA-256 stays).
- :func:`create_model_with_weights`: :func:`pixelwise.create_model` with ``weights=``: trained
  weights of that model, or ImageNet backbone weights that initialise it. The torch.hub builders
  (:mod:`pixelwise.hub`) call it.
- :func:`weights_rows`: what ``pixelwise weights list`` prints.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

from torch import nn

from pixelwise.checkpoint import load_model, make_checkpoint, save_checkpoint
from pixelwise.download import TIMEOUT_S, about, file_digest, locked, recorded_hash
from pixelwise.errors import PixelwiseError
from pixelwise.models.pretrained import PRETRAINED, Weights, get_weights, weights_for
from pixelwise.models.registry import create_model, get_entry
from pixelwise.weights.backbone import load_backbone_weights
from pixelwise.weights.convert import convert_weights
from pixelwise.weights.files import weights_dir, weights_file


def checkpoint_path(name: str | Weights) -> Path:
    """Return where the converted checkpoint of trained weights ``name`` is kept (may not exist)."""
    return weights_dir() / f"{get_weights(name).name}.pt"


def _class_names(entry: Weights, num_classes: int) -> list[str] | None:
    if entry.classes == "voc" and num_classes == 21:
        from pixelwise.data.palette import VOC_CLASSES

        return list(VOC_CLASSES)
    return None


def _provenance(entry: Weights, source: Path) -> dict:
    """What the checkpoint's config records about where its weights come from."""
    return {"name": entry.name, "url": entry.remote.url, "file": entry.remote.filename, "hash": entry.remote.hash,
            "sha256": file_digest(source), "source": entry.source}


def convert_release(entry: Weights, source: Path, target: Path) -> Path:
    """Convert the release file ``source`` of ``entry`` into a checkpoint at ``target``; the model
    and class count must be the entry's (every layer's shape is checked by the conversion)."""
    model, report = convert_weights(source, arch=entry.model, **entry.convert)
    if report.arch != entry.model or (entry.num_classes and report.num_classes != entry.num_classes):
        raise PixelwiseError(f"{source}: holds {report.arch} with {report.num_classes} classes, not {entry.model} with "
                             f"{entry.num_classes} as {entry.name} should; delete it and download it again")
    model.card = replace(model.card, weights=entry.name)
    config = {"convert": {"source": entry.remote.filename, "source_format": report.source_format,
                          "layout": report.layout, **entry.convert},
              "weights": _provenance(entry, source)}
    checkpoint = make_checkpoint(model, input_convention=report.input_convention,
                                 class_names=_class_names(entry, report.num_classes), config=config)
    return save_checkpoint(target, checkpoint)


def pretrained_checkpoint(name: str | Weights, *, from_file: str | os.PathLike | None = None, url: str | None = None,
                          timeout: float = TIMEOUT_S, progress: bool | None = None, keep_source: bool = False,
                          force: bool = False) -> Path:
    """Return the checkpoint of trained weights ``name``, downloading and converting them the first
    time (``force``: again). ``from_file``, ``url``: see :func:`~pixelwise.weights.files.weights_file`."""
    entry = get_weights(name)
    if entry.is_backbone:
        raise PixelwiseError(f"{entry.name} are ImageNet backbone weights, not a trained model: pass them as "
                             f"weights= with a model name, or --backbone-weights {entry.name} to train")
    target = checkpoint_path(entry)
    with locked(f"checkpoint-{entry.name}"):
        if target.is_file() and not force and from_file is None:
            return target
        source = weights_file(entry, from_file=from_file, url=url, timeout=timeout, progress=progress)
        convert_release(entry, source, target)
        if not keep_source:
            source.unlink(missing_ok=True)
    return target


def _check_fixed(name: str, spec: dict, kwargs: dict) -> None:
    """Trained weights fix the builder's arguments: any given one must equal the checkpoint's."""
    differ = {k: v for k, v in kwargs.items() if spec.get(k, v) != v or k not in spec}
    if differ:
        fixed = ", ".join(f"{k}={spec[k]!r}" for k in differ if k in spec) or "no other option"
        raise PixelwiseError(f"weights {name} fix {fixed}; got {', '.join(f'{k}={v!r}' for k, v in differ.items())} "
                             "(train or convert your own for other settings)")


def create_model_with_weights(name: str, *, weights: str | Weights | None = None, progress: bool | None = None,
                              **kwargs) -> nn.Module:
    """Build model ``name`` with ``weights``: None (random initialisation, as
    :func:`pixelwise.models.create_model`), trained weights of that model (``voc-fcn8s`` for
    ``fcn8s``; returned in eval mode, the other arguments fixed by them), or ImageNet backbone weights
    (``vgg16``/``imagenet``, ``vgg16-caffe``) that initialise its VGG16 backbone(s). Weights are
    downloaded (and converted) once into the cache."""
    if weights is None:
        return create_model(name, **kwargs)
    entry = get_weights(weights)
    get_entry(name)  # an unknown model name fails first
    if entry.is_backbone:
        model = create_model(name, **kwargs)
        load_backbone_weights(model, weights_file(entry, progress=progress))
        return model
    if entry.model != name:
        own = ", ".join(w.name for w in weights_for(name)) or "none"
        raise PixelwiseError(f"weights {entry.name} are for {entry.model}, not {name} (trained weights of {name}: "
                             f"{own}; any model takes vgg16 or vgg16-caffe)")
    model = load_model(pretrained_checkpoint(entry, progress=progress))
    _check_fixed(entry.name, model.pixelwise_spec or {}, kwargs)
    return model


def weights_state(entry: Weights) -> str:
    """Where ``entry`` is in the cache: ``converted`` (checkpoint), ``downloaded`` (file), or ``-``."""
    if not entry.is_backbone and checkpoint_path(entry).is_file():
        return "converted"
    return "downloaded" if (weights_dir() / entry.remote.filename).is_file() else "-"


def weights_rows() -> list[dict]:
    """Return one dict per weights entry: name, model, classes, size, hash, state, url, source."""
    rows = []
    for entry in PRETRAINED.values():
        recorded = recorded_hash(weights_dir() / entry.remote.filename)
        rows.append({
            "name": entry.name, "aliases": list(entry.aliases), "model": entry.model or "any (backbone)",
            "classes": f"{entry.num_classes} {entry.classes}" if entry.num_classes else entry.classes,
            "size": about(entry.remote.size), "file": entry.remote.filename,
            "hash": entry.remote.hash or (f"{recorded} (recorded)" if recorded else "recorded at first download"),
            "state": weights_state(entry), "url": entry.remote.url, "source": entry.source,
        })
    return rows


__all__ = ["checkpoint_path", "convert_release", "create_model_with_weights", "pretrained_checkpoint",
           "weights_rows", "weights_state"]
