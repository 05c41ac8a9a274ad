"""Workload helpers: the proposal pipeline and tiled inference, using pixelwise.inference when
present, else a minimal local version (so the benchmark runs while inference is being written)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F

PROPOSAL_SIZE = 224
MIN_BOX_SIDE = 112  # the paper skips proposals with a side under 112 px


def synthetic_boxes(height: int, width: int, count: int, *, seed: int = 0) -> np.ndarray:
    """Return ``(count, 4)`` int64 boxes ``[x0, y0, x1, y1)`` inside the image, sides >= 112 px
    (or the image side when smaller), deterministic for a seed."""
    rng = np.random.default_rng(seed)
    boxes = np.empty((count, 4), dtype=np.int64)
    for k in range(count):
        bw = int(rng.integers(min(MIN_BOX_SIDE, width), width + 1))
        bh = int(rng.integers(min(MIN_BOX_SIDE, height), height + 1))
        x0 = int(rng.integers(0, width - bw + 1))
        y0 = int(rng.integers(0, height - bh + 1))
        boxes[k] = (x0, y0, x0 + bw, y0 + bh)
    return boxes


def _minimal_on_boxes(forward, image: torch.Tensor, boxes: np.ndarray, *, batch: int) -> torch.Tensor:
    """Crop, resize to 224, run in batches, resize back, aggregate by pixel-wise max: ``(C,H,W)``."""
    height, width = image.shape[-2:]
    acc = None
    for start in range(0, len(boxes), batch):
        chunk = boxes[start : start + batch]
        crops = [
            F.interpolate(image[None, :, y0:y1, x0:x1], size=(PROPOSAL_SIZE,) * 2, mode="bilinear", align_corners=False)
            for x0, y0, x1, y1 in chunk
        ]
        scores = forward(torch.cat(crops))
        if acc is None:
            acc = torch.full((scores.shape[1], height, width), float("-inf"))
        for (x0, y0, x1, y1), s in zip(chunk, scores):
            back = F.interpolate(s[None], size=(int(y1 - y0), int(x1 - x0)), mode="bilinear", align_corners=False)[0]
            acc[:, y0:y1, x0:x1] = torch.maximum(acc[:, y0:y1, x0:x1], back)
    return acc.clamp_min(-1e30)


def run_proposals(forward: Callable, image: torch.Tensor, boxes: np.ndarray, *, batch: int = 8) -> torch.Tensor:
    """Run DeconvNet ``forward`` on every box of the ``(3, H, W)`` image; return ``(C, H, W)`` scores.

    Uses ``pixelwise.inference.aggregate.deconvnet_on_boxes`` when available.
    """
    impl = pipeline_impl()
    if impl == "pixelwise.inference":
        from pixelwise.inference.aggregate import deconvnet_on_boxes

        scores, _ = deconvnet_on_boxes(forward, image, boxes, size=PROPOSAL_SIZE, batch=batch)
        return scores
    return _minimal_on_boxes(forward, image, boxes, batch=batch)


def pipeline_impl() -> str:
    """Return which proposal pipeline :func:`run_proposals` uses."""
    try:
        from pixelwise.inference.aggregate import deconvnet_on_boxes  # noqa: F401
    except ImportError:
        return "bench-minimal"
    return "pixelwise.inference"


def tile_grid(height: int, width: int, tile: int, overlap: float = 0.33) -> list[tuple[int, int]]:
    """Return the ``(h, w)`` of every tile a sliding window of side ``tile`` visits."""
    try:
        from pixelwise.inference.sliding import tile_spans
    except ImportError:
        tile_spans = _tile_spans
    rows, cols = tile_spans(height, tile, overlap), tile_spans(width, tile, overlap)
    return [(y1 - y0, x1 - x0) for y0, y1 in rows for x0, x1 in cols]


def _tile_spans(length: int, tile: int, overlap: float, align: int = 32) -> list[tuple[int, int]]:
    if tile >= length:
        return [(0, length)]
    step = max(align, int(tile * (1 - overlap)) // align * align)
    starts = list(range(0, length - tile, step))
    last = (length - tile) // align * align
    if last > starts[-1]:
        starts.append(last)
    spans = [(s, min(s + tile, length)) for s in starts]
    spans[-1] = (spans[-1][0], length)
    return spans


def run_tiled(forward: Callable, x: torch.Tensor, *, tile: int, overlap: float = 0.33) -> torch.Tensor:
    """Sliding-window inference of ``(N, 3, H, W)``; returns ``(N, C, H, W)`` blended scores.

    Uses ``pixelwise.inference.sliding.sliding_window`` when available, else averages tiles.
    """
    try:
        from pixelwise.inference.sliding import sliding_window
    except ImportError:
        sliding_window = None
    if sliding_window is not None:
        return sliding_window(forward, x, tile=tile, overlap=overlap)
    height, width = x.shape[-2:]
    acc, count = None, torch.zeros(height, width)
    for y0, y1 in _tile_spans(height, tile, overlap):
        for x0, x1 in _tile_spans(width, tile, overlap):
            out = forward(x[..., y0:y1, x0:x1])
            if acc is None:
                acc = torch.zeros(*out.shape[:2], height, width)
            acc[..., y0:y1, x0:x1] += out
            count[y0:y1, x0:x1] += 1
    return acc / count
