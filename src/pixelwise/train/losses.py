"""Training losses: the papers' softmax cross-entropy (the default) and, beyond the papers, options
for imbalanced data: class weights, focal loss, soft Dice, and cross-entropy + Dice.

Notation: logits ``(N, C, H, W)``, labels ``(N, H, W)``. A pixel ``i`` is *valid* when its label
``y_i`` is not ``ignore_index``; ``V`` is the number of valid pixels of the forward batch, ``p`` the
softmax over the classes, ``p_t`` the probability of a pixel's true class and ``w_c`` the weight of
class ``c`` (1 for every class without class weights). Ignored pixels never count.

``cross_entropy``
    ``l_i = -w_{y_i} log p_t``. ``mean``: ``sum_i l_i / sum_i w_{y_i}`` over valid pixels, torch's
    weighted mean (without weights: ``/ V``, the papers' loss, bit-identical to
    :func:`pixelwise.train.loop.segmentation_loss`); ``sum``: ``sum_i l_i / N`` (summed per image,
    averaged over images, the FCN release's ``normalize: false``).
``focal``
    ``l_i = -w_{y_i} (1 - p_t)^gamma log p_t`` (Lin et al. 2017, the class weights as its alpha),
    normalised exactly as ``cross_entropy``, so ``gamma = 0`` is the (weighted) cross-entropy.
``dice``
    Soft multi-class Dice over the classes present, pooled over the whole forward batch (not per
    image: a class small or absent in one image does not make the loss jump):
    ``d_c = 2 sum_i p_ic y_ic / (sum_i p_ic + sum_i y_ic)`` over valid pixels, ``y`` one-hot;
    ``loss = 1 - sum_{c in P} w_c d_c / sum_{c in P} w_c`` with ``P`` the classes having a valid
    pixel in the batch (the plain mean without weights). ``mean``: that ratio; ``sum``: the ratio
    times ``V / N`` (valid pixels per image), so that it scales with the image size as the summed
    cross-entropy does and the lr / loss-normalisation rule (``check_lr_loss``) still holds.
``cross_entropy+dice``
    The sum of the two, with the same reduction and class weights.

Every loss is 0 with zero gradients (never NaN) when no pixel is valid.

Class weights (``--class-weights``) are a list ``W0,W1,...`` with one entry per class, or
``median-freq`` (Eigen & Fergus 2015): ``w_c = median_c(freq_c) / freq_c`` with
``freq_c = (pixels of class c) / (valid pixels of the training images where c is present)``,
counted once on the training set's whole, untransformed masks. A class absent from those masks gets
weight 1, the weight of the median class (with the masks it was computed on it never occurs as a
target, so the value only matters if the training data differs).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from pixelwise.errors import PixelwiseError
from pixelwise.metrics import all_reduce_sum_
from pixelwise.train.config import LOSSES, MEDIAN_FREQ, TrainConfig, parse_class_weights
from pixelwise.train.loop import segmentation_loss

_TINY = torch.finfo(torch.float32).tiny


# -- the losses -----------------------------------------------------------------------------------


def _check_reduction(reduction: str) -> None:
    if reduction not in ("mean", "sum"):
        raise ValueError(f"reduction must be 'mean' or 'sum', got {reduction!r}")


def _valid_and_safe(target: torch.Tensor, ignore_index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(valid (N, H, W) bool, safe (N, H, W) int64)``: ``safe`` is the labels with the
    ignored pixels set to class 0 (so that they can index; they are masked out afterwards)."""
    valid = target != ignore_index
    return valid, target.masked_fill(~valid, 0)


def _normalise(total: torch.Tensor, valid: torch.Tensor, safe: torch.Tensor, weight: torch.Tensor | None,
               reduction: str) -> torch.Tensor:
    """Divide a summed per-pixel loss: ``sum`` by the number of images ``N``; ``mean`` by the valid
    pixels' summed weights (their count without weights); 0 stays 0 when nothing is valid."""
    if reduction == "sum":
        return total / valid.shape[0]
    if weight is None:
        return total / valid.sum().clamp_min(1)
    return total / (weight[safe] * valid).sum().clamp_min(_TINY)


