"""The one evaluator: a list of metrics (confusion matrix, IU by object size, optionally the
boundary F1 score), timing and the distributed reduce.

Every evaluation in pixelwise (validation during ``train``, ``eval``, ``demo``, ``reproduce``)
feeds an :class:`Evaluator` with predictions and reads one results dict from it, so every
number they print is computed the same way. :func:`evaluate_samples` is the loop for the common
case of one prediction function over a sequence of samples.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from pixelwise.metrics import BoundaryF1, ConfusionMatrix, Metric, SizeBucketIU, all_reduce_sum_


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

    The metrics are a list of :class:`pixelwise.metrics.Metric`: the confusion matrix and IU by
    object size always, then the boundary F1 score with ``boundary=True``, then ``metrics`` (further
    accumulators, on the same classes, whose ``compute()`` keys must not clash with the others').
    Batches padded at the bottom/right with ``ignore_index`` (``pad_collate``) score each image on
    its own region: the padding counts nowhere in the confusion matrices, and BF cuts trailing
    ignore rows and columns off each image and draws no boundary along ignore pixels
    (:func:`pixelwise.metrics.boundary_f1`).
    """

    def __init__(self, num_classes: int, *, ignore_index: int = 255, device: torch.device | str = "cpu",
                 boundary: bool = False, metrics: Sequence[Metric] = ()) -> None:
        self.device = torch.device(device)
        self.confusion = ConfusionMatrix(num_classes, ignore_index, device=self.device)
        self.sizes = SizeBucketIU(num_classes, ignore_index, device=self.device)
        self.boundary = BoundaryF1(num_classes, ignore_index, device=self.device) if boundary else None
        self.metrics: list[Metric] = [self.confusion, self.sizes]
        if self.boundary is not None:
            self.metrics.append(self.boundary)
        self.metrics.extend(metrics)
        # whether each metric was fed: a metric needing extra maps only once a batch brought them
        self._fed = [not m.inputs for m in self.metrics]
        self.images = 0
        self.seconds = 0.0

    @property
    def have_sizes(self) -> bool:
        """Whether some batch on this process had a size map."""
        return self._fed[1]

    def add(self, pred: Any, target: Any, *, size_map: Any = None, images: int = 1, seconds: float = 0.0) -> None:
        """Count one prediction (``images`` images of it) and the ``seconds`` it took."""
        pred_t = _tensor(_labels(pred), self.device)
        target_t = _tensor(target, self.device)
        maps = {} if size_map is None else {"size_map": _tensor(size_map, self.device)}
        for i, metric in enumerate(self.metrics):
            if all(k in maps for k in metric.inputs):
                metric.update(pred_t, target_t, **{k: maps[k] for k in metric.inputs})
                self._fed[i] = True
        self.images += images
        self.seconds += seconds

    def result(self) -> dict:
        """Sum the counts of every process (under ``torch.distributed``) and return the
        metrics: :meth:`ConfusionMatrix.compute` plus ``confusion`` (C x C list), ``images``,
        ``seconds``, ``ms_per_image``, when some image had a size map ``size_buckets``, and with
        ``boundary=True`` ``boundary_f1`` and ``per_class_bf`` (:meth:`BoundaryF1.compute`)."""
        self.confusion.all_reduce()
        counts = all_reduce_sum_(torch.tensor([self.images, *map(int, self._fed[1:])], device=self.device))
        results = self.confusion.compute()
        results["confusion"] = self.confusion.matrix.cpu().tolist()
        results["images"] = int(counts[0])
        results["seconds"] = self.seconds
        results["ms_per_image"] = 1000.0 * self.seconds / max(1, self.images)
        for metric, fed in zip(self.metrics[1:], counts[1:].tolist(), strict=True):
            if not fed:
                continue
            scores = metric.all_reduce().compute()
            if metric.result_key is not None:
                scores = {metric.result_key: scores}
            clash = results.keys() & scores.keys()
            if clash:
                raise ValueError(f"{type(metric).__name__} reports keys already in the results: {sorted(clash)}")
            results.update(scores)
        return results


def evaluate_samples(samples: Iterable[dict], predict: Callable[[dict], np.ndarray], num_classes: int, *,
                     ignore_index: int = 255, device: torch.device | str = "cpu", progress: bool = False,
                     desc: str = "eval", total: int | None = None, boundary: bool = False) -> dict:
    """Evaluate ``predict(sample) -> (C, H, W)`` scores (or ``(H, W)`` labels) on every sample
    (dicts with ``mask`` and optionally ``size_map``); return :meth:`Evaluator.result`, where
    ``seconds`` is the time spent in ``predict``. ``boundary=True`` adds the boundary F1 score."""
    evaluator = Evaluator(num_classes, ignore_index=ignore_index, device=device, boundary=boundary)
    for sample in tqdm(samples, desc=desc, total=total, disable=not progress or None, leave=False):
        start = time.perf_counter()
        pred = predict(sample)
        evaluator.add(pred, sample["mask"], size_map=sample.get("size_map"), seconds=time.perf_counter() - start)
    return evaluator.result()
