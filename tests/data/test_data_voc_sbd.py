"""VOC, SBD and the FCN splits on tiny generated trees."""

from __future__ import annotations

from fnmatch import fnmatch
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
from data_fixtures import SBD_TRAIN, VOC_TRAIN, add_voc_ids, build_voc, make_scene

from pixelwise.data import (
    DATASETS,
    SBDSegmentation,
    SegmentationSource,
    VOCSegmentation,
    build_dataset,
)
from pixelwise.data.splits import SBDVOCTrain, sbd_voc_train_ids
from pixelwise.data.voc import seg11valid_ids, seg11valid_list
from pixelwise.errors import DataError


def _check_sample(s, num_classes=21):
    h, w = s["mask"].shape
    assert s["image"].shape == (h, w, 3) and s["image"].dtype == np.uint8
    assert s["mask"].dtype == np.uint8
    labels = set(np.unique(s["mask"]).tolist()) - {255}
    assert max(labels) < num_classes
    assert s["instances"].dtype == np.int32 and s["instances"].shape == (h, w)
    k = int(s["instances"].max())
    assert s["boxes"].shape == (k, 4) and s["boxes"].dtype == np.float32
    assert s["box_labels"].shape == (k,) and s["box_labels"].dtype == np.int64


def test_voc_loads_with_instances_and_boxes(make_voc):
    root = make_voc()
    ds = VOCSegmentation(root.parent, "train")  # VOCdevkit is accepted as root too
    assert len(ds) == 3 and ds.names == VOC_TRAIN and ds.num_classes == 21
    assert ds.class_names[0] == "background" and len(ds.class_names) == 21
    s = ds[1]
    _check_sample(s)
    assert s["name"] == VOC_TRAIN[1]
    _, mask, _ = make_scene(1)
    np.testing.assert_array_equal(s["mask"], mask)
    # objects: rows 2:10 x cols 3:12 and rows 12:20 x cols 15:30 (boundary band excluded)
    np.testing.assert_array_equal(s["boxes"], [[3, 2, 12, 10], [15, 12, 30, 20]])
    np.testing.assert_array_equal(s["box_labels"], [mask[5, 5], mask[15, 20]])
    assert (s["instances"][mask == 255] == 0).all()


def test_voc_errors_name_the_path(make_voc, tmp_path):
    root = make_voc(broken=True)
    with pytest.raises(DataError, match=r"2010_000008\.png"):
        VOCSegmentation(root, "val")  # a listed mask is missing
    with pytest.raises(
        DataError, match=r"ImageSets/Segmentation/nope\.txt.*available: train, trainval, val"
    ):
        VOCSegmentation(root, "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not a VOC2012 directory"):
        VOCSegmentation(tmp_path / "empty", "train")
    ds = VOCSegmentation(root, "val", ids=["2010_000006", "2010_000007"])
    with pytest.raises(DataError, match=r"2010_000006\.png: mask is 32x22 but image"):
        ds[0]
    with pytest.raises(DataError, match=r"2010_000007\.png: labels \[30\] outside 0\.\.20"):
        ds[1]


def test_sbd_loads_mat_files(make_sbd):
    root = make_sbd()
    ds = SBDSegmentation(root.parent, "train")  # benchmark_RELEASE is accepted as root too
    assert ds.names == SBD_TRAIN and len(ds) == 3
    s = ds[0]
    _check_sample(s)
    assert 255 not in s["mask"]
    assert len(s["boxes"]) == 2
    np.testing.assert_array_equal(s["box_labels"], [s["mask"][5, 5], s["mask"][15, 20]])
    np.testing.assert_array_equal(s["boxes"][0], [3, 2, 12, 10])


def test_sbd_broken_mat(make_sbd):
    root = make_sbd(broken=True)
    ds = SBDSegmentation(root, "val", with_instances=False)
    with pytest.raises(DataError, match=r"2009_000999\.mat: unreadable \.mat file"):
        ds[ds.names.index("2009_000999")]
    with pytest.raises(DataError, match=r"2009_000998\.mat: no GTcls struct"):
        ds[ds.names.index("2009_000998")]


