"""Training steps learn, runs resume exactly, bad checkpoints and diverging losses stop clearly."""

import os
import signal

import pytest
import torch

import pixelwise
from pixelwise.cli import main
from pixelwise.data import build_dataset
from pixelwise.data.dataset import SegmentationDataset
from pixelwise.errors import CheckpointError
from pixelwise.train import fit, resolve_config, train_steps
from pixelwise.train.checkpointing import load_training_checkpoint
from pixelwise.train.data import ShardedSampler
from pixelwise.train.deconvnet_sampling import ObjectCrop
from pixelwise.train.runlog import read_log
from pixelwise.train.trainer import TrainingDiverged

TINY = {"dataset": "synthetic", "data_options": {"size": 32}, "width": 0.03125, "train_limit": 5,
        "val_limit": 3, "batch_size": 2, "progress": False, "threads": 1, "log_every": 1,
        "convention": "torchvision_rgb"}


def batches_of(dataset, n, size):
    items = [dataset[i] for i in range(n)]
    return [(torch.stack([a[0] for a in items[i : i + size]]), torch.stack([a[1] for a in items[i : i + size]]))
            for i in range(0, n, size)]


def test_fcn_steps_lower_the_loss():
    base = build_dataset("synthetic", split="train", size=32, length=4)
    batches = batches_of(SegmentationDataset(base, convention="torchvision_rgb"), 4, 4)
    model = pixelwise.create_model("fcn8s", num_classes=8, width=0.0625, pad100=False, dropout=0.0)
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-3)
    losses = train_steps(model, opt, batches, 25)
    assert losses[-1] < 0.7 * losses[0]


def test_deconvnet_steps_lower_the_loss():
    base = build_dataset("synthetic", split="train", size=64, length=4)
    ds = SegmentationDataset(base, ObjectCrop(224, 232))
    batches = batches_of(ds, 4, 2)
    model = pixelwise.create_model("deconvnet", num_classes=8, width=0.03125)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = train_steps(model, opt, batches, 8, iter_size=2)
    assert losses[-1] < 0.8 * losses[0]


def test_sharded_sampler_resumes_and_shards():
    s = ShardedSampler(10, shuffle=True, seed=1)
    s.set_epoch(3)
    full = list(s)
    s.set_start(4)
    assert list(s) == full[4:]
    shards = [list(ShardedSampler(10, shuffle=True, seed=1, rank=r, world_size=3)) for r in range(3)]
    assert all(len(x) == 3 for x in shards) and len(set(sum(shards, []))) == 9
    ev = [list(ShardedSampler(10, shuffle=False, rank=r, world_size=3, drop_uneven=False)) for r in range(3)]
    assert sorted(sum(ev, [])) == list(range(10))


def train_losses(out):
    return [(r["step"], r["loss"]) for r in read_log(out / "log.jsonl") if r["type"] == "train"]


def test_interrupted_run_resumes_exactly(tmp_path):
    """Ctrl-C at step 3 saves last.pt; --resume continues with the same per-step losses (dropout,
    momentum, poly lr, data order mid-epoch) as an uninterrupted run."""
    common = dict(TINY, model="fcn32s", pad100=False, steps=6, lr=0.01, momentum=0.9, lr_policy="poly",
                  hflip=True, save_every=2)
    full = fit(resolve_config(dict(common, out=str(tmp_path / "full"))))
    assert full.status == "finished" and full.step == 6

    def ctrl_c_at_3(step, loss):
        if step == 3:
            os.kill(os.getpid(), signal.SIGINT)

    first = fit(resolve_config(dict(common, out=str(tmp_path / "cut"))), on_step=ctrl_c_at_3)
    assert first.status == "interrupted" and first.step == 3
    assert load_training_checkpoint(tmp_path / "cut" / "last.pt")["training"]["progress"]["step"] == 3
    assert main(["train", "--resume", str(tmp_path / "cut" / "last.pt")]) == 0
    expected, got = train_losses(tmp_path / "full"), train_losses(tmp_path / "cut")
    assert [s for s, _ in got] == [1, 2, 3, 4, 5, 6]
    for (_, a), (_, b) in zip(expected, got):
        assert a == pytest.approx(b, abs=1e-6)
    a = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["state_dict"]
    b = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["state_dict"]
    assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_corrupt_and_truncated_checkpoints_give_one_line_errors(tmp_path, capsys):
    fit(resolve_config(dict(TINY, model="fcn32s", pad100=False, steps=1, out=str(tmp_path / "r"))))
    good = (tmp_path / "r" / "last.pt").read_bytes()
    (tmp_path / "trunc.pt").write_bytes(good[: len(good) // 2])
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint at all")
    capsys.readouterr()
    for name in ("trunc.pt", "junk.pt", "missing.pt"):
        with pytest.raises(CheckpointError):
            load_training_checkpoint(tmp_path / name)
        assert main(["train", "--resume", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and name in err[0] and "Traceback" not in err[0]
    assert main(["eval", "--checkpoint", str(tmp_path / "trunc.pt")]) == 2
    assert "truncated or corrupt" in capsys.readouterr().err


def test_nan_loss_stops_with_advice(tmp_path):
    cfg = resolve_config(dict(TINY, model="fcn32s", pad100=False, steps=30, lr=1e3, momentum=0.99,
                              loss_reduction="sum", out=str(tmp_path / "nan")))
    with pytest.raises(TrainingDiverged, match=r"loss became (nan|inf).*--recipe heavy"):
        fit(cfg)
    events = [r["event"] for r in read_log(tmp_path / "nan" / "log.jsonl") if r["type"] == "event"]
    assert "diverged" in events and "warning" in events


@pytest.mark.parametrize("native", [False, True])
def test_bf16_training_says_when_the_cpu_emulates_it(tmp_path, monkeypatch, capsys, native):
    import pixelwise.train.run as run_module

    monkeypatch.setattr(run_module, "cpu_supports_bf16", lambda: native)
    cfg = resolve_config(dict(TINY, model="fcn32s", pad100=False, steps=1, precision="bf16",
                              out=str(tmp_path / f"bf16-{native}")))
    assert fit(cfg).status == "finished"
    assert ("no native bf16" in capsys.readouterr().err) is not native
