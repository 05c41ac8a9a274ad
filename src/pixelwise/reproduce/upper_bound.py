"""FCN Appendix A: the best mean IU reachable when predicting at a coarse stride.

The truth is downsampled by a factor ``f`` (each f x f block takes its most frequent label, with
ignored pixels left out), then upsampled back by nearest neighbour and scored against the full
resolution truth. No network can beat this with a block-constant output at that stride; the paper
reports 86.1 / 92.8 / 96.4 mean IU on PASCAL VOC for f = 32 / 16 / 8.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import torch

from pixelwise.metrics import ConfusionMatrix

IGNORE = 255


def block_mode_resample(mask: np.ndarray, factor: int, num_classes: int) -> np.ndarray:
    """Return the ``(H, W)`` uint8 mask each of whose ``factor`` x ``factor`` blocks holds the block's
    most frequent valid label (255 where a block has only ignored pixels)."""
    h, w = mask.shape
    ph, pw = (-h) % factor, (-w) % factor
    padded = np.pad(mask, ((0, ph), (0, pw)), constant_values=IGNORE)
    bh, bw = padded.shape[0] // factor, padded.shape[1] // factor
    blocks = padded.reshape(bh, factor, bw, factor).transpose(0, 2, 1, 3).reshape(bh, bw, -1)
    counts = np.stack([(blocks == c).sum(-1) for c in range(num_classes)], axis=-1)
    coarse = counts.argmax(-1).astype(np.uint8)
    coarse[counts.sum(-1) == 0] = IGNORE
    full = np.repeat(np.repeat(coarse, factor, axis=0), factor, axis=1)
    return full[:h, :w]


def upper_bound_miou(masks: Iterable[np.ndarray], num_classes: int, factors=(32, 16, 8)) -> dict:
    """Return ``{factor: metrics dict}`` (see :meth:`ConfusionMatrix.compute`) for each factor."""
    matrices = {f: ConfusionMatrix(num_classes) for f in factors}
    for mask in masks:
        target = torch.from_numpy(mask.astype(np.int64))
        for f, cm in matrices.items():
            pred = torch.from_numpy(block_mode_resample(mask, f, num_classes).astype(np.int64))
            pred[pred == IGNORE] = 0  # a block with no valid pixel only covers ignored pixels
            cm.update(pred, target)
    return {f: cm.compute() for f, cm in matrices.items()}
