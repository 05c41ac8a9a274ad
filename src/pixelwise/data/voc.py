"""PASCAL VOC 2012 segmentation (``VOCdevkit/VOC2012``).

Layout read::

    VOC2012/JPEGImages/<id>.jpg
    VOC2012/SegmentationClass/<id>.png     palette PNG, class index, 255 = boundary (ignored)
    VOC2012/SegmentationObject/<id>.png    palette PNG, object index 1..K, 255 = boundary
    VOC2012/ImageSets/Segmentation/{train,val,trainval}.txt

Samples carry ``instances``/``boxes``/``box_labels`` when SegmentationObject is there; each
object's class is the majority class of its pixels in SegmentationClass, and boundary pixels (255)
belong to no instance.
"""

from __future__ import annotations

from pathlib import Path

from pixelwise.data.base import format_ids, instances_wanted, read_id_list, require_dirs, validate_pair
from pixelwise.data.instances import instances_from_objects
from pixelwise.data.io import read_image, read_mask
from pixelwise.data.palette import VOC_CLASSES
from pixelwise.errors import DataError


def resolve_voc_root(root: str | Path) -> Path:
    """Return the ``VOC2012`` directory for ``root`` (``VOC2012``, ``VOCdevkit`` or their parent)."""
    root = Path(root).expanduser()
    for cand in (root, root / "VOC2012", root / "VOCdevkit" / "VOC2012"):
        if (cand / "JPEGImages").is_dir() or (cand / "SegmentationClass").is_dir():
            return cand
    if not root.exists():
        raise DataError(f"{root}: VOC root not found")
    raise DataError(
        f"{root}: not a VOC2012 directory (expected JPEGImages/ and SegmentationClass/ in it, "
        "or in VOC2012/ or VOCdevkit/VOC2012/ below it)"
    )


def voc_split_ids(root: str | Path, split: str) -> list[str]:
    """Return the ids of ``ImageSets/Segmentation/<split>.txt`` under a VOC2012 root."""
    root = resolve_voc_root(root)
    list_dir = root / "ImageSets" / "Segmentation"
    path = list_dir / f"{split}.txt"
    if not path.is_file():
        avail = sorted(p.stem for p in list_dir.glob("*.txt")) if list_dir.is_dir() else []
        extra = "seg11valid (FCN's list, shipped with pixelwise)"
        raise DataError(
            f"{path}: VOC split list not found; available: {', '.join(avail + [extra]) or extra}"
        )
    return read_id_list(path)


class VOCSegmentation:
    """PASCAL VOC 2012 segmentation samples (raw numpy; see :mod:`pixelwise.data` for the keys).

    ``split`` names a list in ``ImageSets/Segmentation`` or is ``"seg11valid"`` (FCN's validation
    set: the 736 ids of the list FCN released, shipped as package data). ``ids`` overrides the split.
    ``sbd_root`` is accepted for older calls and not needed. ``with_instances``: None = when
    SegmentationObject/ exists, True = required, False = never.
    """

    num_classes: int = 21

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        ids: list[str] | None = None,
        with_instances: bool | None = None,
        sbd_root: str | Path | None = None,
    ) -> None:
        self.root = resolve_voc_root(root)
        self.split = split
        self.class_names: list[str] = list(VOC_CLASSES)
        self.image_dir = self.root / "JPEGImages"
        self.mask_dir = self.root / "SegmentationClass"
        self.object_dir = self.root / "SegmentationObject"
        require_dirs("VOC", self.image_dir, self.mask_dir)
        self.with_instances = instances_wanted("VOC", with_instances, self.object_dir)
        if ids is None:
            if split == "seg11valid":
                from pixelwise.data.splits import seg11valid_ids

                ids = seg11valid_ids(self.root)
            else:
                ids = voc_split_ids(self.root, split)
        self.names: list[str] = list(ids)
        self._check_files()

    def _paths(self, name: str) -> tuple[Path, Path, Path]:
        return (
            self.image_dir / f"{name}.jpg",
            self.mask_dir / f"{name}.png",
            self.object_dir / f"{name}.png",
        )

    def _check_files(self) -> None:
        missing = []
        for name in self.names:
            img, mask, obj = self._paths(name)
            missing += [str(p) for p in (img, mask) if not p.is_file()]
            if self.with_instances and not obj.is_file():
                missing.append(str(obj))
        if missing:
            raise DataError(
                f"{self.root}: {len(missing)} file(s) of split {self.split!r} missing: "
                f"{format_ids(missing, 3)}; run `pixelwise data check {self.root} --format voc` "
                "for the full report"
            )

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict:
        """Return sample ``index``: image (H,W,3) uint8, mask (H,W) uint8, name, and instances,
        boxes, box_labels when instances are loaded."""
        name = self.names[index]
        img_path, mask_path, obj_path = self._paths(name)
        image = read_image(img_path)
        mask = read_mask(mask_path)
        validate_pair(image, mask, self.num_classes, img_path, mask_path)
        sample = {"image": image, "mask": mask, "name": name}
        if self.with_instances:
            objects = read_mask(obj_path)
            if objects.shape != mask.shape:
                raise DataError(
                    f"{obj_path}: object mask is {objects.shape[1]}x{objects.shape[0]} but "
                    f"{mask_path} is {mask.shape[1]}x{mask.shape[0]}"
                )
            inst, boxes, labels = instances_from_objects(objects, mask)
            sample.update(instances=inst, boxes=boxes, box_labels=labels)
        return sample

    def __repr__(self) -> str:
        return f"VOCSegmentation(root={str(self.root)!r}, split={self.split!r}, n={len(self)})"
