"""Metrics against hand-computed confusion matrices (FCN paper definitions, nanmean, ignore 255)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pixelwise.metrics import (
    ConfusionMatrix,
    SizeBucketIU,
    format_size_table,
    format_table,
    scores_from_matrix,
)


def _cm(pred, target, c):
    cm = ConfusionMatrix(c)
    cm.update(torch.tensor(pred), torch.tensor(target))
    return cm


def test_hand_computed_three_classes():
    cm = _cm([0, 1, 1, 1, 0, 2], [0, 0, 1, 1, 2, 255], 3)
    assert cm.matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    assert cm.matrix.dtype == torch.int64
    r = cm.compute()
    assert r["pixel_acc"] == pytest.approx(3 / 5)
    assert r["per_class_acc"] == pytest.approx([0.5, 1.0, 0.0])
    assert r["mean_acc"] == pytest.approx(0.5)
    assert r["per_class_iu"] == pytest.approx([1 / 3, 2 / 3, 0.0])
    assert r["mean_iu"] == pytest.approx(1 / 3)
    assert r["fw_iu"] == pytest.approx(0.4)
    assert r["num_pixels"] == 5
    assert all(isinstance(r[k], float) for k in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu"))


def test_absent_class_is_nan_and_left_out():
    r = _cm([0, 1, 1, 1, 0, 2], [0, 0, 1, 1, 2, 255], 4).compute()
    assert math.isnan(r["per_class_iu"][3]) and math.isnan(r["per_class_acc"][3])
    assert r["mean_iu"] == pytest.approx(1 / 3) and r["mean_acc"] == pytest.approx(0.5)


def test_class_predicted_but_absent_from_truth_counts_as_zero():
    r = _cm([3, 0, 1], [0, 0, 1], 4).compute()
    # rows truth: 0 -> [1, 0, 0, 1], 1 -> [0, 1, 0, 0]
    assert r["per_class_iu"][3] == 0.0 and math.isnan(r["per_class_iu"][2])
    assert r["mean_iu"] == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert math.isnan(r["per_class_acc"][3])  # t_3 = 0: accuracy undefined, left out
    assert r["mean_acc"] == pytest.approx(0.75)
    assert r["pixel_acc"] == pytest.approx(2 / 3)
    assert r["fw_iu"] == pytest.approx(2 / 3 * 0.5 + 1 / 3 * 1.0)


def test_all_ignore_image():
    cm = ConfusionMatrix(3)
    cm.update(torch.zeros(4, 5, dtype=torch.long), torch.full((4, 5), 255))
    r = cm.compute()
    assert cm.matrix.sum() == 0 and r["num_pixels"] == 0
    assert all(math.isnan(r[k]) for k in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu"))
    cm.update(torch.tensor([0, 1]), torch.tensor([0, 1]))  # does not disturb later counts
    assert cm.compute()["mean_iu"] == 1.0


def _reference(pred, target, c):
    """Straight from the paper's formulas, in plain Python loops over classes."""
    keep = target != 255
    p, t = pred[keep], target[keep]
    n = np.zeros((c, c))
    for i in range(c):
        for j in range(c):
            n[i, j] = np.sum((t == i) & (p == j))
    ti = n.sum(1)
    ious, accs = [], []
    for i in range(c):
        union = ti[i] + n[:, i].sum() - n[i, i]
        if union > 0:
            ious.append(n[i, i] / union)
        if ti[i] > 0:
            accs.append(n[i, i] / ti[i])
    fw = (
        sum(ti[i] * n[i, i] / (ti[i] + n[:, i].sum() - n[i, i]) for i in range(c) if ti[i] > 0)
        / ti.sum()
    )
    return np.trace(n) / ti.sum(), np.mean(accs), np.mean(ious), fw


