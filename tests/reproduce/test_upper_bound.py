import numpy as np
import pytest

from pixelwise.reproduce.upper_bound import block_mode_resample, upper_bound_miou


def test_block_mode_takes_the_majority_and_skips_ignore():
    mask = np.zeros((4, 4), np.uint8)
    mask[:2, :2] = [[1, 1], [1, 255]]
    mask[:2, 2:] = 255
    mask[2:, :2] = [[2, 2], [3, 0]]
    out = block_mode_resample(mask, 2, 4)
    assert (out[:2, :2] == 1).all()
    assert (out[:2, 2:] == 255).all()
    assert (out[2:, :2] == 2).all()
    assert (out[2:, 2:] == 0).all()


def test_odd_sizes_keep_shape():
    mask = np.random.default_rng(0).integers(0, 3, (37, 53)).astype(np.uint8)
    assert block_mode_resample(mask, 8, 3).shape == (37, 53)


def test_bound_is_exact_for_block_aligned_truth_and_drops_for_fine_detail():
    mask = np.zeros((64, 64), np.uint8)
    mask[:32, :32] = 1  # aligned with 32-px blocks
    res = upper_bound_miou([mask], 2, factors=(32,))
    assert res[32]["mean_iu"] == pytest.approx(1.0)
    fine = np.zeros((64, 64), np.uint8)
    fine[8:14, 16:22] = 1  # a 6x6 object: lost at stride 32, kept (coarsely) at 8
    res = upper_bound_miou([fine], 2, factors=(32, 8))
    assert res[32]["mean_iu"] < res[8]["mean_iu"] < 1.0
