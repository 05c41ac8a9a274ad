"""VOC, SBD and the FCN splits on tiny generated trees."""

from __future__ import annotations

import numpy as np
import pytest
from data_fixtures import SBD_TRAIN, VOC_TRAIN, make_scene

from pixelwise.data import (
    DATASETS,
    SBDSegmentation,
    SegmentationSource,
    VOCSegmentation,
    build_dataset,
)
from pixelwise.data.splits import SBDVOCTrain, sbd_voc_train_ids, seg11valid_ids, year_of
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


def test_splits(make_voc, make_sbd):
    voc, sbd = make_voc(), make_sbd()
    assert year_of("2011_000003") == 2011 and year_of("img_1") is None
    # VOC val = 2010_000001, 2011_000003 (in SBD train), 2012_000010 (2012): only the first stays
    assert seg11valid_ids(voc, sbd) == ["2010_000001"]
    items = sbd_voc_train_ids(voc, sbd)
    assert [i for _, i in items] == [
        "2007_000123",
        "2008_000002",
        "2011_000003",
        "2007_000032",
        "2009_000001",
    ]
    assert dict((i, s) for s, i in items)["2008_000002"] == "voc"  # duplicate: VOC's annotation
    assert (
        dict((i, s) for s, i in sbd_voc_train_ids(voc, sbd, prefer="sbd"))["2008_000002"] == "sbd"
    )

    union = build_dataset("sbd_voc_train", root=voc, sbd_root=sbd)
    assert isinstance(union, SBDVOCTrain) and len(union) == 5 and union.num_classes == 21
    for ds in (union, union.voc, union.sbd, build_dataset("synthetic", length=1)):
        assert isinstance(ds, SegmentationSource)
    assert len(set(union.names)) == 5
    assert union.source(1) == "voc" and union.source(0) == "sbd"
    _check_sample(union[1])
    assert 255 in union[1]["mask"] and 255 not in union[0]["mask"]

    valid = build_dataset("voc", root=voc, split="seg11valid", sbd_root=sbd)
    assert valid.names == ["2010_000001"]
    with pytest.raises(DataError, match="needs sbd_root"):
        build_dataset("voc", root=voc, split="seg11valid")


def test_build_dataset_errors():
    assert DATASETS == ("synthetic", "voc", "sbd", "sbd_voc_train", "folder")
    with pytest.raises(DataError, match="unknown dataset 'coco'; valid: synthetic, voc, sbd"):
        build_dataset("coco")
    with pytest.raises(DataError, match="needs root="):
        build_dataset("voc")
    with pytest.raises(DataError, match="no option colour"):
        build_dataset("synthetic", colour=3)
