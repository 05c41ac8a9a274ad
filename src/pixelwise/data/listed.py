"""The reader of datasets laid out as VOC and SBD are: id lists naming the files of each split.

Such a dataset keeps ``<id>.jpg`` images, class masks and optional instance files in three
directories, and its splits as ``<split>.txt`` id lists. :class:`Layout` says where those are;
:class:`ListedDataset` reads the samples, and its subclasses read their own label files.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pixelwise.data.base import format_ids, instances_wanted, read_id_list, require_dirs, validate_pair
from pixelwise.data.io import read_image
from pixelwise.data.palette import VOC_CLASSES
from pixelwise.errors import DataError


@dataclass(frozen=True)
class Layout:
    """Where a dataset read through id lists keeps its files, relative to its root.

    ``images``, ``masks`` and ``instances`` are the directories holding ``<id>.jpg``,
    ``<id><label_ext>`` and ``<id><label_ext>``; ``lists`` holds the ``<split>.txt`` id lists
    ("" = the root itself). A directory above the root is accepted in its place when the root is
    one of ``parents`` below it (VOC: ``VOC2012`` or ``VOCdevkit/VOC2012``). ``kind`` names the
    dataset in messages, ``title`` its root directory.
    """

    kind: str
    title: str
    images: str
    masks: str
    instances: str
    label_ext: str
    lists: str
    parents: tuple[str, ...]

    def find_root(self, root: str | Path) -> Path:
        """Return the dataset root for ``root`` (the root itself or a directory above it)."""
        root = Path(root).expanduser()
        for cand in (root, *(root / p for p in self.parents)):
            if (cand / self.images).is_dir() or (cand / self.masks).is_dir():
                return cand
        if not root.exists():
            raise DataError(f"{root}: {self.kind} root not found")
        below = " or ".join(f"{p}/" for p in self.parents)
        raise DataError(
            f"{root}: not {self.title} (expected {self.images}/ and {self.masks}/ in it, "
            f"or in {below} below it)"
        )

    def paths(self, root: Path, name: str) -> tuple[Path, Path, Path]:
        """Return the ``(image, class mask, instances)`` files of id ``name`` under ``root``."""
        return (
            root / self.images / f"{name}.jpg",
            root / self.masks / f"{name}{self.label_ext}",
            root / self.instances / f"{name}{self.label_ext}",
        )

    def split_ids(self, root: str | Path, split: str, also: tuple[str, ...] = ()) -> list[str]:
        """Return the ids of the ``<split>.txt`` list; a missing list is a DataError naming the
        lists there and the extra split names ``also``."""
        list_dir = self.find_root(root) / self.lists
        path = list_dir / f"{split}.txt"
        if not path.is_file():
            avail = sorted(p.stem for p in list_dir.glob("*.txt")) if list_dir.is_dir() else []
            avail += also
            raise DataError(
                f"{path}: {self.kind} split list not found; available: {', '.join(avail) or 'none'}"
            )
        return read_id_list(path)


class ListedDataset:
    """Samples of a dataset laid out as its :attr:`layout` says, with VOC's 21 classes.

    The ids are those of ``<split>.txt``, or ``ids``. Every listed file must exist. Subclasses
    set ``layout`` and read their label files (:meth:`_read_mask`, :meth:`_read_instances`).
    ``with_instances``: None = when the instance directory exists, True = required, False = never.
    """

    layout: Layout
    num_classes: int = 21

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        *,
        ids: list[str] | None = None,
        with_instances: bool | None = None,
    ) -> None:
        layout = self.layout
        self.root = layout.find_root(root)
        self.split = split
        self.class_names: list[str] = list(VOC_CLASSES)
        self.image_dir = self.root / layout.images
        self.mask_dir = self.root / layout.masks
        self.instance_dir = self.root / layout.instances
        require_dirs(layout.kind, self.image_dir, self.mask_dir)
        self.with_instances = instances_wanted(layout.kind, with_instances, self.instance_dir)
        self.names: list[str] = list(ids) if ids is not None else self._split_ids(split)
        self._check_files()

    def _split_ids(self, split: str) -> list[str]:
        return self.layout.split_ids(self.root, split)

    def _read_mask(self, path: Path) -> np.ndarray:
        """Return the ``(H, W)`` uint8 class mask stored in ``path``."""
        raise NotImplementedError

    def _read_instances(
        self, path: Path, mask: np.ndarray, mask_path: Path
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Return ``(instances (H, W) int32, boxes (K, 4) float32, box_labels (K,) int64)`` from
        the instance file ``path`` of the sample whose class mask ``mask`` came from ``mask_path``."""
        raise NotImplementedError

    def _check_files(self) -> None:
        missing = []
        for name in self.names:
            img, mask, inst = self.layout.paths(self.root, name)
            missing += [str(p) for p in (img, mask) if not p.is_file()]
            if self.with_instances and not inst.is_file():
                missing.append(str(inst))
        if missing:
            raise DataError(
                f"{self.root}: {len(missing)} file(s) of split {self.split!r} missing: "
                f"{format_ids(missing, 3)}; run `pixelwise data check {self.root} "
                f"--format {self.layout.kind.lower()}` for the full report"
            )

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict:
        """Return sample ``index``: image (H,W,3) uint8, mask (H,W) uint8, name, and instances,
        boxes, box_labels when instances are loaded."""
        name = self.names[index]
        img_path, mask_path, inst_path = self.layout.paths(self.root, name)
        image = read_image(img_path)
        mask = self._read_mask(mask_path)
        validate_pair(image, mask, self.num_classes, img_path, mask_path)
        sample = {"image": image, "mask": mask, "name": name}
        if self.with_instances:
            inst, boxes, labels = self._read_instances(inst_path, mask, mask_path)
            sample.update(instances=inst, boxes=boxes, box_labels=labels)
        return sample

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, n={len(self)})"
