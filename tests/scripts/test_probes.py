"""The diagnostic scripts cited in docs/reproduce.md run end to end in a tiny configuration."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


def run_script(name: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(SCRIPTS / name), *args], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.mark.parametrize("model", ["deconvnet", "fcn8s"])
def test_overfit_probe_reports_accuracy_per_step(model: str) -> None:
    out = run_script("overfit_probe.py", "--model", model, "--width", "0.03125", "--crops", "2",
                     "--input-size", "96", "--steps", "2", "--every", "1", "--threads", "1")
    accuracies = [float(a) for a in re.findall(r"pixel acc\s+([\d.]+) %", out)]
    assert len(accuracies) == 3  # steps 0, 1, 2
    assert all(0.0 <= a <= 100.0 for a in accuracies)


def test_crop_probe_scores_held_out_crops() -> None:
    out = run_script("crop_probe.py", "--model", "deconvnet", "--width", "0.03125", "--min-channels", "4",
                     "--input-size", "64", "--scene-size", "48", "--scenes", "8", "--val-crops", "4",
                     "--batch", "2", "--steps", "2", "--every", "1", "--threads", "1", "--binary", "--bn-modes",
                     "--deep-supervision", "1")
    assert "2 classes" in out and "deep supervision 1" in out
    rows = re.findall(r"val pixel acc\s+([\d.]+) %\s+mean IU\s+([\d.]+) %", out)
    assert len(rows) == 2
    assert all(0.0 <= float(acc) <= 100.0 and 0.0 <= float(iu) <= 100.0 for acc, iu in rows)
    # --bn-modes adds four accuracies per report: val/train x running/batch statistics
    assert len(re.findall(r"(?:val|train) (?:running|batch)-BN acc [\d.]+", out)) == 8
    assert "final per-class IU" in out


def test_crop_probe_starts_from_a_pretrained_backbone() -> None:
    import os

    env_cache = os.environ.get("PIXELWISE_CACHE")
    assert env_cache  # the tests' private cache (conftest), inherited by the script
    out = run_script("crop_probe.py", "--model", "fcn8s", "--width", "0.03125", "--min-channels", "4",
                     "--classes", "4", "--scene-size", "48", "--scenes", "8", "--val-crops", "4", "--batch", "2",
                     "--steps", "1", "--every", "1", "--threads", "1", "--pretrain-steps", "2")
    assert "backbone held-out object accuracy" in out and "vgg16_bn.pth" in out


def test_world_stats_prints_one_row_per_world_and_class_count() -> None:
    out = run_script("world_stats.py", "--classes", "4", "--scenes", "3", "--size", "48", "--worlds", "scenes", "objects")
    rows = [line for line in out.splitlines() if line.startswith("| scenes") or line.startswith("| objects")]
    assert len(rows) == 2 and "objects / image" in out