def test_shipped_seg11valid_list():
    ids = seg11valid_list()
    assert len(ids) == 736 and len(set(ids)) == 736
    assert all(2007 <= int(i.split("_")[0]) <= 2011 for i in ids)  # VOC2011 ids only
    assert ids == sorted(ids) and ids[0] == "2007_000033" and ids[-1] == "2011_003271"
    # it is package data, read through importlib.resources
    assert resources.files("pixelwise.data").joinpath("seg11valid.txt").is_file()
    # without roots nothing is read; callers get a fresh list each time
    assert seg11valid_ids() == ids
    seg11valid_ids().clear()
    assert len(seg11valid_ids()) == 736


def test_seg11valid_list_ships_in_wheels():
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    pyproject = Path(__file__).resolve().parents[2] / "pyproject.toml"
    declared = tomllib.loads(pyproject.read_text())["tool"]["setuptools"]["package-data"]
    assert any(fnmatch("seg11valid.txt", pat) for pat in declared["pixelwise.data"])


def test_seg11valid_is_the_shipped_list_not_the_year_rule(make_voc, make_sbd):
    voc, sbd = make_voc(), make_sbd()
    listed = seg11valid_list()
    add_voc_ids(voc, listed)
    # val.txt as in VOC2012: the listed ids plus others, all with a 2007-2011 prefix but one
    extra = ["2010_000001", "2011_000003", "2012_000010"]
    (voc / "ImageSets" / "Segmentation" / "val.txt").write_text("\n".join(sorted(listed + extra)) + "\n")
    # the old rule (val with year <= 2011, minus SBD train) kept 2010_000001 and dropped
    # 2007_000123 (in this fixture's SBD train); the list is authoritative either way
    ids = seg11valid_ids(voc)
    assert ids == listed
    assert "2010_000001" not in ids and "2007_000123" in ids

    valid = build_dataset("voc", root=voc, split="seg11valid")  # no SBD needed
    assert valid.names == listed and len(valid) == 736
    _check_sample(valid[0])
    with pytest.raises(DataError, match="has no option sbd_root"):
        build_dataset("voc", root=voc, split="seg11valid", sbd_root=sbd)


def test_seg11valid_names_missing_ids(make_voc, tmp_path):
    voc = make_voc()
    listed = seg11valid_list()
    add_voc_ids(voc, listed)
    for name in ("2008_000073", "2011_003271"):
        (voc / "SegmentationClass" / f"{name}.png").unlink()
    with pytest.raises(DataError) as err:
        seg11valid_ids(voc.parent)  # VOCdevkit is accepted as root too
    msg = str(err.value)
    assert "\n" not in msg and str(voc) in msg
    assert "2 of the 736 seg11valid ids" in msg and "2008_000073, 2011_003271" in msg
    with pytest.raises(DataError, match=r"736 of the 736 seg11valid ids .*2007_000033, 2007_000042"):
        seg11valid_ids(build_voc(tmp_path / "bare"))  # the tiny fixture: no seg11valid image


def test_sbd_voc_train(make_voc, make_sbd):
    voc, sbd = make_voc(), make_sbd()
    # SBD train = 2007_000123 (a seg11valid id: removed), 2008_000002 (also VOC train), 2011_000003
    items = sbd_voc_train_ids(voc, sbd)
    assert [i for _, i in items] == ["2008_000002", "2011_000003", "2007_000032", "2009_000001"]
    assert not set(seg11valid_list()) & {i for _, i in items}
    assert dict((i, s) for s, i in items)["2008_000002"] == "voc"  # duplicate: VOC's annotation
    assert (
        dict((i, s) for s, i in sbd_voc_train_ids(voc, sbd, prefer="sbd"))["2008_000002"] == "sbd"
    )

    union = build_dataset("sbd_voc_train", root=voc, sbd_root=sbd)
    assert isinstance(union, SBDVOCTrain) and len(union) == 4 and union.num_classes == 21
    for ds in (union, union.voc, union.sbd, build_dataset("synthetic", length=1)):
        assert isinstance(ds, SegmentationSource)
    assert len(set(union.names)) == 4
    _check_sample(union[0])
    assert 255 in union[0]["mask"] and 255 not in union[1]["mask"]  # VOC's annotation, then SBD's


def test_build_dataset_errors():
    assert DATASETS == ("synthetic", "voc", "sbd", "sbd_voc_train", "folder", "camvid")
    with pytest.raises(DataError, match="unknown dataset 'coco'; valid: synthetic, voc, sbd"):
        build_dataset("coco")
    with pytest.raises(DataError, match="needs root="):
        build_dataset("voc")
    with pytest.raises(DataError, match="no option colour"):
        build_dataset("synthetic", colour=3)