def test_random_against_reference_and_merge_equivalence():
    rng = np.random.default_rng(0)
    c = 5
    whole = ConfusionMatrix(c)
    parts = [ConfusionMatrix(c) for _ in range(3)]
    preds, targets = [], []
    for k in range(6):
        t = rng.integers(0, c, size=(2, 7, 9))
        t[rng.random(t.shape) < 0.1] = 255
        p = np.where(
            rng.random(t.shape) < 0.6,
            np.where(t == 255, 0, t),
            rng.integers(0, c - 1, size=t.shape),
        )
        whole.update(torch.from_numpy(p), torch.from_numpy(t))
        parts[k % 3].update(p, t)  # numpy input works too
        preds.append(p)
        targets.append(t)
    merged = ConfusionMatrix(c)
    for part in parts:
        merged.merge(part)
    assert torch.equal(merged.matrix, whole.matrix)
    ref = _reference(np.concatenate(preds).ravel(), np.concatenate(targets).ravel(), c)
    r = whole.compute()
    assert [r["pixel_acc"], r["mean_acc"], r["mean_iu"], r["fw_iu"]] == pytest.approx(list(ref))
    whole.reset()
    assert whole.matrix.sum() == 0


def test_update_validates_input():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="shapes differ"):
        cm.update(torch.zeros(2, 3, dtype=torch.long), torch.zeros(3, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"labels outside 0..2 \(target \[7\]"):
        cm.update(torch.tensor([0, 1]), torch.tensor([7, 1]))
    with pytest.raises(TypeError, match="argmax"):
        cm.update(torch.zeros(2), torch.zeros(2, dtype=torch.long))
    with pytest.raises(ValueError, match="cannot merge"):
        cm.merge(ConfusionMatrix(4))


def test_all_reduce_noop_and_single_process_group(tmp_path):
    import torch.distributed as dist

    cm = _cm([0, 1], [0, 1], 2)
    assert cm.all_reduce() is cm and cm.matrix.tolist() == [[1, 0], [0, 1]]
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        cm.all_reduce()
        assert cm.matrix.tolist() == [[1, 0], [0, 1]]
    finally:
        dist.destroy_process_group()


def test_state_dict_roundtrip():
    cm = _cm([0, 1, 2], [0, 2, 2], 3)
    other = ConfusionMatrix(3)
    other.load_state_dict(cm.state_dict())
    assert torch.equal(other.matrix, cm.matrix)


def test_format_table():
    r = scores_from_matrix(np.array([[8, 2], [1, 9]]))
    text = format_table(r, ["background", "thing"])
    head, row = text.splitlines()[:2]
    assert head.split() == ["pixel", "acc.", "mean", "acc.", "mean", "IU", "f.w.", "IU"]
    assert row.split() == ["85.0", "85.0", "73.9", "73.9"]  # IU 8/11 and 9/12
    assert "background" in text and "thing" in text
    multi = format_table({"FCN-32s": r, "FCN-8s": r}, per_class=False)
    assert multi.splitlines()[1].startswith("FCN-32s") and len(multi.splitlines()) == 3
    nan = format_table(scores_from_matrix(np.array([[1, 0], [0, 0]])))
    assert nan.splitlines()[-1].split()[-1] == "-"  # class 1 absent: printed as '-'


def test_size_bucket_iu_hand_computed():
    target = torch.tensor([0, 0, 1, 1, 2, 2, 2, 255])
    size = torch.tensor([0, 0, 1, 1, 3, 3, 3, 255])
    pred = torch.tensor([0, 1, 1, 0, 2, 2, 0, 1])
    m = SizeBucketIU(3)
    m.update(pred, target, size)
    r = m.compute()
    assert r["small"]["acc"] == pytest.approx(0.5) and r["small"]["pixels"] == 2
    assert r["small"]["mean_iu"] == pytest.approx(1 / 3)
    assert r["large"]["acc"] == pytest.approx(2 / 3) and r["large"]["pixels"] == 3
    assert r["large"]["per_class_iu"] == pytest.approx([1 / 3, 0.0, 2 / 3])
    assert r["large"]["mean_iu"] == pytest.approx(1 / 3)
    assert math.isnan(r["medium"]["acc"]) and r["medium"]["pixels"] == 0
    other = SizeBucketIU(3)
    other.update(pred, target, size)
    m.merge(other)
    assert m.compute()["small"]["pixels"] == 4
    table = format_size_table(r)
    assert "small" in table and "50.0" in table and "33.3" in table
