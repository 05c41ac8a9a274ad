"""The training step and the evaluation loop: plain functions, no hidden state.

Loss normalisation (``reduction``):

- ``mean``: cross-entropy averaged over the valid (not ignored) pixels of the forward batch
  (Caffe ``normalize: true``, the CVPR paper);
- ``sum``: cross-entropy summed over the pixels of each image, averaged over the images of the
  forward batch (Caffe ``normalize: false``; with the heavy recipe's batch 1 it is the plain sum).

With gradient accumulation the ``iter_size`` forward passes' losses are averaged, as Caffe does.

How the steps and the evaluations compute is fixed for a run: :class:`StepSettings` and
:class:`EvalSettings`, built once (:func:`pixelwise.train.run.build_run`) and passed whole.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from pixelwise.evaluator import Evaluator
from pixelwise.inference.predict import full_size
from pixelwise.runtime import autocast


def segmentation_loss(logits: torch.Tensor, target: torch.Tensor, *, reduction: str = "mean",
                      ignore_index: int = 255) -> torch.Tensor:
    """Return the scalar cross-entropy of ``(N, C, H, W)`` logits against ``(N, H, W)`` labels.

    ``mean``: over valid pixels (0 if there is none, never NaN); ``sum``: summed per image, averaged
    over the ``N`` images.
    """
    logits = logits.float()
    if reduction == "sum":
        return F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="sum") / logits.shape[0]
    if reduction != "mean":
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")
    valid = (target != ignore_index).sum()
    total = F.cross_entropy(logits, target, ignore_index=ignore_index, reduction="sum")
    return total / valid.clamp_min(1)


LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""A training loss: ``(logits (N, C, H, W), labels (N, H, W))`` -> scalar (see :mod:`pixelwise.train.losses`)."""


