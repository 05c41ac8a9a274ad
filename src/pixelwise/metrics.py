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
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

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


def _pct(v: float) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100.0 * v:.1f}"


def format_table(
    results: Mapping, class_names: Sequence[str] | None = None, *, per_class: bool = True
) -> str:
    """Return the FCN paper's Table 2 layout (percent, 1 decimal) and a per-class IU table.

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
    lines = [" " * label_w + "".join(f"  {h:>10}" for h in heads)]
    for name, r in rows.items():
        lines.append(f"{name:<{label_w}}" + "".join(f"  {_pct(r[k]):>10}" for k in keys))
    if per_class:
        n = max(len(r["per_class_iu"]) for r in rows.values())
        names = list(class_names) if class_names is not None else []
        names += [f"class_{i}" for i in range(len(names), n)]
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
