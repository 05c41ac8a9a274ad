"""Test-time augmentation: horizontal flip and multiple scales, probabilities averaged.

A *view* is ``(scale, flipped)``. For each view the normalised image is resized by ``scale``
(bilinear, antialiased when shrinking) and optionally mirrored, proposal boxes are moved with it,
the view's class probabilities are computed, mirrored back and resized to the input size
(bilinear), and all views' probabilities are averaged.
"""

from __future__ import annotations

from typing import Callable, Sequence

import numpy as np
import torch

from pixelwise.errors import PixelwiseError
from pixelwise.inference.aggregate import resize_maps
from pixelwise.inference.boxes import round_boxes

TTA_MODES = ("flip",)
ViewFn = Callable[[torch.Tensor, "np.ndarray | None"], torch.Tensor]


def parse_scales(text: str | Sequence[float] | None) -> tuple[float, ...] | None:
    """Parse ``"0.75,1,1.25"`` (or a sequence) into positive floats; None stays None."""
    if text is None:
        return None
    items = text.split(",") if isinstance(text, str) else list(text)
    try:
        scales = tuple(float(s) for s in items if str(s).strip())
    except ValueError:
        raise PixelwiseError(f"--scales must be comma-separated numbers like 0.75,1,1.25, got {text!r}") from None
    if not scales or any(not 0.05 <= s <= 8 for s in scales):
        raise PixelwiseError(f"--scales must be numbers in [0.05, 8], got {text!r}")
    return scales


def tta_views(scales: Sequence[float] | None = None, tta: str | None = None) -> list[tuple[float, bool]]:
    """Return the ``(scale, flipped)`` views: every scale (default 1), each also mirrored with ``tta="flip"``."""
    if tta not in (None, "none", *TTA_MODES):
        raise PixelwiseError(f"unknown --tta {tta!r}; valid: none, {', '.join(TTA_MODES)}")
    flips = (False, True) if tta == "flip" else (False,)
    return [(float(s), f) for s in (scales or (1.0,)) for f in flips]


def transform_boxes(boxes: np.ndarray | None, scale: float, flipped: bool, width: int) -> np.ndarray | None:
    """Move integer ``(K, 4)`` boxes into a view: scaled by ``scale`` (rounded outwards), then
    mirrored in a view of ``width`` pixels when ``flipped``."""
    if boxes is None:
        return None
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4) * scale
    if flipped:
        b = np.stack([width - b[:, 2], b[:, 1], width - b[:, 0], b[:, 3]], 1)
    return round_boxes(b)


def augmented_probs(
    view_fn: ViewFn,
    x: torch.Tensor,
    boxes: np.ndarray | None = None,
    *,
    scales: Sequence[float] | None = None,
    tta: str | None = None,
) -> torch.Tensor:
    """Average ``view_fn`` over the TTA views: returns ``(C, H, W)`` probabilities.

    ``x`` is the normalised ``(3, H, W)`` image; ``view_fn(x_view, boxes_view)`` returns the view's
    ``(C, h, w)`` probabilities. With one view at scale 1 this is ``view_fn(x, boxes)`` exactly.
    """
    height, width = x.shape[-2:]
    views = tta_views(scales, tta)
    total = None
    for scale, flipped in views:
        h, w = max(1, round(height * scale)), max(1, round(width * scale))
        xv = resize_maps(x[None], h, w)[0]
        if flipped:
            xv = xv.flip(-1)
        probs = view_fn(xv, transform_boxes(boxes, scale, flipped, w) if boxes is not None else None)
        if flipped:
            probs = probs.flip(-1)
        probs = resize_maps(probs[None], height, width)[0]
        total = probs if total is None else total + probs
    if len(views) == 1:
        return total
    return total / len(views)
