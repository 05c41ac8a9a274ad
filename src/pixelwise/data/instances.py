"""Instance maps, boxes and object-size buckets shared by the datasets and the transforms.

Convention: an instance map is ``(H, W)`` int32 with 0 = no instance and ids ``1..K`` numbered
contiguously, so instance ``k`` has box ``boxes[k - 1]`` and class ``box_labels[k - 1]``. Boxes are
``[x0, y0, x1, y1]`` float32 pixels with ``x1, y1`` exclusive (a one-pixel object at (x, y) is
``[x, y, x + 1, y + 1]``).
"""

from __future__ import annotations

import numpy as np

from pixelwise.data.palette import IGNORE_INDEX

SIZE_BUCKETS = ("small", "medium", "large")
"""Size bucket names; ``size_map`` codes them 1, 2, 3 (0 = background, 255 = ignore)."""

SMALL_FRACTION = 0.02
"""An object whose area is below this fraction of the image area is *small*."""

LARGE_FRACTION = 0.15
"""An object whose area is at least this fraction of the image area is *large*."""


def empty_boxes() -> tuple[np.ndarray, np.ndarray]:
    """Return ``(boxes (0, 4) float32, box_labels (0,) int64)``."""
    return np.zeros((0, 4), dtype=np.float32), np.zeros((0,), dtype=np.int64)


def relabel_instances(instances: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Renumber the ids present to ``1..K`` in increasing order of their old id.

    Returns ``(new_map (H, W) int32, old_ids (K,) int64)`` where ``old_ids[k - 1]`` is the old id
    of new instance ``k``.
    """
    instances = np.asarray(instances)
    old_ids = np.unique(instances)
    old_ids = old_ids[old_ids > 0].astype(np.int64)
    if len(old_ids) == 0:
        return np.zeros(instances.shape, dtype=np.int32), old_ids
    if old_ids[-1] == len(old_ids):  # already 1..K
        return instances.astype(np.int32, copy=False), old_ids
    lut = np.zeros(int(old_ids[-1]) + 1, dtype=np.int32)
    lut[old_ids] = np.arange(1, len(old_ids) + 1, dtype=np.int32)
    out = np.where(instances > 0, lut[np.clip(instances, 0, old_ids[-1])], 0).astype(np.int32)
    return out, old_ids


def boxes_from_instances(instances: np.ndarray) -> np.ndarray:
    """Return ``(K, 4)`` float32 boxes of instances ``1..K`` of a contiguous instance map.

    An id with no pixels gets the empty box ``[0, 0, 0, 0]``.
    """
    instances = np.asarray(instances)
    k = int(instances.max()) if instances.size else 0
    boxes = np.zeros((max(k, 0), 4), dtype=np.float32)
    if k <= 0:
        return boxes
    from scipy import ndimage  # here, not at the top: importing scipy.ndimage costs `predict` 0.6 s

    for i, sl in enumerate(
        ndimage.find_objects(instances.astype(np.int32, copy=False), max_label=k)
    ):
        if sl is not None:
            boxes[i] = (sl[1].start, sl[0].start, sl[1].stop, sl[0].stop)
    return boxes


def majority_classes(instances: np.ndarray, mask: np.ndarray, num_ids: int) -> np.ndarray:
    """Return ``(num_ids,)`` int64: for each id ``1..num_ids`` the most frequent mask label among its
    pixels, ignoring label 0 and 255 (0 if it has no such pixel)."""
    inst = np.asarray(instances).ravel().astype(np.int64)
    lab = np.asarray(mask).ravel().astype(np.int64)
    keep = (inst > 0) & (inst <= num_ids) & (lab != 0) & (lab != IGNORE_INDEX)
    counts = np.bincount(inst[keep] * 256 + lab[keep], minlength=(num_ids + 1) * 256)
    counts = counts.reshape(num_ids + 1, 256)[1:]
    labels = counts.argmax(axis=1).astype(np.int64)
    labels[counts.max(axis=1) == 0] = 0
    return labels


def instances_from_objects(
    objects: np.ndarray, mask: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Turn a VOC-style object map (0 = none, 255 = boundary) into instances, boxes and classes.

    Each object's class is the majority class of its pixels in ``mask``; objects whose pixels are
    all background/ignore are dropped. Returns ``(instances (H, W) int32 contiguous 1..K,
    boxes (K, 4) float32, box_labels (K,) int64)``.
    """
    obj = np.asarray(objects).astype(np.int32)
    obj[obj == IGNORE_INDEX] = 0
    obj, _ = relabel_instances(obj)
    k = int(obj.max()) if obj.size else 0
    if k == 0:
        return obj, *empty_boxes()
    labels = majority_classes(obj, mask, k)
    if (labels == 0).any():  # drop objects without a class
        keep_ids = np.flatnonzero(labels > 0) + 1
        lut = np.zeros(k + 1, dtype=np.int32)
        lut[keep_ids] = keep_ids
        obj, _ = relabel_instances(lut[obj])
        labels = labels[labels > 0]
    return obj, boxes_from_instances(obj), labels


def instances_from_ids(
    instances: np.ndarray, classes: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Instances with a class per id (SBD's ``GTinst``): ``classes[k - 1]`` is the class of id ``k``.

    Ids without pixels or with class 0 are dropped. Returns ``(instances (H, W) int32 contiguous,
    boxes (K, 4) float32, box_labels (K,) int64)``.
    """
    inst = np.asarray(instances).astype(np.int32)
    classes = np.atleast_1d(np.asarray(classes)).astype(np.int64).ravel()
    inst[(inst < 0) | (inst > len(classes))] = 0
    if len(classes):
        inst[np.isin(inst, np.flatnonzero(classes == 0) + 1)] = 0
    inst, old_ids = relabel_instances(inst)
    if len(old_ids) == 0:
        return inst, *empty_boxes()
    return inst, boxes_from_instances(inst), classes[old_ids - 1]


def bucket_of_area(
    area: np.ndarray | float,
    image_area: int,
    *,
    small: float = SMALL_FRACTION,
    large: float = LARGE_FRACTION,
) -> np.ndarray:
    """Return the bucket code (1 small, 2 medium, 3 large) of each area, as uint8 (same shape)."""
    frac = np.asarray(area, dtype=np.float64) / float(image_area)
    return np.where(frac < small, 1, np.where(frac >= large, 3, 2)).astype(np.uint8)


def size_map_from_instances(
    instances: np.ndarray,
    mask: np.ndarray,
    *,
    areas: np.ndarray | None = None,
    small: float = SMALL_FRACTION,
    large: float = LARGE_FRACTION,
) -> np.ndarray:
    """Return the ``(H, W)`` uint8 size map: 0 background, 1/2/3 small/medium/large object, 255 ignore.

    ``areas[k - 1]`` is the area used to bucket instance ``k``; by default its visible pixel count.
    Object pixels (mask not 0/255) outside any instance get 0; ignore pixels get 255.
    """
    inst = np.asarray(instances).astype(np.int64)
    mask = np.asarray(mask)
    k = int(inst.max()) if inst.size else 0
    if areas is None:
        areas = np.bincount(inst.ravel(), minlength=k + 1)[1:]
    areas = np.asarray(areas, dtype=np.float64)
    lut = np.zeros(k + 1, dtype=np.uint8)
    if k:
        lut[1:] = bucket_of_area(areas[:k], mask.size, small=small, large=large)
    out = lut[np.clip(inst, 0, k)]
    out[(mask == 0)] = 0
    out[mask == IGNORE_INDEX] = IGNORE_INDEX
    return out
