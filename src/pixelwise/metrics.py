"""Segmentation metrics: the FCN paper's four numbers from a confusion matrix, and IU by object size.

With ``n_ij`` the number of pixels of true class ``i`` predicted as ``j``, ``t_i = sum_j n_ij``
and ``n_cl`` classes (Long et al. 2015, section 5):

- pixel accuracy   ``sum_i n_ii / sum_i t_i``
- mean accuracy    ``(1/n_cl) sum_i n_ii / t_i``
- mean IU          ``(1/n_cl) sum_i n_ii / (t_i + sum_j n_ji - n_ii)``
- frequency weighted IU ``(sum_k t_k)^-1 sum_i t_i n_ii / (t_i + sum_j n_ji - n_ii)``

As in the reference scorer, pixels labelled ``ignore_index`` (255) are not counted and the means
are over the classes where the ratio is defined: a class absent from both truth and prediction has
IU NaN and is left out; a class predicted but absent from the truth has IU 0 and counts; a class
with ``t_i = 0`` has accuracy NaN and is left out of mean accuracy.

:func:`boundary_f1` and :class:`BoundaryF1` give the boundary F1 score (BF) of the SegNet paper
(Badrinarayanan et al., TPAMI 2017, after Csurka et al., BMVC 2013); the definition and where it
departs from the authors' MATLAB scorer are in :func:`boundary_f1`. Every accumulator here follows
the :class:`Metric` protocol that :class:`pixelwise.evaluator.Evaluator` drives.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np
import torch

SIZE_BUCKETS = ("small", "medium", "large")


def all_reduce_sum_(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` in place over all processes when ``torch.distributed`` is initialised;
    returns it."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


@runtime_checkable
class Metric(Protocol):
    """What :class:`pixelwise.evaluator.Evaluator` needs of a metric: summable counts, updated per
    batch, added across accumulators and processes, and turned into numbers only at the end.

    :class:`ConfusionMatrix`, :class:`SizeBucketIU` and :class:`BoundaryF1` satisfy it.
    ``inputs`` names the extra per-pixel maps ``update`` takes by keyword after ``pred`` and
    ``target`` (``("size_map",)`` for :class:`SizeBucketIU`, ``()`` for the others): the evaluator
    updates a metric only with batches that bring them. ``result_key`` says where the evaluator puts
    ``compute()``'s dict: under that key of its results, or merged into the top level when None.
    """

    inputs: ClassVar[tuple[str, ...]]
    result_key: ClassVar[str | None]

    def update(self, pred: Any, target: Any, **inputs: Any) -> None:
        """Count integer labels ``pred`` against ``target`` (same shape) and the maps in ``inputs``."""

    def merge(self, other: Any) -> Any:
        """Add another accumulator's counts of the same kind and settings to this one; return self."""

    def all_reduce(self) -> Any:
        """Sum the counts over processes when ``torch.distributed`` is initialised; return self."""

    def compute(self) -> dict:
        """Return the metric's numbers from the counts so far."""

    def reset(self) -> None:
        """Set every count to zero."""


def _as_long_tensor(x, device: torch.device | None) -> torch.Tensor:
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if t.is_floating_point() or t.is_complex() or t.dtype == torch.bool:
        raise TypeError(
            f"expected integer label tensors, got {t.dtype} (take argmax of the scores first)"
        )
    if device is not None and t.device != device:
        t = t.to(device)
    return t.long()


def _nanmean(values: np.ndarray) -> float:
    ok = ~np.isnan(values)
    return float(values[ok].mean()) if ok.any() else math.nan


def scores_from_matrix(matrix: np.ndarray | torch.Tensor) -> dict:
    """Return the metrics of a ``(C, C)`` confusion matrix (rows truth, columns prediction).

    Keys: ``pixel_acc``, ``mean_acc``, ``mean_iu``, ``fw_iu`` (floats in 0..1, NaN when no pixel was
    counted), ``per_class_iu``, ``per_class_acc`` (lists of C floats, NaN where undefined) and
    ``num_pixels`` (int).
    """
    if isinstance(matrix, torch.Tensor):
        matrix = matrix.detach().cpu().numpy()
    hist = np.asarray(matrix, dtype=np.float64)
    if hist.ndim != 2 or hist.shape[0] != hist.shape[1]:
        raise ValueError(f"confusion matrix must be (C, C), got {hist.shape}")
    diag = np.diag(hist)
    truth = hist.sum(axis=1)
    pred = hist.sum(axis=0)
    union = truth + pred - diag
    total = truth.sum()
    with np.errstate(divide="ignore", invalid="ignore"):
        acc = np.where(truth > 0, diag / truth, np.nan)
        iu = np.where(union > 0, diag / union, np.nan)
    if total > 0:
        pixel_acc = float(diag.sum() / total)
        present = truth > 0
        fw_iu = float((truth[present] / total * iu[present]).sum())
    else:
        pixel_acc = fw_iu = math.nan
    return {
        "pixel_acc": pixel_acc,
        "mean_acc": _nanmean(acc),
        "mean_iu": _nanmean(iu),
        "fw_iu": fw_iu,
        "per_class_iu": [float(v) for v in iu],
        "per_class_acc": [float(v) for v in acc],
        "num_pixels": int(total),
    }