def cross_entropy_loss(logits: torch.Tensor, target: torch.Tensor, *, weight: torch.Tensor | None = None,
                       reduction: str = "mean", ignore_index: int = 255) -> torch.Tensor:
    """Return the scalar (weighted) cross-entropy of ``(N, C, H, W)`` logits against ``(N, H, W)``
    labels, with ``weight`` ``(C,)`` per class or None (see the module docstring for the
    reductions). Without weights it is :func:`segmentation_loss`, bit for bit."""
    _check_reduction(reduction)
    if weight is None:
        return segmentation_loss(logits, target, reduction=reduction, ignore_index=ignore_index)
    logits = logits.float()
    weight = weight.to(device=logits.device, dtype=logits.dtype)
    total = F.cross_entropy(logits, target, weight=weight, ignore_index=ignore_index, reduction="sum")
    valid, safe = _valid_and_safe(target, ignore_index)
    return _normalise(total, valid, safe, weight, reduction)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, *, gamma: float = 2.0,
               weight: torch.Tensor | None = None, reduction: str = "mean", ignore_index: int = 255) -> torch.Tensor:
    """Return the scalar focal loss ``-w_t (1 - p_t)^gamma log p_t`` of ``(N, C, H, W)`` logits
    against ``(N, H, W)`` labels (``weight`` ``(C,)``: the per-class alpha, or None), normalised as
    :func:`cross_entropy_loss` (``gamma = 0`` gives it)."""
    _check_reduction(reduction)
    if gamma < 0:
        raise ValueError(f"focal gamma must be >= 0, got {gamma}")
    logits = logits.float()
    valid, safe = _valid_and_safe(target, ignore_index)
    log_pt = F.log_softmax(logits, dim=1).gather(1, safe.unsqueeze(1)).squeeze(1)  # (N, H, W)
    per_pixel = -log_pt
    if gamma:
        # 1 - p_t as -expm1(log p_t): exact for confident pixels; the floor keeps the gradient of
        # x^gamma finite at x = 0 when gamma < 1
        one_minus = (-torch.expm1(log_pt)).clamp_min(0.0 if gamma >= 1 else 1e-12)
        per_pixel = one_minus.pow(gamma) * per_pixel
    if weight is not None:
        weight = weight.to(device=logits.device, dtype=logits.dtype)
        per_pixel = weight[safe] * per_pixel
    total = torch.where(valid, per_pixel, torch.zeros_like(per_pixel)).sum()
    return _normalise(total, valid, safe, weight, reduction)


def dice_loss(logits: torch.Tensor, target: torch.Tensor, *, weight: torch.Tensor | None = None,
              reduction: str = "mean", ignore_index: int = 255) -> torch.Tensor:
    """Return the scalar soft multi-class Dice loss of ``(N, C, H, W)`` logits against ``(N, H, W)``
    labels: ``1 -`` the (``weight``-weighted, ``(C,)`` or None) mean Dice coefficient of the classes
    present among the valid pixels of the whole batch; ``sum`` multiplies it by the valid pixels
    per image (see the module docstring)."""
    _check_reduction(reduction)
    logits = logits.float()
    valid, safe = _valid_and_safe(target, ignore_index)
    mask = valid.unsqueeze(1).to(logits.dtype)  # (N, 1, H, W)
    probs = F.softmax(logits, dim=1) * mask  # (N, C, H, W)
    onehot = torch.zeros_like(probs).scatter_(1, safe.unsqueeze(1), 1.0) * mask
    inter = (probs * onehot).sum(dim=(0, 2, 3))  # (C,)
    card = probs.sum(dim=(0, 2, 3)) + onehot.sum(dim=(0, 2, 3))  # (C,)
    present = onehot.sum(dim=(0, 2, 3)) > 0
    # absent classes: a denominator of 1 keeps their (unused) ratio and its gradient finite
    dice = 2 * inter / torch.where(present, card, torch.ones_like(card))
    w = torch.ones_like(card) if weight is None else weight.to(device=logits.device, dtype=logits.dtype)
    w = w * present
    loss = (w * (1 - dice)).sum() / w.sum().clamp_min(_TINY)  # 1 - weighted mean Dice; 0 if none present
    if reduction == "sum":
        loss = loss * valid.sum() / valid.shape[0]
    return loss


