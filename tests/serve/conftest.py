"""Tiny untrained checkpoints and images for the `pixelwise serve` tests."""

import numpy as np
import pytest
import torch

from pixelwise.checkpoint import make_checkpoint, save_checkpoint
from pixelwise.data import build_dataset, write_image

NAMES = ["background", "disc", "square", "triangle"]


@pytest.fixture(scope="session")
def serve_ckpts(tmp_path_factory, tiny_model):
    """``{"fcn8s": path, "deconvnet": path}``: the DeconvNet is the demo's kind (96-px proposals,
    deep-supervision scorers), so an EDeconvNet of the pair is built as from the demo's models."""
    root = tmp_path_factory.mktemp("serve-ckpts")
    torch.manual_seed(0)
    return {
        "fcn8s": save_checkpoint(root / "fcn8s.pt", make_checkpoint(tiny_model("fcn8s"), class_names=NAMES)),
        "deconvnet": save_checkpoint(
            root / "deconvnet.pt",
            make_checkpoint(tiny_model("deconvnet", input_size=96, deep_supervision=True), class_names=NAMES),
        ),
    }


@pytest.fixture(scope="session")
def scene_png(tmp_path_factory):
    """A 96x96 built-in scene saved as PNG; returns ``(path, image)``."""
    image = np.asarray(build_dataset("synthetic", split="val", length=1, size=96, num_classes=4)[0]["image"])
    path = tmp_path_factory.mktemp("serve-images") / "scene.png"
    write_image(path, image)
    return path, image
