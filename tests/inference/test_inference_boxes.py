"""Box handling (enlarge, minimum size, top-K) and the JSON/CSV box file formats."""

import json

import numpy as np
import pytest

from pixelwise.errors import DataError
from pixelwise.inference.boxes import (
    enlarge_boxes,
    lookup_boxes,
    min_box_side,
    prepare_boxes,
    read_box_file,
    write_box_file,
)


def test_enlarge_keeps_the_centre_and_scales_the_sides():
    b = np.array([[10, 20, 50, 40]], np.float32)
    out = enlarge_boxes(b, 1.2)[0]
    np.testing.assert_allclose(out, [6, 18, 54, 42])
    sq = enlarge_boxes(b, 1.0, square=True)[0]
    np.testing.assert_allclose(sq, [10, 10, 50, 50])  # short side grown to the long one


def test_prepare_filters_small_boxes_sorts_and_keeps_top_k():
    boxes = np.array(
        [[0, 0, 200, 200], [0, 0, 90, 300], [10, 10, 150, 140], [5, 5, 5, 50], [0, 0, 120, 120]], np.float32
    )
    scores = np.array([0.1, 0.9, 0.5, 1.0, 0.7], np.float32)
    out, s = prepare_boxes(boxes, scores, image_hw=(300, 300), enlarge=1.2, min_box=112, top_k=2)
    # [0,0,90,300] becomes 108 px wide (< 112): skipped; the empty box is dropped
    np.testing.assert_allclose(s, [0.7, 0.5])
    np.testing.assert_array_equal(out[0], [-12, -12, 132, 132])  # enlarged past the border, not clipped
    assert out.dtype == np.int64
    everything, _ = prepare_boxes(boxes, scores, image_hw=(300, 300), min_box=0, top_k=None)
    assert len(everything) == 4


def test_relative_minimum_scales_with_small_images():
    assert min_box_side(375, 500) == 112
    assert min_box_side(375, 500, min_box_frac=0.3) == 112  # VOC-sized: the paper's 112 px
    assert min_box_side(128, 128, min_box_frac=0.25) == 32  # small synthetic image
    boxes = np.array([[0, 0, 40, 40]], np.float32)
    assert len(prepare_boxes(boxes, image_hw=(128, 128))[0]) == 0
    assert len(prepare_boxes(boxes, image_hw=(128, 128), min_box_frac=0.25)[0]) == 1


@pytest.mark.parametrize("ext", ["json", "csv"])
def test_box_files_round_trip(tmp_path, ext):
    table = {
        "a.jpg": (np.array([[0, 1, 10, 12], [3.5, 4, 9, 8.25]], np.float32), np.array([0.9, 0.4], np.float32)),
        "b": (np.array([[5, 5, 6, 7]], np.float32), np.array([1.0], np.float32)),
    }
    path = write_box_file(tmp_path / f"boxes.{ext}", table)
    back = read_box_file(path)
    assert sorted(back) == ["a.jpg", "b"]
    for name, (boxes, scores) in table.items():
        np.testing.assert_allclose(back[name][0], boxes)
        np.testing.assert_allclose(back[name][1], scores)
    # looked up by file name, then by name without extension
    np.testing.assert_allclose(lookup_boxes(back, "some/dir/b.png")[0], table["b"][0])


def test_scores_are_optional(tmp_path):
    path = tmp_path / "b.json"
    path.write_text(json.dumps({"x": [[0, 0, 4, 4], [1, 1, 3, 3]]}))
    boxes, scores = read_box_file(path)["x"]
    assert boxes.shape == (2, 4) and scores[0] > scores[1]  # earlier boxes rank higher
    csv_path = tmp_path / "b.csv"
    csv_path.write_text("image,x0,y0,x1,y1\nx,0,0,4,4\n")
    assert read_box_file(csv_path)["x"][0].shape == (1, 4)


@pytest.mark.parametrize(
    "name,text,match",
    [
        ("bad.json", "{not json", "not valid JSON"),
        ("bad.json", json.dumps({"a": [[10, 0, 5, 5]]}), "x0 < x1"),
        ("bad.json", json.dumps({"a": [[0, 0, 5]]}), r"\[x0, y0, x1, y1\]"),
        ("bad.json", json.dumps({"a": [[0, 0, "q", 5]]}), "numbers"),
        ("bad.json", json.dumps([[0, 0, 1, 1]]), "expected an object"),
        ("bad.json", json.dumps({"a": [[0, 0, 1, 1, 0.5], [0, 0, 1, 1]]}), "every box or for none"),
        ("bad.csv", "name,a,b\nx,1,2\n", "header"),
        ("bad.csv", "image,x0,y0,x1,y1,score\nx,0,0,4\n", "line 2"),
        ("bad.txt", "", ".json or .csv"),
    ],
)
def test_bad_box_files_give_one_line_errors(tmp_path, name, text, match):
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(DataError, match=match) as err:
        read_box_file(path)
    assert str(path) in str(err.value) and "\n" not in str(err.value)


def test_missing_box_file_and_missing_image_entry(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_box_file(tmp_path / "nope.json")
    with pytest.raises(DataError, match="no boxes for image 'c.png'"):
        lookup_boxes({"a": (np.zeros((0, 4)), np.zeros(0))}, "c.png")


def test_box_iou_matrix_and_objects_found():
    from pixelwise.inference.boxes import box_iou_matrix, objects_found

    proposals = np.array([[0, 0, 10, 10], [5, 0, 15, 10]], dtype=np.float32)
    objects = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]], dtype=np.float32)
    iou = box_iou_matrix(proposals, objects)
    assert iou.shape == (2, 3)
    np.testing.assert_allclose(iou[0], [1.0, 1 / 3, 0.0])
    assert objects_found(proposals, objects).tolist() == [True, True, False]
    assert objects_found(proposals[:1], objects, threshold=0.3).tolist() == [True, True, False]
    assert objects_found(np.zeros((0, 4)), objects).tolist() == [False] * 3
