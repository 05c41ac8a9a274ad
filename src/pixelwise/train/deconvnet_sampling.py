"""DeconvNet training examples: object-centred crops (stage 1) and harder proposal crops (stage 2).

Both are paired transforms (``t(sample, rng) -> sample``, see :mod:`pixelwise.data.transforms`),
so wrapping a dataset in :class:`pixelwise.data.dataset.SegmentationDataset` with one of them
makes every crop a pure function of ``(seed, epoch, index)``.

Stage 1 (:class:`ObjectCrop`), after Noh et al. 2015, section 4.2: pick one ground-truth object
of the image, enlarge its box by a factor drawn uniformly from ``enlarge`` (default 1.2-1.5x, the
paper says only "enlarged"), make it square around the box centre (no aspect distortion), cut it
out (parts outside the image are filled with the ignore label and, by default, the mean colour;
``pad="black"`` fills raw zeros as the release's window data layer does), resize it to
``resize`` (250 for 224 crops), take a random ``crop_size`` window and mirror it with probability
0.5. The label map is the same crop of the ground truth: other objects inside keep their labels.

Stage 2 (:class:`ProposalCrop`): the same, but around a jittered box (shifted and rescaled) whose
IoU with the chosen ground-truth box lies in ``iou_range``, so objects are cut at the crop edge or
appear small, as object proposals do at test time.

One object is drawn per image visit (uniformly among the image's objects); an image without
objects gives a crop of the whole image. Samples without ``boxes`` get their objects from the
connected components of each class in the mask.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from pixelwise.data.instances import boxes_from_instances
from pixelwise.data.transforms import CAFFE_MEAN_RGB, crop_sample, hflip_sample, resize_sample
from pixelwise.inference.boxes import box_iou_matrix

IGNORE = 255
PAPER_CROP = 224
PAPER_RESIZE = 250


def default_resize(crop_size: int) -> int:
    """Return the pre-crop resize side for ``crop_size`` (the paper's 250 for 224)."""
    return int(round(crop_size * PAPER_RESIZE / PAPER_CROP))


def box_iou(a: np.ndarray, b: np.ndarray) -> float:
    """Return the IoU of two ``[x0, y0, x1, y1]`` boxes (x1/y1 exclusive)."""
    return float(box_iou_matrix(a, b)[0, 0])


def objects_of(sample: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Return ``(boxes (K, 4) float32, labels (K,) int64, instances (H, W) int32 or None)``.

    Uses the sample's ``boxes``/``box_labels``/``instances`` when present; otherwise the connected
    components of every class (not 0, not 255) of the mask.
    """
    boxes = sample.get("boxes")
    if boxes is not None and len(boxes) and "box_labels" in sample:
        return (np.asarray(boxes, np.float32).reshape(-1, 4), np.asarray(sample["box_labels"], np.int64),
                sample.get("instances"))
    mask = np.asarray(sample["mask"])
    inst = np.zeros(mask.shape, dtype=np.int32)
    labels: list[int] = []
    for cls in np.unique(mask):
        if cls in (0, IGNORE):
            continue
        comp, n = ndimage.label(mask == cls)
        inst[comp > 0] = comp[comp > 0] + len(labels)
        labels += [int(cls)] * n
    return boxes_from_instances(inst), np.asarray(labels, np.int64), inst


def square_box(box: np.ndarray, factor: float, min_side: float) -> tuple[int, int, int]:
    """Return ``(x0, y0, side)``: the square of side ``max(factor * longer side, min_side)``
    centred on ``box``, in whole pixels."""
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    side = max(factor * max(box[2] - box[0], box[3] - box[1]), min_side, 1.0)
    side = int(math.ceil(side))
    return int(math.floor(cx - side / 2)), int(math.floor(cy - side / 2)), side


PAD_RGB = {"mean": CAFFE_MEAN_RGB, "black": (0, 0, 0)}
"""The RGB value of each of :data:`pixelwise.convention.PAD_COLOURS` in a raw uint8 crop."""


def crop_square(sample: dict, x0: int, y0: int, side: int, pad: str = "mean") -> dict:
    """Return the ``side x side`` window at ``(x0, y0)`` of ``image``, ``mask`` and ``instances``;
    parts outside the image are the ``pad`` colour (``mean`` or ``black``) / ignore / no instance.
    Other keys are dropped except ``name``."""
    h, w = sample["mask"].shape
    out = {"name": sample.get("name", "")}
    sx0, sy0 = max(0, x0), max(0, y0)
    sx1, sy1 = min(w, x0 + side), min(h, y0 + side)
    fills = {"image": np.asarray(PAD_RGB[pad], np.uint8), "mask": IGNORE, "instances": 0}
    for key, fill in fills.items():
        if key not in sample:
            continue
        src = np.asarray(sample[key])
        canvas = np.empty((side, side) + src.shape[2:], dtype=src.dtype)
        canvas[...] = fill
        if sx1 > sx0 and sy1 > sy0:
            canvas[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = src[sy0:sy1, sx0:sx1]
        out[key] = canvas
    return out


def jitter_box(
    box: np.ndarray,
    rng: np.random.Generator,
    iou_range: tuple[float, float] = (0.3, 0.7),
    image_hw: tuple[int, int] | None = None,
    *,
    tries: int = 100,
) -> np.ndarray:
    """Return a box shifted and rescaled from ``box`` whose IoU with it lies in ``iou_range``
    (a proposal overlapping the object), clipped to the image when ``image_hw`` is given.

    Candidates are drawn until one fits; if none of ``tries`` does, the one closest to the range
    is returned.
    """
    lo, hi = iou_range
    w, h = box[2] - box[0], box[3] - box[1]
    cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
    best, best_gap = np.asarray(box, np.float32), math.inf
    for _ in range(tries):
        nw = w * math.exp(rng.uniform(-0.8, 0.8))
        nh = h * math.exp(rng.uniform(-0.8, 0.8))
        ncx = cx + rng.uniform(-0.6, 0.6) * w
        ncy = cy + rng.uniform(-0.6, 0.6) * h
        cand = np.array([ncx - nw / 2, ncy - nh / 2, ncx + nw / 2, ncy + nh / 2], dtype=np.float32)
        if image_hw is not None:
            cand[[0, 2]] = np.clip(cand[[0, 2]], 0, image_hw[1])
            cand[[1, 3]] = np.clip(cand[[1, 3]], 0, image_hw[0])
            if cand[2] - cand[0] < 1 or cand[3] - cand[1] < 1:
                continue
        iou = box_iou(cand, box)
        gap = max(lo - iou, iou - hi, 0.0)
        if gap == 0.0:
            return cand
        if gap < best_gap:
            best, best_gap = cand, gap
    return best


class _CropSampler:
    """Shared part of the two stages: choose an object, cut a square, resize, random crop, flip."""

    def __init__(
        self,
        crop_size: int = PAPER_CROP,
        resize: int | None = None,
        enlarge: tuple[float, float] = (1.2, 1.5),
        *,
        min_side: float = 16.0,
        flip: bool = True,
        pad: str = "mean",
    ) -> None:
        self.crop_size = int(crop_size)
        self.resize = int(resize or default_resize(crop_size))
        if self.resize < self.crop_size:
            raise ValueError(f"resize ({self.resize}) must be >= crop_size ({self.crop_size})")
        self.enlarge = (float(enlarge[0]), float(enlarge[1]))
        self.min_side = float(min_side)
        self.flip = flip
        if pad not in PAD_RGB:
            raise ValueError(f"pad must be one of {', '.join(PAD_RGB)}, got {pad!r}")
        self.pad = pad

    def region(self, box: np.ndarray, rng: np.random.Generator, image_hw: tuple[int, int]) -> np.ndarray:
        """Return the box the crop is centred on (the object box itself for stage 1)."""
        return box

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        """Return a ``crop_size`` square sample (image, mask, instances, name) plus ``crop_box``
        (the cut-out square in source pixels) and ``target_box``/``target_label`` (the object,
        drawn uniformly among the sample's objects)."""
        boxes, _, _ = objects_of(sample)
        k = int(rng.integers(len(boxes))) if len(boxes) else None
        return self.crop_object(sample, k, rng)

    def crop_object(self, sample: dict, k: int | None, rng: np.random.Generator) -> dict:
        """Return the crop of :meth:`__call__` around object ``k`` of :func:`objects_of` (None:
        the whole image, label 0)."""
        h, w = sample["mask"].shape
        boxes, labels, inst = objects_of(sample)
        if k is not None:
            target, label = boxes[k], int(labels[k])
        else:
            target, label = np.array([0, 0, w, h], np.float32), 0
        region = self.region(target, rng, (h, w))
        x0, y0, side = square_box(region, rng.uniform(*self.enlarge), self.min_side)
        src = dict(sample)
        if inst is not None:
            src["instances"] = inst
        out = crop_square(src, x0, y0, side, self.pad)
        out = resize_sample(out, (self.resize, self.resize))
        top = int(rng.integers(0, self.resize - self.crop_size + 1))
        left = int(rng.integers(0, self.resize - self.crop_size + 1))
        out = crop_sample(out, top, left, (self.crop_size, self.crop_size))
        if self.flip and rng.uniform() < 0.5:
            out = hflip_sample(out)
        out.pop("boxes", None)
        out.pop("box_labels", None)
        out["crop_box"] = np.array([x0, y0, x0 + side, y0 + side], np.float32)
        out["target_box"] = np.asarray(target, np.float32)
        out["region_box"] = np.asarray(region, np.float32)
        out["target_label"] = label
        return out


class ObjectCrop(_CropSampler):
    """DeconvNet stage 1: a crop centred on a ground-truth object (see the module docstring)."""

    def __repr__(self) -> str:
        return f"ObjectCrop(crop_size={self.crop_size}, resize={self.resize}, enlarge={self.enlarge})"


class ProposalCrop(_CropSampler):
    """DeconvNet stage 2: a crop around a jittered box overlapping a ground-truth object with IoU in
    ``iou_range`` (see the module docstring)."""

    def __init__(self, crop_size: int = PAPER_CROP, resize: int | None = None,
                 enlarge: tuple[float, float] = (1.2, 1.5), iou_range: tuple[float, float] = (0.3, 0.7),
                 **kwargs) -> None:
        super().__init__(crop_size, resize, enlarge, **kwargs)
        self.iou_range = (float(iou_range[0]), float(iou_range[1]))

    def region(self, box: np.ndarray, rng: np.random.Generator, image_hw: tuple[int, int]) -> np.ndarray:
        """Return a jittered box with IoU in ``iou_range`` to ``box``."""
        return jitter_box(box, rng, self.iou_range, image_hw)

    def __repr__(self) -> str:
        return (f"ProposalCrop(crop_size={self.crop_size}, resize={self.resize}, enlarge={self.enlarge}, "
                f"iou_range={self.iou_range})")