class ConfusionMatrix:
    """Accumulates a ``(C, C)`` int64 confusion matrix (rows truth, columns prediction) on a device.

    ``update`` takes integer label tensors (or arrays) of one shape on any device; the matrix lives
    on ``device`` (default: the device of the first update) and is filled with ``torch.bincount``
    there, so evaluation on a GPU needs no transfer per batch.
    """

    inputs: ClassVar[tuple[str, ...]] = ()
    result_key: ClassVar[str | None] = None

    def __init__(
        self, num_classes: int, ignore_index: int = 255, device: torch.device | str | None = None
    ) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self._device = torch.device(device) if device is not None else None
        self._matrix: torch.Tensor | None = None

    @property
    def device(self) -> torch.device:
        """Device the matrix lives on (CPU until the first update if none was given)."""
        return self._device if self._device is not None else torch.device("cpu")

    @property
    def matrix(self) -> torch.Tensor:
        """The ``(C, C)`` int64 matrix; ``matrix[i, j]`` = pixels of truth ``i`` predicted ``j``."""
        if self._matrix is None:
            self._matrix = torch.zeros(
                self.num_classes, self.num_classes, dtype=torch.int64, device=self.device
            )
        return self._matrix

    def reset(self) -> None:
        """Set every count to zero."""
        if self._matrix is not None:
            self._matrix.zero_()

    def update(self, pred, target) -> None:
        """Count ``pred`` against ``target``: integer labels of the same shape (any shape, any device).

        Target pixels equal to ``ignore_index`` are skipped. Any other target or prediction outside
        ``0..C-1`` raises ValueError (it signals a class-count mismatch).
        """
        if self._device is None:  # adopt the device of the first update
            self._device = (
                target.device if isinstance(target, torch.Tensor) else torch.device("cpu")
            )
            if self._matrix is not None:
                self._matrix = self._matrix.to(self._device)
        dev = self.device
        p = _as_long_tensor(pred, dev)
        t = _as_long_tensor(target, dev)
        if p.shape != t.shape:
            raise ValueError(f"pred and target shapes differ: {tuple(p.shape)} vs {tuple(t.shape)}")
        c = self.num_classes
        t = t.reshape(-1)
        p = p.reshape(-1)
        keep = t != self.ignore_index
        bad_t = keep & ((t < 0) | (t >= c))
        bad_p = keep & ((p < 0) | (p >= c))
        if bool((bad_t | bad_p).any()):  # the only host sync per update
            tv = torch.unique(t[bad_t]).tolist()[:5]
            pv = torch.unique(p[bad_p]).tolist()[:5]
            raise ValueError(
                f"labels outside 0..{c - 1} (target {tv}, prediction {pv}); "
                f"ignore_index is {self.ignore_index}"
            )
        # ignored pixels go to an extra bin that is dropped, so no boolean indexing is needed
        index = torch.where(keep, t * c + p, torch.full_like(t, c * c))
        counts = torch.bincount(index, minlength=c * c + 1)[: c * c]
        self.matrix.add_(counts.view(c, c))

    def merge(self, other: "ConfusionMatrix") -> "ConfusionMatrix":
        """Add another matrix's counts to this one (same classes and ignore index); returns self."""
        if other.num_classes != self.num_classes or other.ignore_index != self.ignore_index:
            raise ValueError(
                f"cannot merge a {other.num_classes}-class matrix (ignore {other.ignore_index}) "
                f"into a {self.num_classes}-class one (ignore {self.ignore_index})"
            )
        self.matrix.add_(other.matrix.to(self.matrix.device))
        return self

    def all_reduce(self) -> "ConfusionMatrix":
        """Sum the matrix over all processes when ``torch.distributed`` is initialised; returns self.

        With the NCCL backend the matrix must be on the process's GPU (pass ``device=``).
        """
        all_reduce_sum_(self.matrix)
        return self

    def compute(self) -> dict:
        """Return :func:`scores_from_matrix` of the accumulated matrix."""
        return scores_from_matrix(self.matrix)

    def state_dict(self) -> dict:
        """Return ``{"num_classes", "ignore_index", "matrix" (C, C) int64 CPU tensor}``."""
        return {
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "matrix": self.matrix.detach().cpu().clone(),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore counts saved by :meth:`state_dict`."""
        m = torch.as_tensor(state["matrix"], dtype=torch.int64)
        if tuple(m.shape) != (self.num_classes, self.num_classes):
            raise ValueError(
                f"saved matrix is {tuple(m.shape)}, expected {self.num_classes} classes"
            )
        self.matrix.copy_(m.to(self.matrix.device))

    def __repr__(self) -> str:
        return f"ConfusionMatrix(num_classes={self.num_classes}, pixels={int(self.matrix.sum())})"


class SizeBucketIU:
    """Scores by object size, from the synthetic data's ``size_map`` (0 background, 1 small,
    2 medium, 3 large, 255 ignore) or any map built with ``size_map_from_instances``.

    For each bucket ``b`` two numbers:

    - ``acc`` (recall by size): the fraction of the bucket's object pixels predicted as their true
      class, ``sum(pred == truth on size_map == b) / count(size_map == b)``;
    - ``mean_iu``: the mean IU of a confusion matrix accumulated over the bucket's object pixels
      plus all background pixels (truth 0). Background pixels predicted as an object class are
      false positives of that class in every bucket; object pixels of the *other* buckets are left
      out, so their errors do not blur this bucket's score. ``per_class_iu`` is also given.

    Pixels where the target is ``ignore_index`` or the size map is 255 are skipped.
    """

    inputs: ClassVar[tuple[str, ...]] = ("size_map",)
    result_key: ClassVar[str | None] = "size_buckets"

    def __init__(
        self, num_classes: int, ignore_index: int = 255, device: torch.device | str | None = None
    ) -> None:
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.matrices = {
            b: ConfusionMatrix(num_classes, ignore_index, device) for b in SIZE_BUCKETS
        }

    def reset(self) -> None:
        """Set every count to zero."""
        for m in self.matrices.values():
            m.reset()

    def update(self, pred, target, size_map) -> None:
        """Count one batch: ``pred``, ``target``, ``size_map`` integer tensors of the same shape."""
        dev = target.device if isinstance(target, torch.Tensor) else torch.device("cpu")
        p = _as_long_tensor(pred, dev)
        t = _as_long_tensor(target, dev)
        s = _as_long_tensor(size_map, dev)
        if not (p.shape == t.shape == s.shape):
            raise ValueError(
                f"pred, target and size_map shapes differ: {tuple(p.shape)}, {tuple(t.shape)}, "
                f"{tuple(s.shape)}"
            )
        t = torch.where(s == 255, torch.full_like(t, self.ignore_index), t)
        background = t == 0
        for code, bucket in enumerate(SIZE_BUCKETS, start=1):
            sel = background | (s == code)
            self.matrices[bucket].update(p[sel], t[sel])

    def merge(self, other: "SizeBucketIU") -> "SizeBucketIU":
        """Add another accumulator's counts; returns self."""
        for b in SIZE_BUCKETS:
            self.matrices[b].merge(other.matrices[b])
        return self

    def all_reduce(self) -> "SizeBucketIU":
        """Sum over processes when ``torch.distributed`` is initialised; returns self."""
        for m in self.matrices.values():
            m.all_reduce()
        return self

    def compute(self) -> dict:
        """Return ``{bucket: {"acc", "mean_iu", "per_class_iu", "pixels"}}`` for small/medium/large;
        ``acc``/``mean_iu`` are floats in 0..1 (NaN when the bucket has no pixels), ``pixels`` is the
        bucket's object-pixel count."""
        out = {}
        for b in SIZE_BUCKETS:
            hist = self.matrices[b].matrix.detach().cpu().numpy().astype(np.float64)
            obj = hist.copy()
            obj[0, :] = 0  # drop the background rows: recall over the bucket's object pixels only
            pixels = obj.sum()
            scores = scores_from_matrix(hist)
            out[b] = {
                "acc": float(np.trace(obj) / pixels) if pixels > 0 else math.nan,
                "mean_iu": scores["mean_iu"],
                "per_class_iu": scores["per_class_iu"],
                "pixels": int(pixels),
            }
        return out


