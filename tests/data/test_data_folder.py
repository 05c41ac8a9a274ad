"""The folder dataset: stems, classes.txt, splits and errors."""

from __future__ import annotations

import numpy as np
import pytest
from data_fixtures import FOLDER_CLASSES, FOLDER_GOOD, make_scene

from pixelwise.data import FolderDataset, build_dataset
from pixelwise.data.folder import hash_fraction
from pixelwise.errors import DataError


def test_folder_loads_pairs(make_folder):
    root = make_folder()
    ds = build_dataset("folder", root=root, split="all")
    assert isinstance(ds, FolderDataset)
    assert ds.names == sorted(FOLDER_GOOD) and ds.num_classes == 4
    assert ds.class_names == FOLDER_CLASSES
    for k, stem in enumerate(sorted(FOLDER_GOOD)):
        s = ds[k]
        assert s["name"] == stem and s["image"].shape == (24, 32, 3)
        _, mask, _ = make_scene(200 + list(FOLDER_GOOD).index(stem), num_classes=4)
        np.testing.assert_array_equal(s["mask"], mask)  # palette and plain L masks alike


def test_folder_without_classes_txt_infers(make_folder):
    root = make_folder(classes=False)
    ds = FolderDataset(root)
    top = max(int(ds[i]["mask"][ds[i]["mask"] != 255].max()) for i in range(len(ds)))
    assert ds.num_classes == top + 1
    assert ds.class_names == [f"class_{i}" for i in range(top + 1)]
    assert FolderDataset(root, num_classes=7).num_classes == 7


def test_folder_splits(make_folder):
    root = make_folder()
    train = FolderDataset(root, "train", val_fraction=0.5)
    val = FolderDataset(root, "val", val_fraction=0.5)
    assert sorted(train.names + val.names) == sorted(FOLDER_GOOD)
    assert all(hash_fraction(s) < 0.5 for s in val.names)
    assert FolderDataset(root, "train", val_fraction=0.5).names == train.names  # deterministic
    (root / "splits").mkdir()
    (root / "splits" / "mine.txt").write_text("c\na\n")
    assert FolderDataset(root, "mine").names == ["c", "a"]
    with pytest.raises(DataError, match="valid splits: all, mine, train, val"):
        FolderDataset(root, "other")


def test_folder_errors(make_folder):
    root = make_folder(broken=True)
    with pytest.raises(
        DataError,
        match=r"1 image\(s\) without a mask \(no_mask\.jpg\).*1 mask\(s\) without an image",
    ):
        FolderDataset(root)
    (root / "images" / "no_mask.jpg").unlink()
    (root / "masks" / "no_image.png").unlink()
    ds = FolderDataset(root)
    with pytest.raises(DataError, match=r"trunc\.jpg: unreadable image"):
        ds[ds.names.index("trunc")]
    with pytest.raises(DataError, match=r"small_mask\.png: mask is 29x24 but image"):
        ds[ds.names.index("small_mask")]
    with pytest.raises(DataError, match=r"bad_label\.png: labels \[9\] outside 0\.\.3"):
        ds[ds.names.index("bad_label")]
    with pytest.raises(DataError, match="lists 4 classes but num_classes=5"):
        FolderDataset(root, num_classes=5)
