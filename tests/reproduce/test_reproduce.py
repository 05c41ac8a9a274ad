"""reproduce's evaluation helpers: DeconvNet's proposal recall."""

import math


def test_proposal_recall_by_size_bucket():
    from pixelwise.reproduce.run import proposal_recall

    recall = proposal_recall([(1, True), (1, False), (3, True)], 0.5)
    assert recall["all"] == 2 / 3 and recall["small"] == 0.5 and recall["large"] == 1.0
    assert math.isnan(recall["medium"]) and recall["objects"] == 3 and recall["iou"] == 0.5