@dataclass(eq=False)
class SegmentationLoss:
    """A configured training loss: call it as ``loss(logits (N, C, H, W), labels (N, H, W))`` to get
    a scalar tensor. ``kind`` is one of :data:`LOSSES`; ``class_weights`` a ``(C,)`` tensor or
    None (moved to the logits' device on use)."""

    kind: str = "cross_entropy"
    reduction: str = "mean"
    ignore_index: int = 255
    gamma: float = 2.0
    class_weights: torch.Tensor | None = None
    _on_device: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in LOSSES:
            raise ValueError(f"loss must be one of {', '.join(LOSSES)}, got {self.kind!r}")
        _check_reduction(self.reduction)
        if self.class_weights is not None:
            self.class_weights = torch.as_tensor(self.class_weights, dtype=torch.float32).flatten()

    def weight_on(self, device: torch.device) -> torch.Tensor | None:
        """Return the ``(C,)`` class weights on ``device`` (cached), or None."""
        if self.class_weights is None:
            return None
        if device not in self._on_device:
            self._on_device[device] = self.class_weights.to(device)
        return self._on_device[device]

    def __call__(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Return the scalar loss of ``(N, C, H, W)`` logits against ``(N, H, W)`` labels."""
        w = self.weight_on(logits.device)
        if w is not None and w.numel() != logits.shape[1]:
            raise PixelwiseError(f"{w.numel()} class weights for a model with {logits.shape[1]} classes")
        kw = {"reduction": self.reduction, "ignore_index": self.ignore_index}
        if self.kind == "cross_entropy":
            return cross_entropy_loss(logits, target, weight=w, **kw)
        if self.kind == "focal":
            return focal_loss(logits, target, gamma=self.gamma, weight=w, **kw)
        if self.kind == "dice":
            return dice_loss(logits, target, weight=w, **kw)
        return cross_entropy_loss(logits, target, weight=w, **kw) + dice_loss(logits, target, weight=w, **kw)


def build_loss(cfg: TrainConfig, num_classes: int, class_weights: Iterable[float] | None = None) -> SegmentationLoss:
    """Return the training loss that ``cfg`` describes (``loss``, ``loss_reduction``,
    ``ignore_index``, ``focal_gamma``, ``class_weights``) for ``num_classes`` classes.

    ``class_weights``: the computed weights, needed when ``cfg.class_weights`` is ``median-freq``
    (see :func:`resolve_class_weights`); a ``W0,W1,...`` list in the config is parsed and checked
    here (one entry per class).
    """
    if class_weights is not None:
        weights = [float(w) for w in class_weights]
        if len(weights) != num_classes:
            raise PixelwiseError(f"{len(weights)} class weights for {num_classes} classes")
    elif cfg.class_weights is None:
        weights = None
    elif cfg.class_weights.strip() == MEDIAN_FREQ:
        raise PixelwiseError("class_weights=median-freq: compute the weights first (resolve_class_weights) and "
                             "pass them to build_loss")
    else:
        weights = parse_class_weights(cfg.class_weights, num_classes)
    tensor = None if weights is None else torch.tensor(weights, dtype=torch.float32)
    return SegmentationLoss(cfg.loss, reduction=cfg.loss_reduction, ignore_index=cfg.ignore_index,
                            gamma=cfg.focal_gamma, class_weights=tensor)


# -- class weights --------------------------------------------------------------------------------


def format_class_weights(weights: Iterable[float]) -> str:
    """Return ``W0,W1,...`` with 6 significant digits (what the run then uses and stores)."""
    return ",".join(f"{float(w):.6g}" for w in weights)


def class_pixel_counts(masks: Iterable[np.ndarray], num_classes: int,
                       ignore_index: int = 255) -> tuple[np.ndarray, np.ndarray]:
    """Count over ``(H, W)`` label masks: return ``(class_pixels, image_pixels)``, both ``(C,)``
    int64: the pixels of each class, and the valid pixels (labels in ``0..C-1``, not
    ``ignore_index``) of the images in which that class is present."""
    class_pixels = np.zeros(num_classes, dtype=np.int64)
    image_pixels = np.zeros(num_classes, dtype=np.int64)
    for mask in masks:
        labels = np.asarray(mask).ravel().astype(np.int64)
        labels = labels[(labels >= 0) & (labels < num_classes) & (labels != ignore_index)]
        counts = np.bincount(labels, minlength=num_classes)[:num_classes]
        class_pixels += counts
        image_pixels += (counts > 0) * int(counts.sum())
    return class_pixels, image_pixels


def median_frequency_weights(class_pixels: np.ndarray, image_pixels: np.ndarray) -> np.ndarray:
    """Return the ``(C,)`` median-frequency weights ``median(freq) / freq_c`` (Eigen & Fergus) of
    the counts of :func:`class_pixel_counts`; the median is over the classes present, and a class
    that is absent gets 1 (the median class's weight)."""
    class_pixels = np.asarray(class_pixels, dtype=np.float64)
    image_pixels = np.asarray(image_pixels, dtype=np.float64)
    present = class_pixels > 0
    weights = np.ones(len(class_pixels), dtype=np.float64)
    if present.any():
        freq = class_pixels[present] / image_pixels[present]
        weights[present] = np.median(freq) / freq
    return weights


@dataclass
class ClassWeights:
    """Class weights resolved for a run: ``values`` (one per class), where they come from
    (``source``: ``median-freq``, ``list`` or ``checkpoint``), and for ``median-freq`` the number
    of ``images`` counted and the ``absent`` classes (weight 1)."""

    values: list[float]
    source: str
    images: int | None = None
    absent: list[int] = field(default_factory=list)

    def spec(self) -> str:
        """The ``W0,W1,...`` string stored in the run's config (6 significant digits)."""
        return format_class_weights(self.values)

    def message(self, class_names: list[str] | None = None) -> str:
        """One line for the terminal."""
        what = {MEDIAN_FREQ: f"median-freq over {self.images} training images", "list": "given",
                "checkpoint": "from the checkpoint's config"}.get(self.source, self.source)
        line = f"class weights ({what}): {self.spec()}"
        if self.absent:
            names = [class_names[c] if class_names and c < len(class_names) else str(c) for c in self.absent]
            line += f" (absent from the masks, weight 1: {', '.join(names)})"
        return line

    def record(self) -> dict[str, Any]:
        """The ``class_weights`` event for ``log.jsonl`` (without ``type``/``step``)."""
        rec: dict[str, Any] = {"event": "class_weights", "source": self.source, "weights": self.values}
        if self.images is not None:
            rec.update(images=self.images, absent=self.absent)
        return rec


def dataset_class_weights(dataset: Any, num_classes: int, ignore_index: int = 255, *, limit: int | None = None,
                          progress: bool = False, rank: int = 0, world_size: int = 1,
                          device: torch.device | str = "cpu") -> ClassWeights:
    """Return the median-frequency :class:`ClassWeights` of the first ``limit`` (default: all)
    masks of ``dataset`` (``dataset[i]["mask"]``: the raw ``(H, W)`` labels, before any crop).

    Under ``torch.distributed`` each of the ``world_size`` processes counts every ``world_size``-th
    image from ``rank`` and the counts are summed (on ``device``), so all get the same weights.
    ``progress``: a progress bar on stderr when it is a terminal.
    """
    total = len(dataset) if limit is None else min(int(limit), len(dataset))
    indices = range(rank, total, world_size)
    bar = tqdm(indices, desc="class frequencies", leave=False, file=sys.stderr,
               disable=not (progress and sys.stderr.isatty()))
    class_pixels, image_pixels = class_pixel_counts((dataset[i]["mask"] for i in bar), num_classes, ignore_index)
    counts = torch.from_numpy(np.stack([class_pixels, image_pixels])).to(device)
    counts = all_reduce_sum_(counts).cpu().numpy()
    weights = median_frequency_weights(counts[0], counts[1])
    absent = [int(c) for c in np.flatnonzero(counts[0] == 0)]
    return ClassWeights([float(w) for w in weights], MEDIAN_FREQ, images=total, absent=absent)


def resolve_class_weights(cfg: TrainConfig, dataset: Any, num_classes: int, *, saved: str | None = None,
                          progress: bool = False, rank: int = 0, world_size: int = 1,
                          device: torch.device | str = "cpu") -> ClassWeights | None:
    """Return the run's class weights (None without ``cfg.class_weights``).

    A ``W0,W1,...`` list is checked against ``num_classes``. ``median-freq`` is computed from
    ``dataset`` (raw samples with a ``mask``; see :func:`dataset_class_weights`) unless ``saved``,
    the ``class_weights`` of the checkpoint being resumed, already holds the list computed then.
    The caller stores :meth:`ClassWeights.spec` in the run's config, so that ``config.yaml`` and the
    checkpoints carry the exact weights used.
    """
    if cfg.class_weights is None:
        return None
    if cfg.class_weights.strip() != MEDIAN_FREQ:
        resumed = saved is not None and str(saved).strip() == cfg.class_weights.strip()
        return ClassWeights(parse_class_weights(cfg.class_weights, num_classes), "checkpoint" if resumed else "list")
    if saved is not None and str(saved).strip() != MEDIAN_FREQ:
        return ClassWeights(parse_class_weights(saved, num_classes, source="the checkpoint's class_weights"),
                            "checkpoint")
    weights = dataset_class_weights(dataset, num_classes, cfg.ignore_index, progress=progress, rank=rank,
                                    world_size=world_size, device=device)
    weights.values = parse_class_weights(weights.spec(), num_classes)  # the rounded values the config stores
    return weights
