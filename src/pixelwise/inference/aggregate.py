"""DeconvNet's instance-wise inference: run the network on proposal crops, aggregate in image space.

Each box (integer ``[x0, y0, x1, y1)``, possibly reaching past the image) is cropped from the
normalised image, with the part outside the image filled with ``fill`` (default zeros = the mean
colour after normalisation; the release zero-padded the raw image, i.e. black: pass the normalised
black pixel, see :func:`pad_fill`), resized to ``size`` x ``size``
(bilinear, antialiased when shrinking, like MATLAB's ``imresize`` in the release), run through the
network in batches, and its ``(C, size, size)`` score map resized back to the box (bilinear). The
in-image part of every map is aggregated pixel-wise:

- ``max`` (the paper's default): the maximum over the boxes covering the pixel;
- ``max0`` (the release, ``generate_EDeconvNet_CRF_results.m``): the maximum started from an
  all-zero map, i.e. ``max(0, max_i s_i)``: negative scores are clipped to 0;
- ``sum``, or ``mean`` (sum divided by the number of covering boxes).

The aggregated scores are returned with a coverage mask; pixels no box covers hold 0 and are left
for the caller to fill (:func:`pixelwise.inference.pipeline.segment` fills them with a whole-image
DeconvNet pass by default; ``uncovered="zero"`` keeps the release's 0).
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

from pixelwise.convention import PAD_COLOURS
from pixelwise.errors import PixelwiseError
from pixelwise.models.base import as_model

AGGREGATIONS = ("max", "max0", "sum", "mean")


def resize_maps(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Bilinear resize of ``(N, C, h, w)`` to ``(N, C, height, width)``; antialiased when shrinking."""
    if x.shape[-2:] == (height, width):
        return x
    shrink = height < x.shape[-2] or width < x.shape[-1]
    return F.interpolate(x, size=(height, width), mode="bilinear", align_corners=False, antialias=shrink)


def pad_fill(pad: str, convention) -> torch.Tensor | None:
    """Return the ``(3,)`` normalised value of the ``pad`` colour (``black``) under the input
    ``convention``, or None for ``mean`` (zeros)."""
    if pad not in PAD_COLOURS:
        raise PixelwiseError(f"unknown proposal padding {pad!r}; valid: {', '.join(PAD_COLOURS)}")
    if pad == "mean":
        return None
    from pixelwise.data.transforms import normalize_image

    return normalize_image(np.zeros((1, 1, 3), np.uint8), convention)[:, 0, 0]


def crop_box(image: torch.Tensor, box, fill: torch.Tensor | None = None) -> torch.Tensor:
    """Return the ``(3, y1 - y0, x1 - x0)`` crop of a ``(3, H, W)`` image; outside the image =
    ``fill`` (``(3,)`` per channel) or 0."""
    x0, y0, x1, y1 = (int(v) for v in box)
    height, width = image.shape[-2:]
    out = image.new_zeros(image.shape[0], y1 - y0, x1 - x0)
    if fill is not None:
        out += fill.to(out)[:, None, None]
    ix0, iy0, ix1, iy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if ix1 > ix0 and iy1 > iy0:
        out[:, iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0] = image[:, iy0:iy1, ix0:ix1]
    return out


