"""`pixelwise train` / `pixelwise eval` end to end on tiny synthetic runs."""

import json

import pytest
import torch
import yaml

from pixelwise.checkpoint import load_model
from pixelwise.cli import main
from pixelwise.train.runlog import read_log

TINY = ["--width", "0.03125", "--no-pad100", "--data", "size=32", "--train-limit", "4", "--val-limit", "3",
        "--batch-size", "2", "--no-progress", "--convention", "torchvision_rgb", "--threads", "1"]


def test_train_then_eval_writes_everything(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "fcn32s", *TINY, "--steps", "4", "--eval-every", "2", "--log-every", "1",
                 "--out", str(out)]) == 0
    for name in ("last.pt", "best.pt", "log.jsonl", "curves.png", "config.yaml"):
        assert (out / name).stat().st_size > 0, name
    records = read_log(out / "log.jsonl")
    assert [r["step"] for r in records if r["type"] == "train"] == [1, 2, 3, 4]
    vals = [r for r in records if r["type"] == "val"]
    assert [r["step"] for r in vals] == [2, 4] and all(0 <= r["mean_iu"] <= 1 for r in vals)
    best = torch.load(out / "best.pt", weights_only=True)
    assert best["metrics"]["mean_iu"] == max(r["mean_iu"] for r in vals)
    assert best["config"]["model"] == "fcn32s" and best["training"]["progress"]["step"] in (2, 4)
    capsys.readouterr()

    ev = tmp_path / "ev"
    assert main(["eval", "--checkpoint", str(out / "best.pt"), "--limit", "3", "--out", str(ev), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "mean IU" in printed and "background" in printed and "IU by object size" in printed
    results = json.loads((ev / "results.json").read_text())
    assert (ev / "confusion.png").stat().st_size > 0
    # the same model on the same images: the numbers stored at training time
    assert results["mean_iu"] == pytest.approx(best["metrics"]["mean_iu"], abs=1e-12)
    assert results["images"] == 3 and results["split"] == "val" and results["dataset"] == "synthetic"
    assert len(results["per_class_iu"]) == 8 and set(results["size_buckets"]) == {"small", "medium", "large"}
    assert sum(map(sum, results["confusion"])) == results["num_pixels"]


def test_lr_loss_warning_is_printed_once(tmp_path, capsys):
    assert main(["train", "--model", "fcn32s", *TINY, "--steps", "2", "--loss-reduction", "sum", "--lr", "1e-4",
                 "--val-split", "", "--out", str(tmp_path / "w")]) == 0
    err = capsys.readouterr().err
    assert err.count("warning:") == 1 and "diverge to NaN" in err
    assert main(["train", "--model", "fcn32s", *TINY, "--steps", "1", "--lr", "1e-10", "--val-split", "",
                 "--out", str(tmp_path / "w2")]) == 0
    assert "barely change" in capsys.readouterr().err


def test_yaml_config_then_flags(tmp_path):
    cfg = tmp_path / "cfg.yaml"
    cfg.write_text(yaml.safe_dump({"model": "fcn16s", "steps": 2, "lr": 0.5, "lr_policy": "step",
                                   "lr_steps": [1], "data_options": {"size": 32}}))
    out = tmp_path / "y"
    assert main(["train", "--config", str(cfg), *TINY, "--lr", "0.01", "--val-split", "", "--precision", "bf16",
                 "--channels-last", "--out", str(out)]) == 0
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert (saved["model"], saved["steps"], saved["lr"], saved["lr_steps"]) == ("fcn16s", 2, 0.01, [1])
    assert torch.load(out / "last.pt", weights_only=True)["config"] == saved


def test_stages_and_init_from_keep_predictions(tmp_path, capsys):
    out = tmp_path / "st"
    assert main(["train", "--stages", "fcn32s,fcn16s", *TINY, "--steps", "2", "--optimizer", "adam", "--lr", "1e-3",
                 "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "stage 1/2: fcn32s" in err and "stage 2/2: fcn16s" in err and "copied 32 of 36 tensors" in err
    for stage in ("fcn32s", "fcn16s"):
        assert (out / stage / "last.pt").is_file() and (out / stage / "curves.png").is_file()
    s2 = torch.load(out / "fcn16s" / "last.pt", weights_only=True)
    assert s2["config"]["init_from"] == str(out / "fcn32s" / "last.pt")

    # FCN-16s initialised from the FCN-32s checkpoint, before any step: the same predictions
    init = tmp_path / "init"
    assert main(["train", "--model", "fcn16s", *TINY, "--steps", "0", "--init-from", str(out / "fcn32s" / "last.pt"),
                 "--out", str(init)]) == 0
    m32, m16 = load_model(out / "fcn32s" / "last.pt"), load_model(init / "last.pt")
    assert torch.count_nonzero(m16.score_pool4.weight) == 0
    shared = {k: v for k, v in m16.state_dict().items() if k in m32.state_dict()}
    assert all(torch.equal(v, m32.state_dict()[k]) for k, v in shared.items() if not k.startswith("upscore"))
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        a, b = m32(x), m16(x)
    # the new pool4 scorer adds nothing; only the upsampling path differs (32x vs 2x then 16x, both
    # bilinear), which moves the class boundaries by a pixel or so
    assert (a.argmax(1) == b.argmax(1)).float().mean() > 0.95


def test_edeconvnet_and_bad_options_fail_in_one_line(tmp_path, capsys):
    assert main(["train", "--model", "edeconvnet", *TINY, "--out", str(tmp_path / "e")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "pixelwise ensemble" in err[0] and "--model fcn8s" in err[0]
    assert main(["train", "--model", "fcn32s", *TINY, "--lr", "fast", "--out", str(tmp_path / "b")]) == 2
    assert "--lr must be float" in capsys.readouterr().err
    assert main(["train", "--stages", "fcn32s:crops", *TINY, "--out", str(tmp_path / "c")]) == 2
    assert "valid: whole, objects, proposals" in capsys.readouterr().err


def test_deconvnet_objects_stage_and_eval_modes(tmp_path, capsys):
    out = tmp_path / "dec"
    assert main(["train", "--model", "deconvnet", "--sampling", "objects", "--crop-size", "224", "--width", "0.03125",
                 "--data", "size=32", "--train-limit", "2", "--val-limit", "2", "--batch-size", "2", "--steps", "1",
                 "--bn-recalib-batches", "2", "--no-progress", "--threads", "1", "--out", str(out)]) == 0
    assert "recomputed over 2 batches" in capsys.readouterr().err
    assert main(["train", "--model", "deconvnet", "--sampling", "objects", "--crop-size", "224", "--width", "0.03125",
                 "--data", "size=32", "--train-limit", "2", "--val-split", "", "--batch-size", "1", "--steps", "1",
                 "--no-progress", "--out", str(tmp_path / "b1")]) == 2
    assert "--batch-size 2 or more" in capsys.readouterr().err
    bn = torch.load(out / "last.pt", weights_only=True)["state_dict"]["backbone.conv1_1_bn.num_batches_tracked"]
    assert int(bn) == 2
    for mode in ("whole", "proposals"):
        ev = tmp_path / f"ev-{mode}"
        assert main(["eval", "-c", str(out / "last.pt"), "--limit", "2", "--mode", mode, "--proposals", "sliding",
                     "--out", str(ev), "--no-progress"]) == 0
        results = json.loads((ev / "results.json").read_text())
        assert results["mode"] == mode and results["images"] == 2 and 0 <= results["mean_iu"] <= 1
        if mode == "proposals":  # 32-px images: the paper's 112-px minimum drops every box, and eval says so
            assert results["mean_boxes"] == 0
            assert "no proposal survived the box rules" in capsys.readouterr().err
    ev = tmp_path / "ev-gt"
    assert main(["eval", "-c", str(out / "last.pt"), "--limit", "2", "--mode", "proposals", "--proposals", "gt",
                 "--uncovered", "background", "--top-k", "3", "--min-box-frac", "0.15", "--out", str(ev),
                 "--no-progress"]) == 0
    results = json.loads((ev / "results.json").read_text())
    assert (results["proposals"], results["uncovered"]) == ("gt", "background")
    assert (results["top_k"], results["min_box_frac"]) == (3, 0.15)
    assert results["mean_boxes"] > 0 and "no proposal survived" not in capsys.readouterr().err


def test_eval_uncovered_choices_are_the_pipelines():
    from pixelwise.cli.options import AGGREGATION_CHOICES, PAD_CHOICES, UNCOVERED_CHOICES
    from pixelwise.inference.aggregate import AGGREGATIONS, PAD_COLOURS
    from pixelwise.inference.options import UNCOVERED

    assert UNCOVERED_CHOICES == UNCOVERED
    assert AGGREGATION_CHOICES == AGGREGATIONS
    assert PAD_CHOICES == PAD_COLOURS
