"""Semantic Boundaries Dataset (Hariharan et al. 2011), ``benchmark_RELEASE/dataset``.

Layout read::

    dataset/img/<id>.jpg
    dataset/cls/<id>.mat     GTcls.Segmentation: (H, W) uint8 class index (VOC's 21 classes)
    dataset/inst/<id>.mat    GTinst.Segmentation: (H, W) instance id (0 = none),
                             GTinst.Categories: class of each instance id (1-based order)
    dataset/{train,val}.txt

SBD masks have no 255 boundary band: every pixel is scored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixelwise.data.base import require_same_size
from pixelwise.data.instances import instances_from_ids
from pixelwise.data.listed import Layout, ListedDataset
from pixelwise.errors import DataError

SBD_LAYOUT = Layout(
    kind="SBD", title="an SBD directory", lists="",
    images="img", masks="cls", instances="inst", label_ext=".mat",
    parents=("dataset", "benchmark_RELEASE/dataset"),
)


def sbd_split_ids(root: str | Path, split: str) -> list[str]:
    """Return the ids of ``<split>.txt`` (``train`` or ``val``) under an SBD root."""
    return SBD_LAYOUT.split_ids(root, split)


def _load_struct(path: Path, struct: str):
    """Load ``struct`` from a MATLAB file; DataError if the file or the struct is missing."""
    from scipy.io import loadmat

    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        mat = loadmat(str(path), squeeze_me=True, struct_as_record=False)
    except Exception as exc:  # scipy raises several types for corrupt files
        raise DataError(f"{path}: unreadable .mat file ({type(exc).__name__}: {exc})") from None
    if struct not in mat:
        raise DataError(f"{path}: no {struct} struct in the .mat file")
    return mat[struct]


def _field(obj, path: Path, name: str) -> np.ndarray:
    try:
        return np.asarray(getattr(obj, name))
    except AttributeError:
        raise DataError(f"{path}: .mat struct has no field {name}") from None


def read_sbd_class_mask(path: str | Path) -> np.ndarray:
    """Read ``GTcls.Segmentation`` from an SBD ``cls/*.mat``; return ``(H, W)`` uint8."""
    path = Path(path)
    seg = _field(_load_struct(path, "GTcls"), path, "Segmentation")
    if seg.ndim != 2:
        raise DataError(f"{path}: GTcls.Segmentation has shape {seg.shape}, expected (H, W)")
    if seg.size and (seg.min() < 0 or seg.max() > 255):
        raise DataError(f"{path}: GTcls.Segmentation holds values outside 0..255")
    return seg.astype(np.uint8)


def read_sbd_instances(path: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """Read an SBD ``inst/*.mat``; return ``(instance ids (H, W) int32, categories (K,) int64)``."""
    path = Path(path)
    gt = _load_struct(path, "GTinst")
    seg = _field(gt, path, "Segmentation")
    cats = np.atleast_1d(_field(gt, path, "Categories")).astype(np.int64).ravel()
    if seg.ndim != 2:
        raise DataError(f"{path}: GTinst.Segmentation has shape {seg.shape}, expected (H, W)")
    return seg.astype(np.int32), cats


class SBDSegmentation(ListedDataset):
    """SBD samples (raw numpy; see :mod:`pixelwise.data` for the keys), VOC's 21 classes.

    ``split`` is ``train`` or ``val`` (the list files), or give ``ids``. ``with_instances``:
    None = when inst/ exists, True = required, False = never.
    """

    layout = SBD_LAYOUT

    def _read_mask(self, path: Path) -> np.ndarray:
        return read_sbd_class_mask(path)

    def _read_instances(
        self, path: Path, mask: np.ndarray, mask_path: Path
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        seg, cats = read_sbd_instances(path)
        require_same_size(path, "GTinst.Segmentation", seg.shape, mask_path, mask.shape)
        return instances_from_ids(seg, cats)
