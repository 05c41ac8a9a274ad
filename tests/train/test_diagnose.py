"""A model that predicts one class on (nearly) every pixel is named, with the likely causes."""

import json

import numpy as np
import pytest
import torch

from pixelwise.cli import main
from pixelwise.train.diagnose import collapse_message, collapse_notes, display_name, find_collapse

NAMES = ["background", "disc", "square"]


def test_all_background_predictions_are_a_collapse():
    # rows truth, columns prediction: 70 % background in the truth, 99.5 % predicted background
    m = np.array([[700, 0, 0], [195, 5, 0], [100, 0, 0]])
    found = find_collapse(m)
    assert found is not None and found.label == 0
    assert found.share == pytest.approx(0.995) and found.truth_share == pytest.approx(0.7)
    line = collapse_message(m, NAMES, model="FCN-8s")
    assert line.startswith("validation: FCN-8s predicts 'background' on 99.5 % of pixels (truth: 70.0 %): collapsed")
    for cause in ("loss normalisation", "--backbone-weights / pixelwise pretrain", "too few steps"):
        assert cause in line
    assert "\n" not in line and "see the warning" not in line
    assert "see the warning at the start" in collapse_message(m, NAMES, lr_warning=True)


def test_collapse_on_another_class_and_tensor_input():
    m = torch.tensor([[0, 0, 50], [0, 0, 30], [0, 1, 20]])  # predicts 'square' on 100/101 pixels
    assert find_collapse(m).label == 2
    assert "predicts 'square' on 99.0 %" in collapse_message(m, NAMES, where="eval on synthetic val")
    assert collapse_message(m, None).count("'class_2'") == 1  # no names: class_<i>


def test_healthy_or_undecidable_matrices_are_not_collapsed():
    assert find_collapse(np.array([[70, 5, 0], [5, 10, 0], [3, 0, 7]])) is None  # a working model
    assert find_collapse(np.array([[90, 0], [8, 2]])) is None  # 98 % < 99 %
    assert find_collapse(np.zeros((3, 3))) is None  # nothing counted
    assert find_collapse(np.array([[100, 0], [0, 0]])) is None  # the truth has a single class
    assert find_collapse(np.array([[995, 0], [5, 0]])) is None  # the truth itself is 99.5 % background
    assert find_collapse(np.array([[90, 0], [8, 2]]), threshold=0.95).label == 0
    with pytest.raises(ValueError):
        find_collapse(np.zeros((2, 3)))


def test_collapse_notes_skip_the_crf_of_a_collapsed_model():
    dead = {"confusion": [[10, 0], [5, 0]]}
    fine = {"confusion": [[10, 0], [0, 5]]}
    notes = collapse_notes({"fcn8s": dead, "fcn8s+crf": dead, "deconvnet": fine, "deconvnet+crf": dead},
                           ["background", "disc"], display=lambda k: k.upper())
    assert list(notes) == ["fcn8s", "deconvnet+crf"] and notes["fcn8s"].startswith("validation: FCN8S predicts")
    assert display_name("fcn8s") == "FCN-8s" and display_name("not-a-model") == "not-a-model"


TINY = ["--width", "0.03125", "--no-pad100", "--data", "size=32", "--train-limit", "4", "--val-limit", "3",
        "--batch-size", "2", "--no-progress", "--convention", "torchvision_rgb", "--threads", "1"]


def test_train_and_eval_name_an_untrained_fcn(tmp_path, capsys):
    """FCN's score layers start at zero: before any step every pixel is background."""
    out = tmp_path / "dead"
    assert main(["train", "--model", "fcn32s", *TINY, "--steps", "0", "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "pixelwise train: validation at step 0: FCN-32s predicts 'background' on 100.0 % of pixels" in err
    assert "likely causes" in err
    events = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert any(r.get("event") == "collapsed" for r in events)

    assert main(["eval", "--checkpoint", str(out / "last.pt"), "--out", str(tmp_path / "ev"), "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert "pixelwise eval: eval on synthetic val: FCN-32s predicts 'background' on 100.0 % of pixels" in err
    saved = json.loads((tmp_path / "ev" / "results.json").read_text())
    assert saved["collapsed"].startswith("eval on synthetic val: FCN-32s predicts 'background'")


def test_validation_note_points_at_the_runs_lr_warning(tmp_path):
    from pixelwise.train.diagnose import validation_note
    from pixelwise.train.runlog import RunLog

    results = {"confusion": [[10, 0], [5, 0]]}
    log = RunLog(tmp_path / "log.jsonl")
    note = validation_note(results, "fcn8s", ["background", "disc"], step=7, log_path=log.path)
    assert note.startswith("validation at step 7: FCN-8s predicts 'background'") and "see the warning" not in note
    log.write({"type": "event", "event": "warning", "step": 0, "message": "lr vs loss"})
    assert "(see the warning at the start)" in validation_note(results, "fcn8s", ["background", "disc"], step=7,
                                                                log_path=log.path)
    assert validation_note({"confusion": [[10, 0], [0, 5]]}, "fcn8s", ["background", "disc"], step=7) is None
