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

from pixelwise.data.base import format_ids, instances_wanted, read_id_list, require_dirs, validate_pair
from pixelwise.data.instances import instances_from_ids
from pixelwise.data.io import read_image
from pixelwise.data.palette import VOC_CLASSES
from pixelwise.errors import DataError


def resolve_sbd_root(root: str | Path) -> Path:
    """Return the SBD ``dataset`` directory for ``root`` (``dataset`` or ``benchmark_RELEASE``)."""
    root = Path(root).expanduser()
    for cand in (root, root / "dataset", root / "benchmark_RELEASE" / "dataset"):
        if (cand / "cls").is_dir() or (cand / "img").is_dir():
            return cand
    if not root.exists():
        raise DataError(f"{root}: SBD root not found")
    raise DataError(
        f"{root}: not an SBD directory (expected img/ and cls/ in it, or in dataset/ or "
        "benchmark_RELEASE/dataset/ below it)"
    )


def sbd_split_ids(root: str | Path, split: str) -> list[str]:
    """Return the ids of ``<split>.txt`` (``train`` or ``val``) under an SBD root."""
    root = resolve_sbd_root(root)
    path = root / f"{split}.txt"
    if not path.is_file():
        avail = sorted(p.stem for p in root.glob("*.txt"))
        raise DataError(
            f"{path}: SBD split list not found; available: {', '.join(avail) or 'none'}"
        )
    return read_id_list(path)


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


class SBDSegmentation:
    """SBD samples (raw numpy; see :mod:`pixelwise.data` for the keys), VOC's 21 classes.

    ``split`` is ``train`` or ``val`` (the list files), or give ``ids``. ``with_instances``:
    None = when inst/ exists, True = required, False = never.
    """

    num_classes: int = 21

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        ids: list[str] | None = None,
        with_instances: bool | None = None,
    ) -> None:
        self.root = resolve_sbd_root(root)
        self.split = split
        self.class_names: list[str] = list(VOC_CLASSES)
        self.image_dir = self.root / "img"
        self.cls_dir = self.root / "cls"
        self.inst_dir = self.root / "inst"
        require_dirs("SBD", self.image_dir, self.cls_dir)
        self.with_instances = instances_wanted("SBD", with_instances, self.inst_dir)
        self.names: list[str] = list(ids) if ids is not None else sbd_split_ids(self.root, split)
        missing = []
        for name in self.names:
            img, cls, inst = self._paths(name)
            missing += [str(p) for p in (img, cls) if not p.is_file()]
            if self.with_instances and not inst.is_file():
                missing.append(str(inst))
        if missing:
            raise DataError(
                f"{self.root}: {len(missing)} file(s) of split {split!r} missing: "
                f"{format_ids(missing, 3)}; run `pixelwise data check {self.root} --format sbd` "
                "for the full report"
            )

    def _paths(self, name: str) -> tuple[Path, Path, Path]:
        return (
            self.image_dir / f"{name}.jpg",
            self.cls_dir / f"{name}.mat",
            self.inst_dir / f"{name}.mat",
        )

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict:
        """Return sample ``index``: image (H,W,3) uint8, mask (H,W) uint8, name, and instances,
        boxes, box_labels when instances are loaded."""
        name = self.names[index]
        img_path, cls_path, inst_path = self._paths(name)
        image = read_image(img_path)
        mask = read_sbd_class_mask(cls_path)
        validate_pair(image, mask, self.num_classes, img_path, cls_path)
        sample = {"image": image, "mask": mask, "name": name}
        if self.with_instances:
            seg, cats = read_sbd_instances(inst_path)
            if seg.shape != mask.shape:
                raise DataError(
                    f"{inst_path}: GTinst.Segmentation is {seg.shape[1]}x{seg.shape[0]} but "
                    f"{cls_path} is {mask.shape[1]}x{mask.shape[0]}"
                )
            inst, boxes, labels = instances_from_ids(seg, cats)
            sample.update(instances=inst, boxes=boxes, box_labels=labels)
        return sample

    def __repr__(self) -> str:
        return f"SBDSegmentation(root={str(self.root)!r}, split={self.split!r}, n={len(self)})"
