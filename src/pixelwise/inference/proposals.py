"""Object proposal generators behind one interface, :func:`generate_proposals`.

Every generator takes an ``(H, W, 3)`` uint8 RGB image and returns ``(boxes (K, 4) float32
[x0, y0, x1, y1] with x1/y1 exclusive, inside the image; scores (K,) float32)``, best first.

- ``selective_search``: OpenCV's selective search (fast mode), no model file needed. OpenCV ranks
  the regions as Uijlings et al. do (hierarchy level times a random number, drawn with C's
  ``rand()``, which is seeded first so that the same image gives the same ranking); the rank order
  becomes the score.
- ``edge_boxes``: EdgeBoxes (the paper's generator): OpenCV's structured edge detector + EdgeBoxes.
  Needs the structured-edge model file ``model.yml.gz`` from the opencv_extra repository
  (``testdata/cv/ximgproc/model.yml.gz``), passed as ``model_path`` / ``--edge-model``. It asks
  OpenCV for 1000 candidates, and for 4x more (up to 10000) while fewer than 50 of them would pass
  DeconvNet's 112 px size rule, so that the top 50 after that rule exist wherever the image has
  them (:func:`edge_boxes`).
- ``sliding``: multi-scale square boxes on a regular grid, no dependency.
- ``file``: boxes read from a JSON/CSV box file (:mod:`pixelwise.inference.boxes`).
- ``gt``: a dataset sample's ground-truth boxes (for analysis: how good could proposals be?).

Selective search and EdgeBoxes need ``opencv-contrib-python-headless`` (``pip install
'pixelwise[proposals]'``).
"""

from __future__ import annotations

import ctypes
import os
from pathlib import Path

import numpy as np

from pixelwise.errors import PixelwiseError
from pixelwise.inference.boxes import ENLARGE, MIN_BOX, TOP_K, as_boxes, lookup_boxes, prepare_boxes, read_box_file

METHODS = ("selective_search", "edge_boxes", "sliding", "file", "gt")
EDGE_MODEL_HINT = (
    "download model.yml.gz from the opencv_extra repository "
    "(https://github.com/opencv/opencv_extra/raw/4.x/testdata/cv/ximgproc/model.yml.gz) "
    "and pass it with --edge-model PATH"
)


def _cv2_ximgproc():
    try:
        import cv2
    except ImportError:
        cv2 = None
    if cv2 is None or not hasattr(cv2, "ximgproc"):
        raise PixelwiseError(
            "selective search and EdgeBoxes need OpenCV's contrib modules: "
            "pip install 'pixelwise[proposals]' (opencv-contrib-python-headless)"
        )
    return cv2


def selective_search_available() -> bool:
    """Return True when OpenCV's contrib modules (selective search, EdgeBoxes) can be used."""
    try:
        _cv2_ximgproc()
    except PixelwiseError:
        return False
    return True


def _seed_c_rand(seed: int) -> None:
    """Seed C's ``rand()``, which OpenCV's selective search uses to rank regions (best effort)."""
    try:
        ctypes.CDLL(None).srand(ctypes.c_uint(seed))
    except (OSError, AttributeError, TypeError):  # no C library handle (e.g. Windows): ranks vary
        pass


def _check_image(image: np.ndarray) -> np.ndarray:
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise PixelwiseError(f"proposals need an (H, W, 3) uint8 RGB image, got {image.shape} {image.dtype}")
    return image


def _clip(boxes: np.ndarray, height: int, width: int) -> np.ndarray:
    b = boxes.astype(np.float32).copy()
    b[:, [0, 2]] = np.clip(b[:, [0, 2]], 0, width)
    b[:, [1, 3]] = np.clip(b[:, [1, 3]], 0, height)
    return b


def _rank_scores(k: int) -> np.ndarray:
    return (1.0 - np.arange(k, dtype=np.float32) / max(k, 1)).astype(np.float32)


