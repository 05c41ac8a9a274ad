"""Boundary F1 (BF, the SegNet authors' computeBFmeasure.m) on hand-computed cases, its
accumulator, the Metric protocol and the Evaluator's ``boundary=True``.

Most images are 240x320: diagonal 400, so theta = 0.0075 * 400 = 3 px exactly.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pixelwise.evaluator import Evaluator, evaluate_samples
from pixelwise.metrics import (
    BoundaryF1,
    ConfusionMatrix,
    Metric,
    SizeBucketIU,
    boundary_f1,
    class_boundaries,
)

H, W = 240, 320


def halves(edge: int = 160, h: int = H, w: int = W) -> np.ndarray:
    """Class 0 left of column ``edge``, class 1 from it on."""
    m = np.zeros((h, w), dtype=np.int64)
    m[:, edge:] = 1
    return m


def test_boundary_is_seg2bdry_one_sided_line_without_frame():
    labels = np.array([[0, 0, 1, 1, 1],
                       [0, 0, 1, 1, 1],
                       [0, 0, 0, 0, 0],
                       [2, 2, 2, 0, 0]])
    b = class_boundaries(labels, 3)
    # pixel (i, j) is on it when the 2x2 block with top-left (i, j) crosses the mask's edge;
    # class 1 touching the top frame makes no boundary there
    assert b[1].astype(int).tolist() == [[0, 1, 0, 0, 0],
                                         [0, 1, 1, 1, 1],
                                         [0, 0, 0, 0, 0],
                                         [0, 0, 0, 0, 0]]
    assert b[2].astype(int).tolist() == [[0, 0, 0, 0, 0],
                                         [0, 0, 0, 0, 0],
                                         [1, 1, 1, 0, 0],
                                         [0, 0, 1, 0, 0]]
    # ignore pixels are outside the image: no change with them, no boundary pixel on them
    with_void = labels.copy()
    with_void[2, :] = 255
    b = class_boundaries(with_void, 3)
    assert np.argwhere(b[2]).tolist() == [[3, 2]]
    assert np.argwhere(b[1]).tolist() == [[0, 1], [1, 1]]


def test_identical_masks_score_one():
    t = halves()
    t[50:90, 20:60] = 2
    bf, per_class = boundary_f1(t, t, 4)
    assert bf == 1.0
    assert per_class[:3].tolist() == [1.0, 1.0, 1.0] and math.isnan(per_class[3])


@pytest.mark.parametrize("shift", [1, 3])  # theta = 3 px, and the test is distance <= theta
def test_edge_shifted_within_theta_scores_one(shift):
    bf, per_class = boundary_f1(halves(160 + shift), halves(160), 2)
    assert bf == 1.0 and per_class.tolist() == [1.0, 1.0]


def test_edge_shifted_beyond_theta_hand_computed():
    t = halves(160)
    p = halves(160)
    p[:120, 160:164] = 0  # top half of the edge shifted right by 4 px > theta
    # truth line: column 159, 240 px. Prediction: column 163 rows 0..119 (120 px), column 159
    # rows 119..239 (121 px), row 119 columns 160..162 (3 px): 244 px.
    # Precision: column 159 (121) and the row-119 step (3, 1..3 px away) are within 3 px: 124/244.
    # Recall: rows 119..239 (121) plus rows 116..118, within 3 px of (119, 159): 124/240.
    bf, per_class = boundary_f1(p, t, 2)
    expected = 2 * 124 / (244 + 240)
    assert per_class == pytest.approx([expected, expected], abs=1e-12)
    assert bf == pytest.approx(62 / 121, abs=1e-12)
    # the whole edge 4 px off: no pixel within theta
    assert boundary_f1(halves(164), t, 2)[0] == 0.0


def test_theta_is_three_quarters_percent_of_the_diagonal():
    # 360x480 (CamVid): diagonal 600, theta 4.5 px
    t = halves(240, 360, 480)
    assert boundary_f1(halves(244, 360, 480), t, 2)[0] == 1.0
    assert boundary_f1(halves(245, 360, 480), t, 2)[0] == 0.0
    assert boundary_f1(halves(161), halves(160), 2, tolerance=0.0)[0] == 0.0


def test_class_predicted_but_absent_from_truth_adds_no_term():
    t = halves()
    p = t.copy()
    p[100:102, 250:252] = 2  # far (> theta) from the edge, inside class 1
    bf, per_class = boundary_f1(p, t, 3)
    assert math.isnan(per_class[2])
    # class 1 gains the square's 8 boundary pixels, unmatched: P = 240/248, R = 1
    assert per_class[0] == 1.0 and per_class[1] == pytest.approx(2 * 240 / (248 + 240))
    assert bf == pytest.approx((1.0 + 60 / 61) / 2)


def test_single_class_image():
    t = np.zeros((H, W), dtype=np.int64)
    # no boundary in the truth (the frame is none) nor in the prediction: no term, as in MATLAB
    bf, per_class = boundary_f1(t, t, 2)
    assert math.isnan(bf) and np.isnan(per_class).all()
    # a predicted boundary of the truth's class: precision and recall 0, a term of 0
    p = t.copy()
    p[10:20, 10:20] = 1
    bf, per_class = boundary_f1(p, t, 2)
    assert bf == 0.0 and per_class[0] == 0.0 and math.isnan(per_class[1])


def test_ignore_pixels_are_outside_the_image():
    t = halves()
    t[100:140, 200:260] = 255  # a void hole inside class 1
    p = halves()
    p[100:140, 200:260] = 0  # whatever is predicted under void is not looked at
    bf, per_class = boundary_f1(p, t, 2)
    assert bf == 1.0 and per_class.tolist() == [1.0, 1.0]
    # all ignore: no valid class
    bf, per_class = boundary_f1(p, np.full((H, W), 255), 2)
    assert math.isnan(bf) and np.isnan(per_class).all()
    with pytest.raises(ValueError, match="outside"):
        boundary_f1(np.full((H, W), 7), t, 2)
    with pytest.raises(TypeError, match="integer"):
        boundary_f1(p.astype(np.float32), t, 2)


def test_padding_scores_as_the_image_alone():
    t, p = halves(160), halves(164)  # 4 px off: 0 at theta 3
    pt = np.full((320, 440), 255, dtype=np.int64)  # padded diagonal 544 would give theta 4.08
    pp = np.zeros((320, 440), dtype=np.int64)
    pt[:H, :W], pp[:H, :W] = t, p
    assert boundary_f1(pp, pt, 2)[0] == boundary_f1(p, t, 2)[0] == 0.0
    pp[:H, :W] = halves(161)
    assert boundary_f1(pp, pt, 2)[1].tolist() == [1.0, 1.0]


def _same(a: dict, b: dict) -> bool:
    """Equal results, NaN equal to NaN."""
    return a.keys() == b.keys() and all(
        np.allclose(a[k], b[k], rtol=1e-12, atol=0, equal_nan=True) for k in a)


def _scenes(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        h, w = int(rng.integers(40, 80)), int(rng.integers(40, 80))
        t = np.kron(rng.integers(0, 4, (h // 8 + 1, w // 8 + 1)), np.ones((8, 8), np.int64))[:h, :w]
        p = np.roll(t, int(rng.integers(-3, 4)), axis=1)
        p[rng.random((h, w)) < 0.02] = 3
        t[rng.random((h, w)) < 0.02] = 255
        out.append((p, t))
    return out


def _pad(items):
    h = max(t.shape[0] for _, t in items)
    w = max(t.shape[1] for _, t in items)
    preds = np.zeros((len(items), h, w), np.int64)
    masks = np.full((len(items), h, w), 255, np.int64)
    for i, (p, t) in enumerate(items):
        preds[i, :p.shape[0], :p.shape[1]] = p
        masks[i, :t.shape[0], :t.shape[1]] = t
    return torch.from_numpy(preds), torch.from_numpy(masks)


def test_batched_update_equals_per_image_update():
    items = _scenes(4)
    one = BoundaryF1(4)
    for p, t in items:
        one.update(torch.from_numpy(p), torch.from_numpy(t))
    batched = BoundaryF1(4)
    batched.update(*_pad(items))
    assert _same(batched.compute(), one.compute())
    bfs = [boundary_f1(p, t, 4)[0] for p, t in items]
    assert one.compute()["boundary_f1"] == pytest.approx(np.nanmean(bfs))
    assert isinstance(one, Metric)


def test_merge_state_dict_and_reset():
    items = _scenes(5, seed=1)
    whole, a, b = BoundaryF1(5), BoundaryF1(5), BoundaryF1(5)
    for i, (p, t) in enumerate(items):
        whole.update(p, t)
        (a if i < 2 else b).update(p, t)
    assert _same(a.merge(b).compute(), whole.compute())
    r = whole.compute()
    assert math.isnan(r["per_class_bf"][4]) and len(r["per_class_bf"]) == 5
    restored = BoundaryF1(5)
    restored.load_state_dict(whole.state_dict())
    assert _same(restored.compute(), r)
    assert whole.all_reduce() is whole  # no process group: a no-op
    with pytest.raises(ValueError, match="merge"):
        whole.merge(BoundaryF1(5, tolerance=0.01))
    whole.reset()
    assert math.isnan(whole.compute()["boundary_f1"])


def test_metric_protocol():
    for m in (ConfusionMatrix(3), SizeBucketIU(3), BoundaryF1(3)):
        assert isinstance(m, Metric)
    assert SizeBucketIU.inputs == ("size_map",) and SizeBucketIU.result_key == "size_buckets"


def test_evaluator_boundary_keys_and_unchanged_default():
    items = _scenes(3, seed=2)
    preds, masks = _pad(items)
    plain, with_bf = Evaluator(4), Evaluator(4, boundary=True)
    for e in (plain, with_bf):
        e.add(preds, masks, images=3)
    r0, r1 = plain.result(), with_bf.result()
    assert list(r0) == ["pixel_acc", "mean_acc", "mean_iu", "fw_iu", "per_class_iu", "per_class_acc",
                        "num_pixels", "confusion", "images", "seconds", "ms_per_image"]
    assert list(r1) == list(r0) + ["boundary_f1", "per_class_bf"]
    assert _same({k: r1[k] for k in r0 if k != "confusion"}, {k: r0[k] for k in r0 if k != "confusion"})
    assert r1["confusion"] == r0["confusion"]
    ref = BoundaryF1(4)
    for p, t in items:
        ref.update(p, t)
    assert r1["boundary_f1"] == ref.compute()["boundary_f1"]
    samples = [{"mask": t, "pred": p} for p, t in items]
    r2 = evaluate_samples(samples, lambda s: s["pred"], 4, boundary=True)
    assert _same(r2, {**r2, **ref.compute()})
    assert "boundary_f1" not in evaluate_samples(samples, lambda s: s["pred"], 4)