# --- boundaries and the boundary F1 score ---------------------------------------------------------


def label_changes(labels: np.ndarray, valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(down, right)``, the pairs of 4-adjacent pixels of the ``(H, W)`` label map whose
    labels differ: ``down[i, j]`` for pixels ``(i, j)`` and ``(i + 1, j)`` (shape ``(H - 1, W)``),
    ``right[i, j]`` for ``(i, j)`` and ``(i, j + 1)`` (shape ``(H, W - 1)``). With a ``valid``
    mask, a pair with an invalid pixel is never a change.

    Both boundary drawings build on these pairs: :func:`class_boundaries` (one thin line per
    class, for BF) and :func:`boundary_band` (the synthetic world's ignore band).
    """
    down = labels[1:, :] != labels[:-1, :]
    right = labels[:, 1:] != labels[:, :-1]
    if valid is not None:
        down &= valid[1:, :] & valid[:-1, :]
        right &= valid[:, 1:] & valid[:, :-1]
    return down, right


def boundary_band(labels: np.ndarray, width: int) -> np.ndarray:
    """Return the ``(H, W)`` bool band of ``width`` pixels on each side of every label change in
    the ``(H, W)`` label map (``width`` >= 1): both pixels of every changing pair of
    :func:`label_changes`, dilated ``width - 1`` times (4-connected). The synthetic world's
    ``ignore_border`` band, like VOC's."""
    down, right = label_changes(labels)
    edge = np.zeros(labels.shape, dtype=bool)
    edge[:, 1:] |= right
    edge[:, :-1] |= right
    edge[1:, :] |= down
    edge[:-1, :] |= down
    if width > 1:
        from scipy import ndimage  # lazily: `predict` must start without scipy

        edge = ndimage.binary_dilation(edge, iterations=width - 1)
    return edge


_WORDS = ((8, np.uint8), (16, np.uint16), (32, np.uint32), (64, np.uint64))


def _class_words(num_classes: int) -> list[tuple[int, np.ndarray]]:
    """Pack classes into bit planes: for each group of up to 64 classes ``(first class, table)``,
    where ``table[label]`` has bit ``label - first`` set for the group's labels and is 0 for the
    other labels and for index ``num_classes`` (invalid pixels)."""
    groups = []
    for first in range(0, num_classes, 64):
        n = min(64, num_classes - first)
        dtype = next(t for bits, t in _WORDS if n <= bits)
        table = np.zeros(num_classes + 1, dtype=dtype)
        table[first:first + n] = np.left_shift(np.ones(n, dtype=dtype), np.arange(n, dtype=dtype))
        groups.append((first, table))
    return groups


def _thin_boundary(down: np.ndarray, right: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Place changing pairs on pixels as BSDS ``seg2bdry(seg, 'imageSize')`` does: pixel ``(i, j)``
    is on the boundary when one of the four pairs of the 2x2 block whose top-left corner it is
    changes (``right[i, j]``, ``right[i + 1, j]``, ``down[i, j]``, ``down[i, j + 1]``); pairs
    outside the image do not exist. Works for bool maps and for bit-plane words."""
    out = np.zeros(shape, dtype=right.dtype)
    out[:, :-1] |= right
    out[:-1, :-1] |= right[1:, :]
    out[:-1, :] |= down
    out[:-1, :-1] |= down[:, 1:]
    return out


def _boundary_words(index: np.ndarray, valid: np.ndarray, down: np.ndarray, right: np.ndarray,
                    table: np.ndarray) -> np.ndarray:
    """Bit-plane boundary map: bit ``k`` of pixel ``(i, j)`` says whether the pixel is on the thin
    boundary of class ``first + k``. A changing pair is a boundary of the classes of both pixels.
    Invalid pixels are outside the image, as beyond the frame: no boundary pixel lies on one (each
    changing pair keeps its top/left pixel, which is valid)."""
    bits = table[index]
    zero = table.dtype.type(0)
    down_bits = np.where(down, bits[1:, :] | bits[:-1, :], zero)
    right_bits = np.where(right, bits[:, 1:] | bits[:, :-1], zero)
    return np.where(valid, _thin_boundary(down_bits, right_bits, index.shape), zero)


def class_boundaries(labels: Any, num_classes: int, *, ignore_index: int = 255) -> np.ndarray:
    """Return the ``(C, H, W)`` bool thin boundary of each class's binary mask in the ``(H, W)``
    label map, as :func:`boundary_f1` draws it: BSDS ``seg2bdry(labels == c, 'imageSize')``
    (one-pixel lines on the top/left side of each change, none along the image frame), where
    pixels labelled ``ignore_index`` count as outside the image: a pair with one is no change and
    no boundary pixel lies on one."""
    lab = np.asarray(labels).astype(np.int64, copy=False)
    valid = lab != ignore_index
    index = np.where(valid & (lab >= 0) & (lab < num_classes), lab, num_classes)
    down, right = label_changes(index, valid)
    out = np.zeros((num_classes, *lab.shape), dtype=bool)
    for first, table in _class_words(num_classes):
        words = _boundary_words(index, valid, down, right, table)
        for k in range(min(64, num_classes - first)):
            out[first + k] = (words >> table.dtype.type(k)) & table.dtype.type(1) != 0
    return out


def _tolerance_disc(theta: float) -> list[int]:
    """Half-widths ``[w_0, .., w_R]`` of the disc of offsets ``u*u + v*v <= theta*theta``:
    row ``v`` spans ``-w_v..w_v``. The test is BSDS ``matchEdgeMaps``'s ``d2 > maxDist*maxDist``,
    in the same double arithmetic."""
    r2 = theta * theta
    widths = []
    v = 0
    while v * v <= r2:
        u = 0
        while (u + 1) * (u + 1) + v * v <= r2:
            u += 1
        widths.append(u)
        v += 1
    return widths


def _dilate_words(words: np.ndarray, widths: list[int]) -> np.ndarray:
    """OR of ``words`` over the disc of :func:`_tolerance_disc` (rows of growing horizontal
    dilations, then shifted vertically): bit ``k`` says a class-``k`` pixel is within theta."""
    rows = [words]
    for k in range(1, max(widths) + 1):
        cur = rows[-1].copy()
        cur[:, k:] |= words[:, :-k]
        cur[:, :-k] |= words[:, k:]
        rows.append(cur)
    out = rows[widths[0]].copy()
    for v in range(1, len(widths)):
        src = rows[widths[v]]
        out[v:, :] |= src[:-v, :]
        out[:-v, :] |= src[v:, :]
    return out


def _bit_counts(words: np.ndarray, n: int) -> np.ndarray:
    """Number of pixels with each of the first ``n`` bits set, as int64: a histogram of the word
    values (16 bits at a time) times the bits of each value that occurs."""
    size = words.dtype.itemsize
    lane_bits = 8 if size == 1 else 16
    lanes = words.reshape(-1, 1) if size == 1 else (
        words.astype(words.dtype.newbyteorder("<"), copy=False).view("<u2").reshape(-1, size // 2))
    shifts = np.arange(lane_bits)
    counts = np.zeros(lanes.shape[1] * lane_bits, dtype=np.int64)
    for j in range(lanes.shape[1]):
        hist = np.bincount(lanes[:, j])
        values = np.flatnonzero(hist[1:]) + 1
        bits = (values[:, None] >> shifts) & 1
        counts[j * lane_bits:(j + 1) * lane_bits] = hist[values] @ bits
    return counts[:n]


def _as_label_array(x: Any) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.dtype.kind not in "iu":
        raise TypeError(
            f"expected integer label arrays, got {a.dtype} (take argmax of the scores first)"
        )
    return a.astype(np.int64, copy=False)


def _boundary_counts(pred: np.ndarray, target: np.ndarray, num_classes: int, ignore_index: int,
                     tolerance: float, groups: list[tuple[int, np.ndarray]]):
    """Per-class counts of one ``(H, W)`` image: ``(present (C,) bool, counts (4, C) int64)`` with
    rows predicted boundary pixels, those within theta of a true one, true boundary pixels, those
    within theta of a predicted one; None when the truth has no valid pixel."""
    c = num_classes
    valid = target != ignore_index
    bad_t = valid & ((target < 0) | (target >= c))
    bad_p = valid & ((pred < 0) | (pred >= c))
    if bad_t.any() or bad_p.any():
        raise ValueError(
            f"labels outside 0..{c - 1} (target {np.unique(target[bad_t])[:5].tolist()}, "
            f"prediction {np.unique(pred[bad_p])[:5].tolist()}); ignore_index is {ignore_index}"
        )
    rows = np.flatnonzero(valid.any(axis=1))
    if rows.size == 0:
        return None
    h = int(rows[-1]) + 1  # trailing ignore rows and columns are padding: the image ends before
    w = int(np.flatnonzero(valid.any(axis=0))[-1]) + 1
    valid = valid[:h, :w]
    t = np.where(valid, target[:h, :w], c)
    p = np.where(valid, pred[:h, :w], c)
    present = np.bincount(t.ravel(), minlength=c + 1)[:c] > 0
    widths = _tolerance_disc(tolerance * math.sqrt(h * h + w * w))
    t_down, t_right = label_changes(t, valid)
    p_down, p_right = label_changes(p, valid)
    counts = np.zeros((4, c), dtype=np.int64)
    for first, table in groups:
        n = min(64, c - first)
        tb = _boundary_words(t, valid, t_down, t_right, table)
        pb = _boundary_words(p, valid, p_down, p_right, table)
        sl = slice(first, first + n)
        counts[0, sl] = _bit_counts(pb, n)
        counts[1, sl] = _bit_counts(pb & _dilate_words(tb, widths), n)
        counts[2, sl] = _bit_counts(tb, n)
        counts[3, sl] = _bit_counts(tb & _dilate_words(pb, widths), n)
    return present, counts


def _f1_from_counts(present: np.ndarray, counts: np.ndarray) -> np.ndarray:
    pred_n, pred_hit, true_n, true_hit = counts.astype(np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        precision = np.where(pred_n > 0, pred_hit / pred_n, 0.0)
        recall = np.where(true_n > 0, true_hit / true_n, 0.0)
        f1 = np.where(precision + recall > 0, 2 * precision * recall / (precision + recall), 0.0)
    scored = present & ((pred_n > 0) | (true_n > 0))
    return np.where(scored, f1, np.nan)


def boundary_f1(pred: Any, target: Any, num_classes: int, *, ignore_index: int = 255,
                tolerance: float = 0.0075) -> tuple[float, np.ndarray]:
    """Return the boundary F1 score (BF) of one image and its per-class F1 ``(num_classes,)``.

    ``pred`` and ``target`` are ``(H, W)`` integer label maps (numpy or torch). The definition is
    the SegNet authors' scorer (``Scripts/computeBFmeasure.m`` in alexgkendall/SegNet-Tutorial,
    which calls the BSDS benchmark's ``seg2bdry`` and ``correspondPixels``), with the differences
    listed below:

    - **Boundary pixels** of class ``c``: ``seg2bdry(mask == c, 'imageSize')``, a one-pixel line:
      pixel ``(i, j)`` is on it when the 2x2 block with top-left ``(i, j)`` has a pair of 4-adjacent
      pixels on different sides of the mask (:func:`class_boundaries`). The line lies on the
      top/left side of each change, whichever side is the class; the image frame is no boundary.
      Both maps use the same drawing.
    - **Tolerance** ``theta = tolerance * sqrt(H*H + W*W)`` pixels, not rounded (``correspondPixels``
      passes ``maxDist * idiag``, ``idiag = sqrt(rows*rows + cols*cols)``, and the script sets
      ``maxDist = 0.0075``: 4.5 px at 360x480, 3 px at 240x320). Two
      pixels are close when their Euclidean distance is ``<= theta`` (``matchEdgeMaps`` skips
      ``d2 > maxDist*maxDist``).
    - **Precision** of class ``c``: the fraction of predicted boundary pixels within theta of a true
      boundary pixel (the Euclidean distance transform of the true boundary, ``bwdist``, thresholded
      at theta); **recall**: the fraction of true boundary pixels within theta of a predicted one.
      Each is 0 when its map has no boundary pixel; ``F1 = 2PR / (P + R)``, 0 when ``P + R = 0``.
      ``correspondPixels`` instead matches pixels one to one (a minimum-cost assignment), so one
      predicted pixel can vouch for one true pixel only; the distance test here is what
      ``matchEdgeMaps`` calls "matchable", an upper bound on the matched counts that equals them
      when the two lines run alike (a doubled or frayed line scores higher here).
    - **Terms**: the classes present in the truth (Csurka et al. and the script's comment). A class
      present in the truth but with a boundary in neither map (it fills the valid region, touching
      only the frame and void, in both) has no term (NaN), as in the script (``classcount`` stays
      0); with a predicted boundary only, its F1 is 0. So an image of one class scores NaN when
      predicted perfectly and 0 otherwise. The script's code also gives a zero term to a class that
      only the prediction has (``sumP > 0``), against its comment; here such a class adds no term.
    - **BF of the image**: the mean F1 over the terms, NaN when there is none (no valid pixel, or
      one class predicted perfectly). The data set's BF (:class:`BoundaryF1`) is the mean over the
      images with a BF; the script divides by every image, counting those as 0.
    - **Void** (``ignore_index``; label 11 in SegNet's CamVid annotations, 0 in SUN RGB-D): the
      script gives it no term but otherwise ignores it: void is just "not class ``c``", so a class
      next to void has a true boundary there, and the prediction over void is scored as it is.
      Here void pixels are outside the image, as beyond the frame: a pair with a void pixel is no
      change in either map and no boundary pixel lies on void, so no boundary runs along void in
      the truth or the prediction, and the prediction over void is not looked at. Distances still
      run across void. Trailing rows and columns that are all void (the bottom/right padding of a
      batch) are cut off before theta is taken from the size, so a padded image scores as the
      image alone.

    Labels outside ``0..num_classes - 1`` where the truth is valid raise ValueError.
    """
    p = _as_label_array(pred)
    t = _as_label_array(target)
    if p.shape != t.shape or t.ndim != 2:
        raise ValueError(f"expected two (H, W) label maps, got {p.shape} and {t.shape}")
    out = _boundary_counts(p, t, int(num_classes), int(ignore_index), float(tolerance),
                           _class_words(int(num_classes)))
    if out is None:
        return math.nan, np.full(int(num_classes), np.nan)
    f1 = _f1_from_counts(*out)
    return _nanmean(f1), f1


class BoundaryF1:
    """Accumulates the boundary F1 score (BF, :func:`boundary_f1`) image by image.

    The state is summable: the sum and count of image BFs and, per class, the sum and count of the
    images' class F1. ``compute`` returns their means: ``boundary_f1`` over the images with a BF,
    ``per_class_bf[c]`` over the images where class ``c`` had a term (NaN where none had). The
    scoring runs on the CPU with numpy; ``device`` only says where ``all_reduce`` sums (default:
    the device of the first update; with NCCL, the process's GPU).
    """

    inputs: ClassVar[tuple[str, ...]] = ()
    result_key: ClassVar[str | None] = None

    def __init__(self, num_classes: int, ignore_index: int = 255, tolerance: float = 0.0075,
                 device: torch.device | str | None = None) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if not tolerance >= 0:
            raise ValueError(f"tolerance must be >= 0, got {tolerance}")
        self.num_classes = int(num_classes)
        self.ignore_index = int(ignore_index)
        self.tolerance = float(tolerance)
        self._device = torch.device(device) if device is not None else None
        self._groups = _class_words(self.num_classes)
        # [image BF sum, images with a BF, class F1 sums (C), class term counts (C)]
        self._state = np.zeros(2 + 2 * self.num_classes, dtype=np.float64)

    @property
    def device(self) -> torch.device:
        """Device ``all_reduce`` sums on (CPU until the first update if none was given)."""
        return self._device if self._device is not None else torch.device("cpu")

    def reset(self) -> None:
        """Set every count to zero."""
        self._state[:] = 0.0

    def update(self, pred, target) -> None:
        """Score integer label maps: one image ``(H, W)`` or a batch ``(N, H, W)``, each image on
        its own (tensors on any device, or numpy)."""
        if self._device is None:
            self._device = target.device if isinstance(target, torch.Tensor) else torch.device("cpu")
        p = _as_label_array(pred)
        t = _as_label_array(target)
        if p.shape != t.shape:
            raise ValueError(f"pred and target shapes differ: {p.shape} vs {t.shape}")
        if t.ndim == 2:
            p, t = p[None], t[None]
        if t.ndim != 3:
            raise ValueError(f"expected (H, W) or (N, H, W) label maps, got {t.shape}")
        c = self.num_classes
        for pi, ti in zip(p, t, strict=True):
            out = _boundary_counts(pi, ti, c, self.ignore_index, self.tolerance, self._groups)
            if out is None:
                continue
            f1 = _f1_from_counts(*out)
            scored = ~np.isnan(f1)
            if scored.any():
                self._state[0] += f1[scored].mean()
                self._state[1] += 1
            self._state[2:2 + c] += np.where(scored, f1, 0.0)
            self._state[2 + c:] += scored

    def _check_same(self, other: "BoundaryF1") -> None:
        mine = (self.num_classes, self.ignore_index, self.tolerance)
        theirs = (other.num_classes, other.ignore_index, other.tolerance)
        if mine != theirs:
            raise ValueError(
                f"cannot merge BoundaryF1 (classes, ignore, tolerance) {theirs} into {mine}"
            )

    def merge(self, other: "BoundaryF1") -> "BoundaryF1":
        """Add another accumulator's sums (same classes, ignore index and tolerance); returns self."""
        self._check_same(other)
        self._state += other._state
        return self

    def all_reduce(self) -> "BoundaryF1":
        """Sum the sums and counts over all processes when ``torch.distributed`` is initialised;
        returns self."""
        import torch.distributed as dist

        if dist.is_available() and dist.is_initialized():
            summed = all_reduce_sum_(torch.as_tensor(self._state, device=self.device))
            self._state = summed.cpu().numpy().astype(np.float64)
        return self

    def compute(self) -> dict:
        """Return ``{"boundary_f1": float, "per_class_bf": list of C floats}`` (0..1, NaN where no
        image counted)."""
        c = self.num_classes
        s = self._state
        with np.errstate(divide="ignore", invalid="ignore"):
            per_class = np.where(s[2 + c:] > 0, s[2:2 + c] / s[2 + c:], np.nan)
        return {
            "boundary_f1": float(s[0] / s[1]) if s[1] > 0 else math.nan,
            "per_class_bf": [float(v) for v in per_class],
        }

    def state_dict(self) -> dict:
        """Return ``{"num_classes", "ignore_index", "tolerance", "sums" (2 + 2C,) float64 CPU tensor}``."""
        return {
            "num_classes": self.num_classes,
            "ignore_index": self.ignore_index,
            "tolerance": self.tolerance,
            "sums": torch.from_numpy(self._state.copy()),
        }

    def load_state_dict(self, state: dict) -> None:
        """Restore sums saved by :meth:`state_dict`."""
        sums = torch.as_tensor(state["sums"], dtype=torch.float64).cpu().numpy()
        if sums.shape != self._state.shape:
            raise ValueError(f"saved sums are {sums.shape}, expected {self._state.shape}")
        self._state = sums.copy()

    def __repr__(self) -> str:
        return (f"BoundaryF1(num_classes={self.num_classes}, tolerance={self.tolerance}, "
                f"images={int(self._state[1])})")


def fallback_class_names(names: Sequence[str] | None, n: int) -> list[str]:
    """Return ``names`` as a list padded to ``n`` entries with ``class_<i>`` for the classes it does
    not name (a longer list is kept whole; None counts as no names): the one spelling of an
    unnamed class."""
    given = [] if names is None else list(names)
    return given + [f"class_{i}" for i in range(len(given), n)]


def _pct(v: float) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100.0 * v:.1f}"


def format_table(
    results: Mapping, class_names: Sequence[str] | None = None, *, per_class: bool = True
) -> str:
    """Return the FCN paper's Table 2 layout (percent, 1 decimal; with the boundary F1 score when
    every row has one) and a per-class IU table.

    ``results`` is one :meth:`ConfusionMatrix.compute` dict, or a mapping of row name -> such a
    dict (e.g. ``{"FCN-32s": r32, "FCN-8s": r8}``) to print several rows side by side. Undefined
    values (NaN) print as ``-``.
    """
    rows = {"": results} if "mean_iu" in results else dict(results)
    if not rows:
        return "(no results)"
    label_w = max([len(str(k)) for k in rows] + [0])
    heads = ("pixel acc.", "mean acc.", "mean IU", "f.w. IU")
    keys = ("pixel_acc", "mean_acc", "mean_iu", "fw_iu")
    if all("boundary_f1" in r for r in rows.values()):
        heads, keys = (*heads, "BF"), (*keys, "boundary_f1")
    lines = [" " * label_w + "".join(f"  {h:>10}" for h in heads)]
    for name, r in rows.items():
        lines.append(f"{name:<{label_w}}" + "".join(f"  {_pct(r[k]):>10}" for k in keys))
    if per_class:
        n = max(len(r["per_class_iu"]) for r in rows.values())
        names = fallback_class_names(class_names, n)
        name_w = max(len("class"), *(len(x) for x in names[:n]))
        cols = list(rows)
        col_heads = [f"IU {c}".strip() if len(cols) > 1 else "IU" for c in cols]
        col_w = [max(6, len(h)) for h in col_heads]
        lines.append("")
        lines.append(
            f"{'id':>3}  {'class':<{name_w}}"
            + "".join(f"  {h:>{w}}" for h, w in zip(col_heads, col_w, strict=False))
        )
        for i in range(n):
            vals = [
                _pct(rows[c]["per_class_iu"][i]) if i < len(rows[c]["per_class_iu"]) else "-"
                for c in cols
            ]
            lines.append(
                f"{i:>3}  {names[i]:<{name_w}}"
                + "".join(f"  {v:>{w}}" for v, w in zip(vals, col_w, strict=False))
            )
    return "\n".join(lines)


def format_size_table(results: Mapping) -> str:
    """Return a small table of :meth:`SizeBucketIU.compute` results (percent, 1 decimal)."""
    lines = [f"{'size':<8}  {'pixels':>10}  {'acc':>6}  {'mean IU':>8}"]
    for b in SIZE_BUCKETS:
        r = results[b]
        lines.append(f"{b:<8}  {r['pixels']:>10d}  {_pct(r['acc']):>6}  {_pct(r['mean_iu']):>8}")
    return "\n".join(lines)