def _finish(boxes: np.ndarray, scores: np.ndarray, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Clip to the image, drop empty boxes, sort by score (stable)."""
    b = _clip(np.asarray(boxes, dtype=np.float32).reshape(-1, 4), height, width)
    s = np.asarray(scores, dtype=np.float32).reshape(-1)
    keep = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    b, s = b[keep], s[keep]
    order = np.argsort(-s, kind="stable")
    return np.ascontiguousarray(b[order]), np.ascontiguousarray(s[order])


def selective_search(
    image: np.ndarray,
    *,
    mode: str = "fast",
    max_side: int | None = 500,
    max_boxes: int | None = 1000,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray]:
    """Selective search proposals: ``(boxes (K, 4) float32, scores (K,) float32)``, best first.

    ``mode`` ``fast`` or ``quality``. Images whose longer side exceeds ``max_side`` are searched at
    that size (boxes are scaled back), which bounds the time at about a second per image on one
    core; ``None`` searches at full size. ``max_boxes`` keeps the first boxes in OpenCV's order;
    ``seed`` fixes that order.
    """
    image = _check_image(image)
    if mode not in ("fast", "quality"):
        raise PixelwiseError(f"selective search mode must be fast or quality, got {mode!r}")
    cv2 = _cv2_ximgproc()
    height, width = image.shape[:2]
    scale = 1.0
    work = image
    if max_side is not None and max(height, width) > max_side:
        scale = max_side / max(height, width)
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        work = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ss = cv2.ximgproc.segmentation.createSelectiveSearchSegmentation()
    ss.setBaseImage(np.ascontiguousarray(work[:, :, ::-1]))  # OpenCV wants BGR
    ss.switchToSelectiveSearchFast() if mode == "fast" else ss.switchToSelectiveSearchQuality()
    _seed_c_rand(seed)
    rects = np.asarray(ss.process(), dtype=np.float32).reshape(-1, 4)
    if max_boxes is not None:
        rects = rects[:max_boxes]
    boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], 1) / scale
    return _finish(boxes, _rank_scores(len(boxes)), height, width)


EDGE_BOXES_FIRST = 1000
"""Candidates asked of OpenCV's EdgeBoxes in the first pass (see :func:`edge_boxes`)."""
EDGE_BOXES_GROWTH = 4
"""Each further EdgeBoxes pass asks for this many times the previous pass's count."""
EDGE_BOXES_LIMIT = 10000
"""The most candidates asked of EdgeBoxes (the ``maxBoxes`` default of Dollar's EdgeBoxes code)."""


def _count_kept(
    boxes: np.ndarray,
    scores: np.ndarray,
    height: int,
    width: int,
    *,
    enlarge: float,
    square: bool,
    min_box: float,
    min_box_frac: float | None,
) -> int:
    """How many of ``boxes`` survive :func:`~pixelwise.inference.boxes.prepare_boxes`' size rule."""
    kept, _ = prepare_boxes(
        boxes, scores, image_hw=(height, width), enlarge=enlarge, square=square,
        min_box=min_box, min_box_frac=min_box_frac, top_k=None,
    )
    return len(kept)


def edge_boxes(
    image: np.ndarray,
    *,
    model_path: str | os.PathLike | None,
    max_boxes: int = EDGE_BOXES_FIRST,
    alpha: float = 0.65,
    beta: float = 0.75,
    want: int | None = TOP_K,
    min_box: float = MIN_BOX,
    min_box_frac: float | None = None,
    enlarge: float = ENLARGE,
    square: bool = False,
    limit: int = EDGE_BOXES_LIMIT,
) -> tuple[np.ndarray, np.ndarray]:
    """EdgeBoxes proposals (the paper's): ``(boxes (K, 4) float32, scores (K,) float32)``, best first.

    ``model_path`` is OpenCV's structured-edge model ``model.yml.gz`` (see the module docstring);
    ``alpha``/``beta`` are EdgeBoxes' step size and NMS threshold (OpenCV defaults 0.65/0.75).

    DeconvNet skips boxes with a side under 112 px (after enlarging) and then keeps the best 50
    (:func:`~pixelwise.inference.boxes.prepare_boxes`), and EdgeBoxes ranks many small boxes
    first, so the candidate count matters. The first pass asks OpenCV for ``max_boxes`` (1000)
    candidates. If fewer than ``want`` (50) of them pass the size rule given by ``min_box``,
    ``min_box_frac``, ``enlarge`` and ``square`` (the same arguments as ``prepare_boxes``; pass
    the pipeline's values when they differ from the defaults), EdgeBoxes runs again on the same
    edge map asking for 4 times as many, until enough pass, OpenCV returns fewer than asked (the
    image has no more candidates) or ``limit`` (10000) is reached. No pass is repeated when even
    a box covering the whole image would be too small. OpenCV's NMS is greedy in score order, so a
    larger request returns the smaller one's boxes first, unchanged. All candidates of the last
    pass are returned (unfiltered); ``want=None`` makes a single pass of ``max_boxes``.
    """
    image = _check_image(image)
    if model_path is None:
        raise PixelwiseError(f"EdgeBoxes needs the structured-edge model file: {EDGE_MODEL_HINT}")
    if max_boxes < 1 or limit < 1:
        raise PixelwiseError(f"EdgeBoxes needs max_boxes >= 1 and limit >= 1, got {max_boxes} and {limit}")
    if want is not None and want < 0:
        raise PixelwiseError(f"EdgeBoxes want must be >= 0 (or None), got {want}")
    path = Path(model_path)
    if not path.is_file():
        raise PixelwiseError(f"{path}: structured-edge model not found; {EDGE_MODEL_HINT}")
    cv2 = _cv2_ximgproc()
    try:
        detector = cv2.ximgproc.createStructuredEdgeDetection(str(path))
    except cv2.error:
        raise PixelwiseError(f"{path}: not a structured-edge model OpenCV can read; {EDGE_MODEL_HINT}") from None
    height, width = image.shape[:2]
    edges = detector.detectEdges(image.astype(np.float32) / 255.0)  # expects RGB in 0..1
    orientation = detector.computeOrientation(edges)
    edges = detector.edgesNms(edges, orientation)
    size_rule = dict(enlarge=enlarge, square=square, min_box=min_box, min_box_frac=min_box_frac)
    whole = np.array([[0, 0, width, height]], np.float32)
    can_pass = _count_kept(whole, np.ones(1, np.float32), height, width, **size_rule) > 0

    def run(count: int) -> tuple[np.ndarray, np.ndarray, int]:
        eb = cv2.ximgproc.createEdgeBoxes()
        eb.setMaxBoxes(int(count))
        eb.setAlpha(float(alpha))
        eb.setBeta(float(beta))
        out = eb.getBoundingBoxes(edges, orientation)
        rects, scores = (out if isinstance(out, tuple) else (out, None))
        rects = np.asarray(rects, dtype=np.float32).reshape(-1, 4)
        if scores is None or len(scores) == 0:
            scores = _rank_scores(len(rects))
        scores = np.asarray(scores, np.float32).reshape(-1)
        boxes = np.concatenate([rects[:, :2], rects[:, :2] + rects[:, 2:]], 1)
        return (*_finish(boxes, scores, height, width), len(rects))

    count = min(int(max_boxes), int(limit))
    while True:
        boxes, scores, returned = run(count)
        if want is None or not can_pass or returned < count or count >= limit:
            return boxes, scores
        if _count_kept(boxes, scores, height, width, **size_rule) >= want:
            return boxes, scores
        count = min(count * EDGE_BOXES_GROWTH, int(limit))


def sliding_boxes(
    image: np.ndarray,
    *,
    fractions: tuple[float, ...] = (1.0, 0.7, 0.5, 0.35),
    step: float = 0.5,
) -> tuple[np.ndarray, np.ndarray]:
    """Multi-scale square boxes on a grid: ``(boxes (K, 4) float32, scores (K,) float32)``.

    For each fraction ``f`` of the image's shorter side, boxes of side ``f * min(H, W)`` are laid at
    a stride of ``step`` times the side, the last one flush with the far edge. Larger boxes score
    higher (score = the fraction), so ``--top-k`` drops the finest scale first. With the defaults a
    square image gets 1 + 4 + 9 + 25 = 39 boxes.
    """
    image = _check_image(image)
    if not fractions or any(not 0 < f <= 1 for f in fractions) or not 0 < step <= 1:
        raise PixelwiseError("sliding boxes need fractions in (0, 1] and a step in (0, 1]")
    height, width = image.shape[:2]
    boxes, scores = [], []
    for f in fractions:
        side = max(1.0, f * min(height, width))
        stride = max(1.0, step * side)

        def starts(length: float) -> np.ndarray:
            n = int(np.ceil(max(0.0, length - side) / stride - 1e-6)) + 1
            return np.linspace(0.0, max(0.0, length - side), n)

        for y in starts(height):
            for x in starts(width):
                boxes.append([x, y, x + side, y + side])
                scores.append(f)
    return _finish(np.asarray(boxes), np.asarray(scores), height, width)


def ground_truth_boxes(sample: dict) -> tuple[np.ndarray, np.ndarray]:
    """A dataset sample's ground-truth ``boxes`` as proposals (scores 1): for analysis."""
    if "boxes" not in sample:
        raise PixelwiseError(
            f"sample {sample.get('name', '?')!r} has no ground-truth boxes (datasets with instances have them)"
        )
    height, width = sample["image"].shape[:2]
    boxes, _ = as_boxes(sample["boxes"])
    return _finish(boxes, np.ones(len(boxes), np.float32), height, width)


def generate_proposals(image: np.ndarray, method: str, **kw) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(boxes (K, 4) float32, scores (K,) float32)`` from proposal ``method``, best first.

    ``method`` is one of :data:`METHODS` (``-`` and ``_`` are interchangeable). Keyword arguments
    go to the generator: ``selective_search(mode, max_side, max_boxes)``, ``edge_boxes(model_path,
    max_boxes, alpha, beta, want, min_box, min_box_frac, enlarge, square, limit)``,
    ``sliding(fractions, step)``, ``file(path, name)`` (``path`` a box file, ``name`` the image's
    file name), ``gt(sample)`` (a dataset sample with ``boxes``).
    """
    key = method.replace("-", "_").lower()
    if key == "selective_search":
        return selective_search(image, **kw)
    if key == "edge_boxes":
        return edge_boxes(image, **kw)
    if key == "sliding":
        return sliding_boxes(image, **kw)
    if key == "file":
        image = _check_image(image)
        if "table" in kw:
            table = kw["table"]
        elif "path" in kw:
            table = read_box_file(kw["path"])
        else:
            raise PixelwiseError("proposals from a file need path= (a .json or .csv box file)")
        boxes, scores = lookup_boxes(table, kw.get("name", ""), source=str(kw.get("path", "box file")))
        return _finish(boxes, scores, *image.shape[:2])
    if key == "gt":
        if "sample" not in kw:
            raise PixelwiseError("ground-truth proposals need sample= (a dataset sample with boxes)")
        return ground_truth_boxes(kw["sample"])
    raise PixelwiseError(f"unknown proposal method {method!r}; valid: {', '.join(m.replace('_', '-') for m in METHODS)}")
