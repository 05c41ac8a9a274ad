"""A dataset of your own: ``images/`` and ``masks/`` matched by file stem.

Layout::

    root/images/<stem>.<ext>     any format Pillow reads (.jpg .png .bmp .tif .webp .gif ...),
                                 extension case-insensitive
    root/masks/<stem>.png        class index per pixel (palette or grayscale PNG), 255 = ignore;
                                 or an RGB colour mask when classes.txt gives class colours
    root/classes.txt             optional: one class per line, background first, with or without
                                 an RGB colour (syntax in :mod:`pixelwise.data.classes`)
    root/splits/<split>.txt      optional: stems of each split, one per line

Without ``classes.txt`` the classes are ``class_0 .. class_{N-1}`` where N is ``num_classes`` if
given, else the largest label found in the masks plus one (a scan of every mask).

With class colours, RGB masks are mapped to class indices (void colours to 255); a colour in no
class stops loading with an error naming the file and the colour, unless
``unknown_colors="ignore"`` (then it reads as 255). Palette and grayscale masks stay index masks.

Splits: ``split="all"`` (or None) is every pair. A ``splits/<split>.txt`` file wins when present.
Otherwise ``train``/``val`` are made by hashing each stem (SHA-1 of the UTF-8 stem, first 8 hex
digits / 2**32): a stem is in ``val`` when that number is below ``val_fraction``. The split of an
image therefore never changes when files are added or removed.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pixelwise.data.base import format_ids, read_id_list, validate_pair
from pixelwise.data.classes import ClassList, check_unknown_policy, read_classes
from pixelwise.data.io import IMAGE_EXTENSIONS, read_image, read_mask
from pixelwise.data.palette import IGNORE_INDEX
from pixelwise.errors import DataError
from pixelwise.metrics import fallback_class_names

MASK_EXTENSIONS = (".png",)


@dataclass
class FolderScan:
    """What :func:`scan_folder` found: matched pairs and the files that do not pair up."""

    pairs: dict[str, tuple[Path, Path]] = field(default_factory=dict)  # stem -> (image, mask)
    images_without_mask: list[Path] = field(default_factory=list)
    masks_without_image: list[Path] = field(default_factory=list)
    duplicates: list[Path] = field(default_factory=list)  # a second file with an existing stem


def list_by_stem(directory: Path, exts: tuple[str, ...]) -> tuple[dict[str, Path], list[Path]]:
    """Return ``({stem: file}, duplicates)`` for the files of ``directory`` with one of ``exts``
    (lower-case; matched case-insensitively); a later file with a stem already seen is a duplicate."""
    found: dict[str, Path] = {}
    dups: list[Path] = []
    for p in sorted(directory.iterdir()):
        if p.is_file() and p.suffix.lower() in exts:
            if p.stem in found:
                dups.append(p)
            else:
                found[p.stem] = p
    return found, dups


def scan_folder(root: str | Path) -> FolderScan:
    """Match ``root/images`` with ``root/masks`` by stem; DataError if either directory is missing."""
    root = Path(root).expanduser()
    image_dir, mask_dir = root / "images", root / "masks"
    for d in (image_dir, mask_dir):
        if not d.is_dir():
            raise DataError(
                f"{d}: folder dataset directory not found (expected images/ and masks/)"
            )
    images, dup_i = list_by_stem(image_dir, IMAGE_EXTENSIONS)
    masks, dup_m = list_by_stem(mask_dir, MASK_EXTENSIONS)
    scan = FolderScan(duplicates=dup_i + dup_m)
    for stem in sorted(images):
        if stem in masks:
            scan.pairs[stem] = (images[stem], masks[stem])
        else:
            scan.images_without_mask.append(images[stem])
    scan.masks_without_image = [masks[s] for s in sorted(masks) if s not in images]
    return scan


CLASSES_FILE = "classes.txt"


def find_classes(root: str | Path, classes_file: str | Path | None = None) -> ClassList | None:
    """Return the parsed classes file: ``classes_file`` if given (it must exist), else
    ``root/classes.txt`` if present, else None."""
    if classes_file is not None:
        return read_classes(classes_file)
    path = Path(root).expanduser() / CLASSES_FILE
    return read_classes(path) if path.is_file() else None


def hash_fraction(stem: str) -> float:
    """Return a number in [0, 1) fixed by ``stem`` alone (used for the train/val split)."""
    return int(hashlib.sha1(stem.encode("utf-8")).hexdigest()[:8], 16) / 2**32


def max_label(mask_paths: list[Path]) -> int:
    """Return the largest label other than 255 over the given masks (-1 if none)."""
    top = -1
    for p in mask_paths:
        m = read_mask(p)
        vals = np.flatnonzero(np.bincount(m.ravel(), minlength=256)[:IGNORE_INDEX])
        if len(vals):
            top = max(top, int(vals[-1]))
    return top


class FolderDataset:
    """Image/mask pairs from a folder (layout and split rules in the module docstring)."""

    def __init__(
        self,
        root: str | Path,
        split: str | None = "all",
        *,
        num_classes: int | None = None,
        val_fraction: float = 0.1,
        classes_file: str | Path | None = None,
        unknown_colors: str = "error",
    ) -> None:
        self.root = Path(root).expanduser()
        if not self.root.is_dir():
            raise DataError(f"{self.root}: folder dataset root not found")
        self.split = split or "all"
        self.unknown_colors = check_unknown_policy(unknown_colors)
        scan = scan_folder(self.root)
        problems = []
        if scan.images_without_mask:
            problems.append(
                f"{len(scan.images_without_mask)} image(s) without a mask "
                f"({format_ids([p.name for p in scan.images_without_mask], 3)})"
            )
        if scan.masks_without_image:
            problems.append(
                f"{len(scan.masks_without_image)} mask(s) without an image "
                f"({format_ids([p.name for p in scan.masks_without_image], 3)})"
            )
        if scan.duplicates:
            problems.append(
                f"{len(scan.duplicates)} file(s) sharing a stem with another "
                f"({format_ids([str(p.relative_to(self.root)) for p in scan.duplicates], 3)})"
            )
        if problems:
            raise DataError(
                f"{self.root}: {'; '.join(problems)}; run `pixelwise data check {self.root} "
                "--format folder` for the full report"
            )
        if not scan.pairs:
            raise DataError(f"{self.root}: no image/mask pairs found in images/ and masks/")
        self._pairs = scan.pairs
        self.names: list[str] = self._select(sorted(scan.pairs), val_fraction)

        self.classes: ClassList | None = find_classes(self.root, classes_file)
        self._color_map = self.classes.color_map() if self.classes is not None else None
        names = self.classes.names if self.classes is not None else None
        if names is not None:
            if num_classes is not None and num_classes != len(names):
                raise DataError(
                    f"{self.classes.path}: lists {len(names)} classes but num_classes="
                    f"{num_classes} was given"
                )
            num_classes = len(names)
        elif num_classes is None:
            num_classes = max_label([m for _, m in scan.pairs.values()]) + 1
            if num_classes < 1:
                num_classes = 1
        if not 1 <= num_classes <= 255:
            raise DataError(f"{self.root}: num_classes must be 1..255, got {num_classes}")
        self.num_classes: int = int(num_classes)
        self.class_names: list[str] = fallback_class_names(names, self.num_classes)
        self.palette: np.ndarray | None = (
            self.classes.palette() if self.classes is not None else None
        )
        """``(num_classes, 3)`` uint8 class colours from a coloured classes file, else None."""

    def _select(self, stems: list[str], val_fraction: float) -> list[str]:
        if self.split == "all":
            return stems
        list_path = self.root / "splits" / f"{self.split}.txt"
        if list_path.is_file():
            ids = read_id_list(list_path)
            missing = [i for i in ids if i not in self._pairs]
            if missing:
                raise DataError(
                    f"{list_path}: {len(missing)} listed stem(s) have no image/mask pair: "
                    f"{format_ids(missing)}"
                )
            return ids
        if self.split in ("train", "val"):
            if not 0.0 <= val_fraction <= 1.0:
                raise DataError(f"val_fraction must be in 0..1, got {val_fraction}")
            in_val = [hash_fraction(s) < val_fraction for s in stems]
            want_val = self.split == "val"
            return [s for s, v in zip(stems, in_val, strict=False) if v == want_val]
        split_dir = self.root / "splits"
        avail = sorted(p.stem for p in split_dir.glob("*.txt")) if split_dir.is_dir() else []
        raise DataError(
            f"{list_path}: split list not found; valid splits: "
            f"{', '.join(sorted(set(['all', 'train', 'val'] + avail)))}"
        )

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict:
        """Return sample ``index``: image (H,W,3) uint8 RGB, mask (H,W) uint8, name (the stem)."""
        name = self.names[index]
        img_path, mask_path = self._pairs[name]
        image = read_image(img_path)
        mask = read_mask(mask_path, self._color_map, self.unknown_colors)
        validate_pair(image, mask, self.num_classes, img_path, mask_path)
        return {"image": image, "mask": mask, "name": name}

    def __repr__(self) -> str:
        return (
            f"FolderDataset(root={str(self.root)!r}, split={self.split!r}, n={len(self)}, "
            f"num_classes={self.num_classes})"
        )
