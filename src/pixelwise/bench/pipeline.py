"""Workload helpers of the benchmark: the proposal pipeline and tiled inference, both run through
the real :mod:`pixelwise.inference` code."""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch

from pixelwise.inference.aggregate import deconvnet_on_boxes
from pixelwise.inference.boxes import MIN_BOX
from pixelwise.inference.sliding import sliding_window, tile_spans
from pixelwise.models.deconvnet import PROPOSAL_SIZE


def synthetic_boxes(height: int, width: int, count: int, *, seed: int = 0) -> np.ndarray:
    """Return ``(count, 4)`` int64 boxes ``[x0, y0, x1, y1)`` inside the image, sides >= 112 px
    (or the image side when smaller), deterministic for a seed."""
    rng = np.random.default_rng(seed)
    boxes = np.empty((count, 4), dtype=np.int64)
    for k in range(count):
        bw = int(rng.integers(min(MIN_BOX, width), width + 1))
        bh = int(rng.integers(min(MIN_BOX, height), height + 1))
        x0 = int(rng.integers(0, width - bw + 1))
        y0 = int(rng.integers(0, height - bh + 1))
        boxes[k] = (x0, y0, x0 + bw, y0 + bh)
    return boxes


def run_proposals(forward: Callable, image: torch.Tensor, boxes: np.ndarray, *, batch: int = 8) -> torch.Tensor:
    """Run DeconvNet ``forward`` on every box of the ``(3, H, W)`` image through
    :func:`deconvnet_on_boxes`; return the ``(C, H, W)`` max-aggregated scores."""
    scores, _ = deconvnet_on_boxes(forward, image, boxes, size=PROPOSAL_SIZE, batch=batch)
    return scores


def tile_grid(height: int, width: int, tile: int, overlap: float = 0.33) -> list[tuple[int, int]]:
    """Return the ``(h, w)`` of every tile the sliding window of side ``tile`` visits."""
    rows, cols = tile_spans(height, tile, overlap), tile_spans(width, tile, overlap)
    return [(y1 - y0, x1 - x0) for y0, y1 in rows for x0, x1 in cols]


def run_tiled(forward: Callable, x: torch.Tensor, *, tile: int, overlap: float = 0.33) -> torch.Tensor:
    """Sliding-window inference of ``(N, 3, H, W)`` with :func:`sliding_window`; returns
    ``(N, C, H, W)`` blended scores."""
    return sliding_window(forward, x, tile=tile, overlap=overlap)