class ScoreAccumulator:
    """Aggregates per-box ``(C, h, w)`` score maps into one ``(C, H, W)`` image-space map.

    ``add(box, scores)`` places ``scores`` (already at the box's size) at ``box``; ``result()``
    returns ``(scores (C, H, W), coverage (H, W) bool)`` with uncovered pixels 0.
    """

    def __init__(self, num_classes: int, height: int, width: int, *, mode: str = "max", device=None) -> None:
        if mode not in AGGREGATIONS:
            raise PixelwiseError(f"unknown aggregation {mode!r}; valid: {', '.join(AGGREGATIONS)}")
        self.mode = mode
        self.height, self.width = height, width
        fill = float("-inf") if mode == "max" else 0.0  # max0 starts from zeros like the release
        self.scores = torch.full((num_classes, height, width), fill, device=device)
        self.count = torch.zeros(height, width, device=device)

    def add(self, box, scores: torch.Tensor) -> None:
        """Place a ``(C, y1 - y0, x1 - x0)`` map at integer ``box``; the part outside the image is dropped."""
        x0, y0, x1, y1 = (int(v) for v in box)
        if scores.shape[-2:] != (y1 - y0, x1 - x0):
            raise ValueError(f"score map {tuple(scores.shape)} does not fit box {box}")
        ix0, iy0 = max(x0, 0), max(y0, 0)
        ix1, iy1 = min(x1, self.width), min(y1, self.height)
        if ix1 <= ix0 or iy1 <= iy0:
            return
        part = scores[:, iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0].float()
        region = self.scores[:, iy0:iy1, ix0:ix1]
        if self.mode in ("max", "max0"):
            torch.maximum(region, part, out=region)
        else:
            region += part
        self.count[iy0:iy1, ix0:ix1] += 1

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(scores (C, H, W) float32, coverage (H, W) bool)``; uncovered pixels hold 0."""
        coverage = self.count > 0
        scores = self.scores.clone()
        if self.mode == "mean":
            scores = scores / self.count.clamp_min(1)
        scores[:, ~coverage] = 0.0
        return scores, coverage


def deconvnet_on_boxes(
    model: torch.nn.Module | Callable[[torch.Tensor], torch.Tensor],
    image_tensor: torch.Tensor,
    boxes,
    *,
    size: int = 224,
    batch: int = 8,
    mode: str = "max",
    num_classes: int | None = None,
    fill: torch.Tensor | None = None,
    progress: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run DeconvNet on every box and aggregate: returns ``(scores (C, H, W), coverage (H, W) bool)``.

    ``image_tensor`` is the normalised ``(3, H, W)`` image, ``boxes`` ``(K, 4)`` integer
    ``[x0, y0, x1, y1)`` (see :func:`pixelwise.inference.boxes.prepare_boxes`), ``size`` the side
    crops are resized to (224 in the paper; a multiple of 32, >= the model's ``input_size``), ``batch`` the
    number of crops per forward pass, ``mode`` one of :data:`AGGREGATIONS`, ``fill`` the ``(3,)``
normalised colour outside the image (None: 0, the mean colour; see :func:`pad_fill`). ``model`` is a
    DeconvNet or any callable mapping ``(N, 3, size, size)`` to ``(N, C, size, size)`` scores.
    Uncovered pixels hold 0 in ``scores`` and False in ``coverage``.
    """
    if batch < 1:
        raise PixelwiseError(f"--batch must be >= 1, got {batch}")
    view = as_model(model)  # a foreign callable (bench's reference DeconvNet) answers too: any size
    view.check_input_size(size, size)
    boxes = np.asarray(boxes, dtype=np.int64).reshape(-1, 4)
    if len(boxes) and ((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])).any():
        raise PixelwiseError("every box needs x0 < x1 and y0 < y1")
    height, width = image_tensor.shape[-2:]
    if num_classes is None:
        num_classes = view.num_classes
    acc: ScoreAccumulator | None = None
    if num_classes is not None:
        acc = ScoreAccumulator(num_classes, height, width, mode=mode, device=image_tensor.device)
    bar = None
    if progress and len(boxes) > batch:
        from tqdm import tqdm

        bar = tqdm(total=len(boxes), desc="proposals", unit="box", leave=False, disable=None)
    for start in range(0, len(boxes), batch):
        chunk = boxes[start : start + batch]
        crops = torch.stack([resize_maps(crop_box(image_tensor, b, fill)[None], size, size)[0] for b in chunk])
        out = model(crops)
        if acc is None:
            acc = ScoreAccumulator(out.shape[1], height, width, mode=mode, device=image_tensor.device)
        for b, scores in zip(chunk, out):
            x0, y0, x1, y1 = (int(v) for v in b)
            acc.add(b, resize_maps(scores[None].float(), y1 - y0, x1 - x0)[0])
        if bar is not None:
            bar.update(len(chunk))
    if bar is not None:
        bar.close()
    if acc is None:  # no boxes and no way to know the class count
        raise PixelwiseError("no boxes given and the model does not say its number of classes")
    return acc.result()
