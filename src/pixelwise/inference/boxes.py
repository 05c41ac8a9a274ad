"""Proposal boxes: enlarging, filtering, top-K, and the box file formats.

Boxes are ``(K, 4)`` float32 arrays ``[x0, y0, x1, y1]`` in pixels of the original image, with
``x1``/``y1`` exclusive (a box covering a whole W x H image is ``[0, 0, W, H]``); scores are
``(K,)`` float32, higher = more likely an object.

Box files (``--boxes``) give proposals per image, matched by file name, then by name without
extension:

- JSON: ``{"img1.jpg": [[x0, y0, x1, y1, score], ...], "img2": [[x0, y0, x1, y1], ...]}``
  (the score is optional; without one, earlier boxes rank higher);
- CSV: a header line ``image,x0,y0,x1,y1[,score]`` then one box per line.
"""

from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path

import numpy as np

from pixelwise.errors import DataError, PixelwiseError

ENLARGE = 1.2
"""Default box enlargement: each side scaled by 1.2 around the box centre."""
MIN_BOX = 112
"""The paper skips proposals with a side under 112 pixels (after enlarging)."""
TOP_K = 50
"""The paper keeps the 50 best proposals per image."""


def as_boxes(boxes, scores=None) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(boxes (K, 4) float32, scores (K,) float32)`` from ``(K, 4)`` or ``(K, 5)`` input.

    Missing scores rank boxes in the given order (1, 1 - 1/K, ...).
    """
    arr = np.asarray(boxes, dtype=np.float32)
    if arr.size == 0:
        arr = arr.reshape(0, 4)
    if arr.ndim != 2 or arr.shape[1] not in (4, 5):
        raise PixelwiseError(f"boxes must be (K, 4) or (K, 5) [x0, y0, x1, y1(, score)], got shape {arr.shape}")
    if scores is None and arr.shape[1] == 5:
        scores = arr[:, 4]
    if scores is None:
        k = len(arr)
        scores = 1.0 - np.arange(k, dtype=np.float32) / max(k, 1)
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    if len(scores) != len(arr):
        raise PixelwiseError(f"got {len(arr)} boxes but {len(scores)} scores")
    return np.ascontiguousarray(arr[:, :4]), scores


def box_iou_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Return the ``(K, M)`` IoU of every box in ``a`` ``(K, 4)`` with every box in ``b`` ``(M, 4)``
    (``[x0, y0, x1, y1]``, ``x1``/``y1`` exclusive; 0 where the union is empty)."""
    a = np.asarray(a, dtype=np.float64).reshape(-1, 4)[:, None, :]
    b = np.asarray(b, dtype=np.float64).reshape(-1, 4)[None, :, :]
    iw = np.clip(np.minimum(a[..., 2], b[..., 2]) - np.maximum(a[..., 0], b[..., 0]), 0, None)
    ih = np.clip(np.minimum(a[..., 3], b[..., 3]) - np.maximum(a[..., 1], b[..., 1]), 0, None)
    inter = iw * ih
    union = (a[..., 2] - a[..., 0]) * (a[..., 3] - a[..., 1]) + (b[..., 2] - b[..., 0]) * (b[..., 3] - b[..., 1]) - inter
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def objects_found(proposals: np.ndarray, objects: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Return a ``(M,)`` bool array: whether each of the ``(M, 4)`` object boxes has a proposal among
    ``proposals`` ``(K, 4)`` with IoU >= ``threshold`` (proposal recall is its mean)."""
    if len(objects) == 0 or len(proposals) == 0:
        return np.zeros(len(objects), dtype=bool)
    return box_iou_matrix(proposals, objects).max(axis=0) >= threshold


def enlarge_boxes(boxes: np.ndarray, factor: float = ENLARGE, *, square: bool = False) -> np.ndarray:
    """Return the boxes scaled by ``factor`` around their centres: ``(K, 4)`` float32.

    With ``square=True`` the shorter side is first extended to the longer one (same centre). The
    result is not clipped: it may reach past the image; the crops are zero-padded there (see
    :func:`pixelwise.inference.aggregate.crop_boxes`).
    """
    b = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    cx, cy = (b[:, 0] + b[:, 2]) / 2, (b[:, 1] + b[:, 3]) / 2
    w, h = b[:, 2] - b[:, 0], b[:, 3] - b[:, 1]
    if square:
        w = h = np.maximum(w, h)
    w, h = w * factor, h * factor
    return np.stack([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2], 1).astype(np.float32)


def round_boxes(boxes: np.ndarray) -> np.ndarray:
    """Return integer boxes ``(K, 4)`` int64 covering the float boxes (floor the start, ceil the end)."""
    b = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    out = np.concatenate([np.floor(b[:, :2] + 1e-6), np.ceil(b[:, 2:] - 1e-6)], 1).astype(np.int64)
    out[:, 2:] = np.maximum(out[:, 2:], out[:, :2] + 1)
    return out


def min_box_side(height: int, width: int, *, min_box: float = MIN_BOX, min_box_frac: float | None = None) -> float:
    """Return the smallest box side kept, in pixels.

    ``min_box`` is in pixels (paper: 112). ``min_box_frac`` (optional) is a fraction of the image's
    shorter side; when given, the threshold is the smaller of the two, so VOC-sized images keep the
    paper's 112 px while small images (e.g. the 128 px synthetic set) get a proportionate one.
    """
    if min_box < 0:
        raise PixelwiseError(f"--min-box must be >= 0 pixels, got {min_box}")
    if min_box_frac is None:
        return float(min_box)
    if not 0 <= min_box_frac <= 1:
        raise PixelwiseError(f"--min-box-frac must be in [0, 1], got {min_box_frac}")
    return float(min(min_box, min_box_frac * min(height, width)))


def prepare_boxes(
    boxes,
    scores=None,
    *,
    image_hw: tuple[int, int],
    enlarge: float = ENLARGE,
    square: bool = False,
    min_box: float = MIN_BOX,
    min_box_frac: float | None = None,
    top_k: int | None = TOP_K,
) -> tuple[np.ndarray, np.ndarray]:
    """Turn raw proposals into the boxes DeconvNet runs on, as in the released inference code.

    Steps: drop invalid boxes (empty, non-finite); enlarge each by ``enlarge`` around its centre
    (optionally squared first); round outwards to whole pixels; skip boxes whose shorter side is
    under :func:`min_box_side`; sort by score (stable) and keep the best ``top_k`` (None = all).
    Returns ``(boxes (K, 4) int64, scores (K,) float32)``, best first; boxes may reach past the image.
    """
    if enlarge <= 0:
        raise PixelwiseError(f"--enlarge must be > 0, got {enlarge}")
    if top_k is not None and top_k < 0:
        raise PixelwiseError(f"--top-k must be >= 0, got {top_k}")
    b, s = as_boxes(boxes, scores)
    ok = np.isfinite(b).all(1) & np.isfinite(s) & (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    b, s = b[ok], s[ok]
    big = round_boxes(enlarge_boxes(b, enlarge, square=square))
    side = np.minimum(big[:, 2] - big[:, 0], big[:, 3] - big[:, 1])
    keep = side >= min_box_side(*image_hw, min_box=min_box, min_box_frac=min_box_frac)
    big, s = big[keep], s[keep]
    order = np.argsort(-s, kind="stable")
    if top_k is not None:
        order = order[:top_k]
    return big[order], s[order]


# -- box files --------------------------------------------------------------------------------

BoxTable = dict[str, tuple[np.ndarray, np.ndarray]]


def _check_row(path: Path, where: str, values) -> list[float]:
    if not isinstance(values, (list, tuple)) or len(values) not in (4, 5):
        raise DataError(f"{path}: {where}: a box must be [x0, y0, x1, y1] or [x0, y0, x1, y1, score], got {values!r}")
    try:
        row = [float(v) for v in values]
    except (TypeError, ValueError):
        raise DataError(f"{path}: {where}: box values must be numbers, got {values!r}") from None
    if not all(math.isfinite(v) for v in row):
        raise DataError(f"{path}: {where}: box values must be finite, got {values!r}")
    if row[2] <= row[0] or row[3] <= row[1]:
        raise DataError(f"{path}: {where}: box needs x0 < x1 and y0 < y1 (x1/y1 exclusive), got {values!r}")
    return row


def _table(path: Path, rows: dict[str, list[list[float]]]) -> BoxTable:
    out: BoxTable = {}
    for name, boxes in rows.items():
        has_score = [len(r) == 5 for r in boxes]
        if any(has_score) and not all(has_score):
            raise DataError(f"{path}: image {name!r}: give a score for every box or for none")
        arr = np.asarray(boxes, dtype=np.float32).reshape(-1, 5 if all(has_score) and boxes else 4)
        out[name] = as_boxes(arr)
    return out


def read_box_file(path: str | os.PathLike) -> BoxTable:
    """Read a JSON or CSV box file (format in the module docstring).

    Returns ``{image name: (boxes (K, 4) float32, scores (K,) float32)}``; a bad file raises
    :class:`DataError` naming the file and the entry.
    """
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: box file not found")
    suffix = path.suffix.lower()
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable box file ({exc})") from None
    rows: dict[str, list[list[float]]] = {}
    if suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise DataError(f"{path}: expected an object {{image name: [[x0, y0, x1, y1, score], ...]}}")
        for name, boxes in data.items():
            if not isinstance(boxes, list):
                raise DataError(f"{path}: image {name!r}: expected a list of boxes")
            rows[str(name)] = [_check_row(path, f"image {name!r} box {i}", b) for i, b in enumerate(boxes)]
    elif suffix == ".csv":
        reader = csv.reader(text.splitlines())
        header = next(reader, None)
        cols = [c.strip().lower() for c in header] if header else []
        if cols[:5] != ["image", "x0", "y0", "x1", "y1"] or len(cols) not in (5, 6) or (len(cols) == 6 and cols[5] != "score"):
            raise DataError(f"{path}: CSV header must be image,x0,y0,x1,y1[,score], got {','.join(cols) or 'nothing'}")
        for lineno, rec in enumerate(reader, start=2):
            if not rec or all(not c.strip() for c in rec):
                continue
            if len(rec) != len(cols):
                raise DataError(f"{path}: line {lineno}: expected {len(cols)} columns, got {len(rec)}")
            rows.setdefault(rec[0].strip(), []).append(_check_row(path, f"line {lineno}", rec[1:]))
    else:
        raise DataError(f"{path}: box files must end in .json or .csv")
    return _table(path, rows)


def write_box_file(path: str | os.PathLike, table: BoxTable) -> Path:
    """Write ``{image name: (boxes, scores)}`` as JSON or CSV (by extension); returns the path."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".json", ".csv"):
        raise PixelwiseError(f"{path}: box files must end in .json or .csv")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".json":
        data = {
            name: [[float(v) for v in b] + [float(s)] for b, s in zip(*as_boxes(*entry))]
            for name, entry in table.items()
        }
        path.write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")
    else:
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(["image", "x0", "y0", "x1", "y1", "score"])
            for name, entry in table.items():
                for b, s in zip(*as_boxes(*entry)):
                    w.writerow([name, *(repr(float(v)) for v in b), repr(float(s))])
    return path


def lookup_boxes(table: BoxTable, image_path: str | os.PathLike, *, source: str = "box file") -> tuple[np.ndarray, np.ndarray]:
    """Return the boxes for an image: by file name, then by name without extension."""
    p = Path(image_path)
    for key in (p.name, p.stem, str(image_path)):
        if key in table:
            return table[key]
    raise DataError(f"{source}: no boxes for image {p.name!r} (keys are file names or names without extension)")
