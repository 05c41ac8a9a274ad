"""`--tensorboard`: scalars, the per-class IU table and prediction images, read back from the event files."""

import shutil
import sys

import pytest

from pixelwise.cli import main
from pixelwise.train import fit, resolve_config
from pixelwise.train.runlog import read_log

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402

TINY = {"dataset": "synthetic", "data_options": {"size": 32}, "width": 0.03125, "train_limit": 4,
        "val_limit": 3, "batch_size": 2, "progress": False, "threads": 1, "log_every": 1,
        "convention": "torchvision_rgb", "model": "fcn32s", "pad100": False, "tensorboard": True}


def events(out):
    acc = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0, "images": 0, "tensors": 0})
    acc.Reload()
    return acc


def steps(acc, tag):
    return [e.step for e in acc.Scalars(tag)]


def test_tensorboard_run_writes_scalars_table_and_images(tmp_path):
    out = tmp_path / "tb"
    result = fit(resolve_config(dict(TINY, steps=4, eval_every=2, out=str(out))))
    assert result.status == "finished"
    acc = events(out)
    tags = acc.Tags()
    for tag in ("train/loss", "train/lr", "train/images_per_s"):
        assert steps(acc, tag) == [1, 2, 3, 4], tag
    for tag in ("val/mean_iu", "val/pixel_acc", "val/fw_iu", "val/top_class_share", "iu/background"):
        assert steps(acc, tag) == [2, 4], tag
    assert any(t.startswith("val/size_buckets/") for t in tags["scalars"])
    log = read_log(out / "log.jsonl")
    last_val = [r for r in log if r["type"] == "val"][-1]
    assert acc.Scalars("val/mean_iu")[-1].value == pytest.approx(last_val["mean_iu"], rel=1e-6)
    assert [e.value for e in acc.Scalars("train/loss")] == pytest.approx(
        [r["loss"] for r in log if r["type"] == "train"], rel=1e-6)

    # the per-class IU table: markdown text at every validation
    assert "val/per_class_iu/text_summary" in tags["tensors"]  # torch adds /text_summary
    texts = acc.Tensors("val/per_class_iu/text_summary")
    assert [t.step for t in texts] == [2, 4]
    table = texts[-1].tensor_proto.string_val[0].decode()
    assert "| mean IU |" in table and "| 0 | background |" in table

    # three fixed validation images: image | truth | prediction side by side
    assert sorted(t for t in tags["images"]) == ["predictions/0", "predictions/1", "predictions/2"]
    shots = acc.Images("predictions/0")
    assert [s.step for s in shots] == [2, 4]
    assert (shots[0].width, shots[0].height) == (3 * 32 + 8, 32)
    assert shots[0].encoded_image_string[:8] == b"\x89PNG\r\n\x1a\n"

    # a new run in the same folder replaces the old events (as it empties log.jsonl)
    fit(resolve_config(dict(TINY, steps=2, val_split="", out=str(out))))
    assert len(list((out / "tensorboard").glob("events.out.tfevents.*"))) == 1
    assert steps(events(out), "train/loss") == [1, 2]


def test_resumed_run_continues_the_same_curves(tmp_path):
    """Resuming from step 2 of a run that reached step 4: the events after step 2 are replaced,
    not doubled, and the new ones go into the same folder."""
    out = tmp_path / "res"

    def keep_step_2(step, loss):
        if step == 3:  # last.pt still holds step 2 here
            shutil.copy(out / "last.pt", out / "at2.pt")

    fit(resolve_config(dict(TINY, steps=4, eval_every=2, out=str(out))), on_step=keep_step_2)
    assert main(["train", "--resume", str(out / "at2.pt")]) == 0
    files = sorted((out / "tensorboard").glob("events.out.tfevents.*"), key=lambda f: f.stat().st_mtime)
    assert len(files) == 2
    # the resumed run's file starts by telling TensorBoard to drop the old events from step 3 on
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    starts = [e.step for e in EventFileLoader(str(files[1])).Load() if e.HasField("session_log")]
    assert starts == [3]
    acc = events(out)
    assert steps(acc, "train/loss") == [1, 2, 3, 4]
    assert steps(acc, "val/mean_iu") == [2, 4]
    assert [s.step for s in acc.Images("predictions/0")] == [2, 4]
    log = read_log(out / "log.jsonl")
    assert [e.value for e in acc.Scalars("train/loss")] == pytest.approx(
        [r["loss"] for r in log if r["type"] == "train"], rel=1e-6)


def test_missing_tensorboard_stops_early_with_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboard", None)  # import tensorboard -> ImportError
    out = tmp_path / "none"
    assert main(["train", "--model", "fcn32s", "--width", "0.03125", "--data", "size=32", "--steps", "1",
                 "--no-progress", "--tensorboard", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "pixelwise train: error: --tensorboard needs the tensorboard package: pip install 'pixelwise[tb]'"
    assert not out.exists()
