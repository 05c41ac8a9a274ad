"""The one evaluator: confusion matrix, IU by object size, timing and the distributed reduce.

Every evaluation in pixelwise (validation during ``train``, ``eval``, ``demo``, ``reproduce``)
feeds an :class:`Evaluator` with predictions and reads one results dict from it, so every
number they print is computed the same way. :func:`evaluate_samples` is the loop for the common
case of one prediction function over a sequence of samples.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from pixelwise.metrics import ConfusionMatrix, SizeBucketIU, all_reduce_sum_


def _labels(pred: Any) -> torch.Tensor:
    """``(C, H, W)`` scores -> ``(H, W)`` labels; labels pass through (numpy or torch)."""
    if isinstance(pred, np.ndarray):
        pred = pred.argmax(0) if pred.ndim == 3 else pred
        return torch.from_numpy(np.asarray(pred, dtype=np.int64))
    return pred


def _tensor(x: Any, device: torch.device) -> torch.Tensor:
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(x.astype(np.int64))
    return x.to(device)


class Evaluator:
    """Accumulates predictions against labels and returns the evaluation's results dict.

    ``add`` takes ``(N, H, W)`` / ``(H, W)`` labels or, as numpy, ``(C, H, W)`` scores of one
    image; the size map (same shape as the labels) enables IU by object size.
    """

    def __init__(self, num_classes: int, *, ignore_index: int = 255, device: torch.device | str = "cpu") -> None:
        self.device = torch.device(device)
        self.confusion = ConfusionMatrix(num_classes, ignore_index, device=self.device)
        self.sizes = SizeBucketIU(num_classes, ignore_index, device=self.device)
        self.have_sizes = False
        self.images = 0
        self.seconds = 0.0

    def add(self, pred: Any, target: Any, *, size_map: Any = None, images: int = 1, seconds: float = 0.0) -> None:
        """Count one prediction (``images`` images of it) and the ``seconds`` it took."""
        pred_t = _tensor(_labels(pred), self.device)
        target_t = _tensor(target, self.device)
        self.confusion.update(pred_t, target_t)
        if size_map is not None:
            self.have_sizes = True
            self.sizes.update(pred_t, target_t, _tensor(size_map, self.device))
        self.images += images
        self.seconds += seconds

    def result(self) -> dict:
        """Sum the counts of every process (under ``torch.distributed``) and return the
        metrics: :meth:`ConfusionMatrix.compute` plus ``confusion`` (C x C list), ``images``,
        ``seconds``, ``ms_per_image`` and, when some image had a size map, ``size_buckets``."""
        self.confusion.all_reduce()
        counts = all_reduce_sum_(torch.tensor([self.images, int(self.have_sizes)], device=self.device))
        results = self.confusion.compute()
        results["confusion"] = self.confusion.matrix.cpu().tolist()
        results["images"] = int(counts[0])
        results["seconds"] = self.seconds
        results["ms_per_image"] = 1000.0 * self.seconds / max(1, self.images)
        if int(counts[1]):
            self.sizes.all_reduce()
            results["size_buckets"] = self.sizes.compute()
        return results


def evaluate_samples(samples: Iterable[dict], predict: Callable[[dict], np.ndarray], num_classes: int, *,
                     ignore_index: int = 255, device: torch.device | str = "cpu", progress: bool = False,
                     desc: str = "eval", total: int | None = None) -> dict:
    """Evaluate ``predict(sample) -> (C, H, W)`` scores (or ``(H, W)`` labels) on every sample
    (dicts with ``mask`` and optionally ``size_map``); return :meth:`Evaluator.result`, where
    ``seconds`` is the time spent in ``predict``."""
    evaluator = Evaluator(num_classes, ignore_index=ignore_index, device=device)
    for sample in tqdm(samples, desc=desc, total=total, disable=not progress or None, leave=False):
        start = time.perf_counter()
        pred = predict(sample)
        evaluator.add(pred, sample["mask"], size_map=sample.get("size_map"), seconds=time.perf_counter() - start)
    return evaluator.result()
