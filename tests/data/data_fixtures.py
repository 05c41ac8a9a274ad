"""Writers of tiny VOC, SBD and folder datasets (with optional broken files) for the data tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import savemat

from pixelwise.data.io import write_image, write_mask

H, W = 24, 32


def make_scene(seed: int, h: int = H, w: int = W, num_classes: int = 21):
    """Return (image, class mask with 255 borders, object map with 255 borders) for a 2-object scene."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
    mask = np.zeros((h, w), np.uint8)
    objects = np.zeros((h, w), np.uint8)
    c1, c2 = (int(c) for c in rng.choice(np.arange(1, num_classes), size=2, replace=False))
    mask[2:10, 3:12] = c1
    objects[2:10, 3:12] = 1
    mask[12:20, 15:30] = c2
    objects[12:20, 15:30] = 2
    # VOC-style 1-pixel ignore band around the first object
    for arr in (mask, objects):
        arr[1, 2:13] = 255
        arr[10, 2:13] = 255
    return image, mask, objects


def truncate(path: Path, keep: float = 0.5) -> None:
    """Cut a file to a fraction of its bytes."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


VOC_TRAIN = ["2007_000032", "2008_000002", "2009_000001"]
VOC_VAL_GOOD = ["2010_000001", "2011_000003", "2012_000010"]
VOC_BROKEN = {
    "2010_000005": "truncated image",
    "2010_000006": "mask of the wrong size",
    "2010_000007": "label out of range",
    "2010_000008": "image without mask",
}


def build_voc(base: Path, broken: bool = False) -> Path:
    """Write a tiny VOCdevkit/VOC2012 under ``base``; return the VOC2012 path."""
    root = base / "VOCdevkit" / "VOC2012"
    ids = VOC_TRAIN + VOC_VAL_GOOD + (list(VOC_BROKEN) if broken else [])
    for k, name in enumerate(ids):
        image, mask, objects = make_scene(k)
        write_image(root / "JPEGImages" / f"{name}.jpg", image)
        if name == "2010_000006":
            mask, objects = mask[:-2], objects[:-2]
        if name == "2010_000007":
            mask = mask.copy()
            mask[0, 0] = 30
        if name != "2010_000008":
            write_mask(root / "SegmentationClass" / f"{name}.png", mask)
            write_mask(root / "SegmentationObject" / f"{name}.png", objects)
    if broken:
        truncate(root / "JPEGImages" / "2010_000005.jpg")
    lists = root / "ImageSets" / "Segmentation"
    lists.mkdir(parents=True)
    val = VOC_VAL_GOOD + (list(VOC_BROKEN) if broken else [])
    (lists / "train.txt").write_text("\n".join(VOC_TRAIN) + "\n")
    (lists / "val.txt").write_text("\n".join(val) + "\n")
    (lists / "trainval.txt").write_text("\n".join(VOC_TRAIN + val) + "\n")
    return root


def add_voc_ids(root: Path, ids: list[str]) -> None:
    """Give a VOC2012 tree a small image, class mask and object map for each of ``ids`` (copies
    of one scene's files, so that hundreds of ids cost little)."""
    image, mask, objects = make_scene(99)
    first = ids[0]
    write_image(root / "JPEGImages" / f"{first}.jpg", image)
    write_mask(root / "SegmentationClass" / f"{first}.png", mask)
    write_mask(root / "SegmentationObject" / f"{first}.png", objects)
    for sub, ext in (("JPEGImages", ".jpg"), ("SegmentationClass", ".png"), ("SegmentationObject", ".png")):
        data = (root / sub / f"{first}{ext}").read_bytes()
        for name in ids[1:]:
            (root / sub / f"{name}{ext}").write_bytes(data)


SBD_TRAIN = ["2007_000123", "2008_000002", "2011_000003"]
SBD_VAL = ["2007_000200"]
SBD_BROKEN = {"2009_000999": "truncated .mat", "2009_000998": "no GTcls struct"}


def _cell(n: int) -> np.ndarray:
    """An (n, 1) MATLAB cell array of empty matrices (SBD stores boundaries this way)."""
    cell = np.empty((n, 1), dtype=object)
    for i in range(n):
        cell[i, 0] = np.zeros((0, 0), np.uint8)
    return cell


def write_sbd_pair(root: Path, name: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Write img/cls/inst for one SBD id; return (mask, instance map)."""
    image, mask, objects = make_scene(seed)
    mask = mask.copy()
    objects = objects.copy()
    mask[mask == 255] = 0  # SBD has no boundary band
    objects[objects == 255] = 0
    cats = np.array([mask[5, 5], mask[15, 20]], dtype=np.uint8)
    write_image(root / "img" / f"{name}.jpg", image)
    (root / "cls").mkdir(parents=True, exist_ok=True)
    (root / "inst").mkdir(parents=True, exist_ok=True)
    savemat(
        root / "cls" / f"{name}.mat",
        {
            "GTcls": {
                "Boundaries": _cell(20),
                "Segmentation": mask,
                "CategoriesPresent": np.unique(mask[mask > 0]).astype(np.uint8),
            }
        },
    )
    savemat(
        root / "inst" / f"{name}.mat",
        {
            "GTinst": {
                "Segmentation": objects,
                "Boundaries": _cell(2),
                "Categories": cats.reshape(-1, 1),
            }
        },
    )
    return mask, objects


def build_sbd(base: Path, broken: bool = False) -> Path:
    """Write a tiny benchmark_RELEASE/dataset under ``base``; return the dataset path."""
    root = base / "benchmark_RELEASE" / "dataset"
    for k, name in enumerate(SBD_TRAIN + SBD_VAL + (list(SBD_BROKEN) if broken else [])):
        write_sbd_pair(root, name, 100 + k)
    if broken:
        truncate(root / "cls" / "2009_000999.mat", 0.3)
        savemat(root / "cls" / "2009_000998.mat", {"other": np.zeros((H, W), np.uint8)})
    (root / "train.txt").write_text("\n".join(SBD_TRAIN) + "\n")
    (root / "val.txt").write_text("\n".join(SBD_VAL + (list(SBD_BROKEN) if broken else [])) + "\n")
    return root


FOLDER_CLASSES = ["background", "cat", "dog", "tree"]
FOLDER_GOOD = {"a": ".jpg", "b": ".png", "c": ".bmp", "d": ".JPEG"}
FOLDER_BROKEN = {
    "no_mask.jpg": "image without mask",
    "no_image.png": "mask without image",
    "trunc.jpg": "truncated image",
    "small_mask.png": "mask of the wrong size",
    "bad_label.png": "label out of range",
}


def build_folder(base: Path, broken: bool = False, classes: bool = True) -> Path:
    """Write a tiny folder dataset at ``base/myset``; return its path."""
    root = base / "myset"
    for k, (stem, ext) in enumerate(FOLDER_GOOD.items()):
        image, mask, _ = make_scene(200 + k, num_classes=4)
        write_image(root / "images" / f"{stem}{ext}", image)
        if stem == "b":  # a plain grayscale (mode L) index mask
            Image.fromarray(mask).save(root / "masks" / f"{stem}.png")
        else:
            write_mask(root / "masks" / f"{stem}.png", mask)
    if broken:
        image, mask, _ = make_scene(300, num_classes=4)
        write_image(root / "images" / "no_mask.jpg", image)
        write_mask(root / "masks" / "no_image.png", mask)
        write_image(root / "images" / "trunc.jpg", image)
        write_mask(root / "masks" / "trunc.png", mask)
        truncate(root / "images" / "trunc.jpg")
        write_image(root / "images" / "small_mask.png", image)
        write_mask(root / "masks" / "small_mask.png", mask[:, :-3])
        write_image(root / "images" / "bad_label.png", image)
        bad = mask.copy()
        bad[3, 3] = 9
        write_mask(root / "masks" / "bad_label.png", bad)
    if classes:
        (root / "classes.txt").write_text("\n".join(FOLDER_CLASSES) + "\n")
    return root
