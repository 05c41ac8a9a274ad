"""Every command that writes: an output path that cannot be written is one error line (exit 2)
naming the path, found before the long work; progress bars only on a terminal."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import pixelwise
from pixelwise.checkpoint import make_checkpoint, save_checkpoint
from pixelwise.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "weights"))
from weights_fixtures import tv_state  # noqa: E402

WIDTH = 1 / 32


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """Inputs for the commands: tiny FCN-8s and DeconvNet checkpoints, a VGG16 state dict, an image."""
    d = tmp_path_factory.mktemp("inputs")
    for name in ("fcn8s", "deconvnet"):
        model = pixelwise.create_model(name, num_classes=3, width=WIDTH, min_channels=1)
        save_checkpoint(d / f"{name}.pt", make_checkpoint(model))
    torch.save(tv_state(0.0625, bn=False), d / "vgg16.pth")
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(d / "img.png")
    return d


def _commands(f: Path, out: str) -> dict[str, list[str]]:
    """argv per command, each writing to ``out``."""
    return {
        "export": ["export", "--checkpoint", str(f / "fcn8s.pt"), "-o", out, "--quiet"],
        "convert": ["convert", str(f / "vgg16.pth"), "--arch", "fcn32s", "--num-classes", "3", "-o", out, "--quiet"],
        "ensemble": ["ensemble", "--fcn", str(f / "fcn8s.pt"), "--deconvnet", str(f / "deconvnet.pt"), "-o", out],
        "predict": ["predict", "--checkpoint", str(f / "fcn8s.pt"), str(f / "img.png"), "--out", out],
        "compare": ["compare", str(f / "img.png"), "--checkpoints", f"a={f / 'fcn8s.pt'}", "-o", out],
        "train": ["train", "--model", "fcn32s", "--width", str(WIDTH), "--steps", "1", "--out", out],
        "eval": ["eval", "--checkpoint", str(f / "fcn8s.pt"), "--out", out],
        "pretrain": ["pretrain", "--out", out],
        "demo": ["demo", "--quick", "--out", out],
        "reproduce": ["reproduce", "--quick", "--out", out],
        "bench": ["bench", "--quick", "--output", out],
    }


COMMANDS = list(_commands(Path("."), "x"))


def _one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith(f"pixelwise {command}: error: cannot write "), err[0]
    return err[0]


@pytest.mark.parametrize("command", COMMANDS)
def test_output_below_a_file(files, tmp_path, capsys, command):
    (tmp_path / "notes.txt").write_text("not a folder")
    out = tmp_path / "notes.txt" / "result"
    assert main(_commands(files, str(out))[command]) == 2
    line = _one_error_line(capsys, command)
    assert line.endswith(f"cannot write {out}: {tmp_path / 'notes.txt'} is not a directory")
    assert (tmp_path / "notes.txt").read_text() == "not a folder"


@pytest.mark.parametrize("command", ["export", "convert", "ensemble", "compare", "bench"])
def test_file_output_that_is_a_folder(files, tmp_path, capsys, command):
    assert main(_commands(files, str(tmp_path))[command]) == 2
    assert _one_error_line(capsys, command).endswith(f"cannot write {tmp_path}: it is a directory")


@pytest.mark.parametrize("command", ["predict", "train", "eval", "demo"])
def test_folder_output_that_is_a_file(files, tmp_path, capsys, command):
    (tmp_path / "taken").write_text("x")
    assert main(_commands(files, str(tmp_path / "taken"))[command]) == 2
    assert _one_error_line(capsys, command).endswith(f"cannot write {tmp_path / 'taken'}: it is not a directory")


@pytest.mark.skipif(not sys.platform.startswith("linux") or not os.path.isdir("/proc"), reason="needs Linux /proc")
@pytest.mark.parametrize("command", ["export", "convert", "predict", "train"])
def test_output_in_a_system_folder(files, capsys, command):
    # nobody, root included, can create files in /proc
    assert main(_commands(files, "/proc/pixelwise-test-out")[command]) == 2
    assert "cannot write /proc/pixelwise-test-out: " in _one_error_line(capsys, command)


def test_progress_bar_only_on_a_terminal(files, tmp_path):
    """`convert` (without --quiet) piped to a file or pipe writes no progress bar into it."""
    out = tmp_path / "ckpt.pt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(pixelwise.__file__).parents[1]),
                                                                       os.environ.get("PYTHONPATH")]))}
    proc = subprocess.run(
        [sys.executable, "-m", "pixelwise", "convert", str(files / "vgg16.pth"), "--arch", "fcn32s",
         "--num-classes", "3", "-o", str(out)],
        capture_output=True, text=True, env=env, timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and "wrote" in proc.stdout
    assert "%|" not in proc.stderr and "convert:" not in proc.stderr and "\r" not in proc.stderr