def training_loss(output: torch.Tensor | tuple, target: torch.Tensor, *, reduction: str = "mean",
                  ignore_index: int = 255, aux_weight: float = 0.0, loss_fn: LossFn | None = None) -> torch.Tensor:
    """Return the scalar training loss of a model's output against ``(N, H, W)`` labels.

    ``output`` is ``(N, C, H, W)`` logits, or ``(logits, aux)`` from a deeply supervised model
    (:class:`AuxOutputs`): then each ``(N, C, h, w)`` aux map is upsampled (bilinear) to the label
    size and its loss, times ``aux_weight``, is added to the main loss. ``loss_fn`` scores every
    map (default: :func:`segmentation_loss` with ``reduction`` and ``ignore_index``).
    """
    if loss_fn is None:
        def loss_fn(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return segmentation_loss(x, y, reduction=reduction, ignore_index=ignore_index)
    if not isinstance(output, tuple):
        return loss_fn(output, target)
    logits, aux = output
    loss = loss_fn(logits, target)
    for scores in aux:
        up = F.interpolate(scores.float(), size=target.shape[-2:], mode="bilinear", align_corners=False)
        loss = loss + aux_weight * loss_fn(up, target)
    return loss


@dataclass(frozen=True)
class StepSettings:
    """How every training step of a run computes (:func:`train_step`)."""

    device: torch.device = torch.device("cpu")
    """Where the batches are moved (a name such as ``"cpu"`` is accepted)."""
    reduction: str = "mean"
    """Loss normalisation of the default loss: ``mean`` or ``sum`` (see the module doc)."""
    ignore_index: int = 255
    """Label that no loss is computed for."""
    precision: str = "fp32"
    """Autocast precision of the forward pass: ``fp32``, ``bf16`` or ``fp16``."""
    channels_last: bool = False
    """Feed the images in channels-last memory format."""
    aux_weight: float = 0.0
    """Weight of the deep-supervision losses (see :func:`training_loss`)."""
    loss_fn: LossFn | None = None
    """The loss (default: :func:`segmentation_loss` with ``reduction`` and ``ignore_index``)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "device", torch.device(self.device))


@dataclass(frozen=True)
class EvalSettings:
    """How the whole-image evaluations of a run compute (:func:`evaluate`)."""

    device: torch.device = torch.device("cpu")
    """Where the batches are moved (a name such as ``"cpu"`` is accepted)."""
    precision: str = "fp32"
    """Autocast precision of the forward pass."""
    ignore_index: int = 255
    """Label that is not scored."""
    channels_last: bool = False
    """Feed the images in channels-last memory format."""
    resize: int | None = None
    """Run the network on images resized to ``resize x resize`` (see :func:`whole_image_forward`)."""
    boundary: bool = False
    """Also compute the boundary F1 score."""
    progress: bool = False
    """Show a progress bar."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "device", torch.device(self.device))


def whole_image_forward(model: nn.Module, x: torch.Tensor, resize: int | None = None) -> torch.Tensor:
    """Return ``(N, C, H, W)`` logits for any input size: DeconvNet through ``forward_any_size``.

    ``resize``: run the network on the images resized (bilinear) to ``resize x resize`` and resize the
    scores back; for DeconvNet ``resize=224`` treats the whole image as one 224x224 proposal.
    """
    fn = model.forward_any_size
    if resize is None:
        return fn(x)
    size = x.shape[-2:]
    y = fn(F.interpolate(x, size=(resize, resize), mode="bilinear", align_corners=False))
    return F.interpolate(y, size=size, mode="bilinear", align_corners=False)


class AuxOutputs(nn.Module):
    """Wraps a deeply supervised model so that ``forward`` returns ``(logits, aux)``
    (``model.forward_aux``), for the training step and DDP (which calls ``forward``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Return ``(logits (N, C, H, W), [aux (N, C, h, w), ...])``."""
        return self.model.forward_aux(x)


class AnySize(nn.Module):
    """Wraps a model so that ``forward`` accepts any input size (for DDP, which calls ``forward``)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``(N, C, H, W)`` logits (see :func:`whole_image_forward`)."""
        return whole_image_forward(self.model, x)


def train_step(
    module: nn.Module,
    optimizer: torch.optim.Optimizer,
    micro_batches: list[tuple[torch.Tensor, torch.Tensor]],
    settings: StepSettings,
    *,
    scaler: torch.amp.GradScaler | None = None,
) -> float:
    """Run one optimiser step over ``micro_batches`` (gradient accumulation) as ``settings`` say
    and return the mean loss.

    ``module`` maps ``(N, 3, H, W)`` -> ``(N, C, H, W)``, or to ``(logits, aux)`` with deep
    supervision (see :func:`training_loss`; may be a DDP wrapper: gradients are then synchronised on
    the last micro-batch only). ``scaler``: fp16's gradient scaler. The caller steps the lr scheduler.
    """
    optimizer.zero_grad(set_to_none=True)
    n = len(micro_batches)
    total = 0.0
    device = settings.device
    for i, (images, masks) in enumerate(micro_batches):
        images = images.to(device, non_blocking=True)
        if settings.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        masks = masks.to(device, non_blocking=True)
        sync = i == n - 1 or not hasattr(module, "no_sync")
        ctx = contextlib.nullcontext() if sync else module.no_sync()
        with ctx:
            with autocast(device, settings.precision):
                output = module(images)
            loss = training_loss(output, masks, reduction=settings.reduction, ignore_index=settings.ignore_index,
                                 aux_weight=settings.aux_weight, loss_fn=settings.loss_fn) / n
            if scaler is not None:
                scaler.scale(loss).backward()
            else:
                loss.backward()
        total += float(loss.detach()) * n
    if scaler is not None:
        scaler.step(optimizer)
        scaler.update()
    else:
        optimizer.step()
    return total / n


def train_steps(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    steps: int,
    settings: StepSettings | None = None,
    *,
    iter_size: int = 1,
    scheduler=None,
) -> list[float]:
    """Train ``model`` for ``steps`` optimiser steps of ``iter_size`` batches each from
    ``batches`` (cycled if shorter), as ``settings`` say (None: the defaults, on CPU); return the
    per-step losses."""
    settings = settings or StepSettings()
    model.train()
    source: Iterator = iter(batches)
    losses = []
    for _ in range(steps):
        micro = []
        for _ in range(iter_size):
            try:
                micro.append(next(source))
            except StopIteration:
                source = iter(batches)
                micro.append(next(source))
        losses.append(train_step(model, optimizer, micro, settings))
        if scheduler is not None:
            scheduler.step()
    return losses


@torch.no_grad()
def evaluate(
    model: nn.Module,
    loader: Iterable,
    num_classes: int,
    settings: EvalSettings | None = None,
    *,
    desc: str = "eval",
) -> dict:
    """Evaluate whole images as ``settings`` say (None: the defaults, on CPU) and return the metrics
    (with ``settings.boundary``, the boundary F1 score too); ``desc`` labels the progress bar.

    ``loader`` yields ``(images (N, 3, H, W), masks (N, H, W))`` or ``(images, masks, extras)``
    (``extras["size_map"]`` (N, H, W) enables the size-bucket scores). The confusion matrices are
    summed over processes under ``torch.distributed``, so every process returns the metrics of the
    whole data set. Images smaller than their masks (a model run at an input scale) have their
    scores resized to the masks' size. Returns :meth:`pixelwise.metrics.ConfusionMatrix.compute` plus
    ``confusion`` (C x C list), ``images``, ``seconds`` and, when size maps were given, ``size_buckets``.
    """
    settings = settings or EvalSettings()
    device = settings.device
    was_training = model.training
    model.eval()
    evaluator = Evaluator(num_classes, ignore_index=settings.ignore_index, device=device, boundary=settings.boundary)
    for batch in tqdm(loader, desc=desc, disable=not settings.progress or None, leave=False):
        start = time.perf_counter()
        images, masks = batch[0].to(device), batch[1].to(device)
        extras = batch[2] if len(batch) > 2 else {}
        if settings.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        with autocast(device, settings.precision):
            logits = whole_image_forward(model, images, settings.resize)
        logits = full_size(logits, masks.shape[-2:])  # a model at an input scale is scored at full size
        size_map = extras["size_map"].to(device) if "size_map" in extras else None
        evaluator.add(logits.argmax(1), masks, size_map=size_map, images=images.shape[0],
                      seconds=time.perf_counter() - start)
    results = evaluator.result()
    if was_training:
        model.train()
    return results


def finite(value: float) -> bool:
    """Return True unless ``value`` is NaN or infinite."""
    return math.isfinite(value)
