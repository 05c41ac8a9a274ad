"""Two CPU processes under torchrun (gloo) train and evaluate like one process on the same data."""

import os
import subprocess
import sys

import pytest

from pixelwise.train import fit, resolve_config
from pixelwise.train.evaluation import run_eval
from pixelwise.train.runlog import read_log

OPTIONS = {"model": "fcn32s", "width": 0.03125, "pad100": False, "dropout": 0.0, "dataset": "synthetic",
           "data_options": {"size": 32}, "train_limit": 8, "val_limit": 5, "steps": 3, "lr": 0.01,
           "convention": "torchvision_rgb", "log_every": 1, "device": "cpu", "progress": False}


def flags(options):
    out = []
    for k, v in options.items():
        flag = "--" + k.replace("_", "-")
        if isinstance(v, bool):
            out.append(flag if v else "--no-" + k.replace("_", "-"))
        elif isinstance(v, dict):
            out += [x for key, val in v.items() for x in ("--data", f"{key}={val}")]
        else:
            out += [flag, str(v)]
    return out


@pytest.mark.slow
def test_two_processes_match_one(tmp_path):
    ddp_out = tmp_path / "ddp"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "pixelwise",
           "train", *flags(OPTIONS), "--batch-size", "2", "--threads", "1", "--out", str(ddp_out)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]

    # one process, the same 4 images per step (2 per rank x 2 ranks), mean loss over the same pixels
    single = fit(resolve_config({**OPTIONS, "batch_size": 4, "threads": 1, "out": str(tmp_path / "one")}))
    log = read_log(ddp_out / "log.jsonl")
    ddp_losses = [r["loss"] for r in log if r["type"] == "train"]
    assert len(ddp_losses) == 3  # rank 0 alone writes the log
    assert sum(1 for r in log if r.get("event") == "start") == 1
    assert ddp_losses == pytest.approx([loss for _, loss in single.losses], rel=1e-4)

    # the 2-process validation (5 images sharded 3 + 2, confusion matrices all-reduced) equals a
    # single-process evaluation of the same checkpoint on the same images
    ddp_val = [r for r in log if r["type"] == "val"][-1]
    one = run_eval(str(ddp_out / "last.pt"), limit=5, out=str(tmp_path / "ev"), progress=False, device="cpu")
    for key in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu"):
        assert ddp_val[key] == one[key]
    assert one["images"] == 5
