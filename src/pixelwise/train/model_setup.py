"""The model of a training run: built from the config, initialised from backbone weights or an
earlier checkpoint."""

from __future__ import annotations

import torch
from torch import nn

from pixelwise.checkpoint import load_checkpoint
from pixelwise.convention import get_convention
from pixelwise.errors import CheckpointError, PixelwiseError
from pixelwise.models.base import SegmentationModel
from pixelwise.models.fcn import init_from
from pixelwise.models.registry import create_model, get_entry
from pixelwise.train.config import MODEL_OPTIONS, TrainConfig
from pixelwise.train.console import say

ENSEMBLE_HELP = (
    "EDeconvNet is an ensemble of two separately trained models: train them with `pixelwise train "
    "--model fcn8s ...` and `pixelwise train --model deconvnet --recipe deconvnet ...`, then combine "
    "the two checkpoints with `pixelwise ensemble` (see docs/training.md)"
)


def model_kwargs(cfg: TrainConfig) -> dict:
    """Return the extra :func:`create_model` arguments of the run: ``cfg.model_options`` as given,
    the width floor, and what training options imply for DeconvNet (auxiliary scorers for deep
    supervision, the crop padding as the proposal padding at inference)."""
    family = get_entry(cfg.model).family
    if family == "ensemble":
        raise PixelwiseError(ENSEMBLE_HELP)
    kwargs = dict(cfg.model_options)
    if cfg.min_channels is not None:
        kwargs["min_channels"] = cfg.min_channels
    wrong = sorted(k for k in kwargs if k in MODEL_OPTIONS and MODEL_OPTIONS[k].family != family)
    if wrong:
        raise PixelwiseError(f"{', '.join(wrong)}: {MODEL_OPTIONS[wrong[0]].family} option(s); {cfg.model} is a "
                             f"{family} model")
    if family == "deconvnet":
        if cfg.deep_supervision:
            kwargs["deep_supervision"] = True
        if cfg.crop_pad != "mean":
            kwargs["proposal_pad"] = cfg.crop_pad  # inference pads proposals as training padded crops
    elif cfg.deep_supervision:
        raise PixelwiseError(f"--deep-supervision is a DeconvNet option; {cfg.model} has no decoder stages to supervise")
    return kwargs


def build_model(cfg: TrainConfig, num_classes: int) -> nn.Module:
    """Return the configured model (seeded with ``cfg.seed``), with its input convention set."""
    kwargs = model_kwargs(cfg)
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, num_classes=num_classes, width=cfg.width, **kwargs)
    model.input_convention = get_convention(cfg.convention)
    return model


def convention_of_backbone(cfg: TrainConfig) -> TrainConfig:
    """Return ``cfg`` with the input convention its backbone weights were trained with (the weights
    decide it; say so when it replaces ``--convention``). Called before any dataset is built."""
    from pixelwise.weights.backbone import backbone_weights_convention

    convention = backbone_weights_convention(cfg.backbone_weights)
    if convention.name != cfg.convention:
        say(f"--convention {cfg.convention} replaced by {convention.name}: the weights decide it")
        cfg = cfg.replace(convention=convention.name)
    return cfg


def apply_backbone_weights(model: nn.Module, path: str) -> None:
    """Load ImageNet VGG16 weights from ``path`` into the model's backbone
    (``pixelwise.weights.load_backbone_weights``), which also sets ``model.input_convention``."""
    from pixelwise.weights import load_backbone_weights

    report = load_backbone_weights(model, path)
    say(f"backbone weights {path}: {len(report.rows)} layers loaded, input convention "
        f"{report.input_convention.name}")


def apply_init_from(model: SegmentationModel, path: str) -> int:
    """Copy the matching tensors of checkpoint ``path`` into ``model``; return how many. Raises a
    one-line error when nothing matches; warns when the checkpoint's input convention differs."""
    ckpt = load_checkpoint(path)
    theirs = (ckpt.get("input_convention") or {}).get("name")
    ours = model.input_convention
    if theirs and ours is not None and theirs != ours.name:
        say(f"warning: --init-from {path} was trained with input convention {theirs!r} but this run uses "
            f"{ours.name!r}; pass --convention {theirs} unless you mean to retrain the first layers")
    copied = init_from(model, ckpt["state_dict"])
    total = len(model.state_dict())
    if not copied:
        spec = ckpt.get("model_spec", {})
        raise CheckpointError(
            f"--init-from {path}: no tensor matches the model ({spec.get('name')} width {spec.get('width')} "
            f"vs {model.pixelwise_spec['name']} width {model.pixelwise_spec['width']}); use a checkpoint of the "
            "same width and classes"
        )
    new = sorted(k for k in model.state_dict() if k not in set(copied))
    detail = f" ({len(new)} new: {', '.join(new[:6])}{' ...' if len(new) > 6 else ''})" if new else ""
    say(f"init-from {path}: copied {len(copied)} of {total} tensors{detail}")
    return len(copied)
