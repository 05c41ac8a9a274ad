"""Tiny models and images for the inference tests (width 1/32, 8 classes, images <= 128 px)."""

import numpy as np
import pytest
import torch

import pixelwise

WIDTH = 0.03125
CLASSES = 4


def randomise_scores(model: torch.nn.Module, std: float = 0.3) -> torch.nn.Module:
    """FCN score layers start at zero (all-background output); give them random weights so the
    outputs differ from pixel to pixel."""
    for name in ("score_fr", "score_pool4", "score_pool3"):
        layer = getattr(model, name, None)
        if layer is not None:
            torch.nn.init.normal_(layer.weight, std=std)
            torch.nn.init.normal_(layer.bias, std=std)
    return model


@pytest.fixture
def fcn8s():
    return randomise_scores(pixelwise.create_model("fcn8s", num_classes=CLASSES, width=WIDTH)).eval()


def randomise_decoder(model: torch.nn.Module) -> torch.nn.Module:
    """DeconvNet's decoder starts with std 0.01 weights (near-uniform output); make it lively."""
    for m in model.modules():
        if isinstance(m, torch.nn.ConvTranspose2d):
            torch.nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
    torch.nn.init.normal_(model.seg_score.weight, std=2.0)
    return model


@pytest.fixture
def deconvnet():
    return randomise_decoder(pixelwise.create_model("deconvnet", num_classes=CLASSES, width=WIDTH)).eval()


@pytest.fixture
def edeconvnet():
    model = pixelwise.create_model("edeconvnet", num_classes=CLASSES, width=WIDTH).eval()
    randomise_scores(model.fcn)
    randomise_decoder(model.deconvnet)
    return model


@pytest.fixture
def image():
    """A 96 x 112 RGB image with some structure (a bright square on a gradient)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:96, 0:112]
    img = np.stack([xx * 2, yy * 2, (xx + yy)], -1).astype(np.float64)
    img[30:70, 40:90] = [250, 40, 40]
    img += rng.normal(0, 8, img.shape)
    return np.clip(img, 0, 255).astype(np.uint8)


class PointwiseNet(torch.nn.Module):
    """A 1x1-convolution 'FCN': receptive field of one pixel, so any tiling is exact."""

    def __init__(self, num_classes: int = CLASSES):
        super().__init__()
        self.num_classes = num_classes
        self.conv = torch.nn.Conv2d(3, num_classes, 1)

    def forward(self, x):
        return self.conv(torch.tanh(x / 50.0)) * 3


@pytest.fixture
def pointwise():
    return PointwiseNet().eval()
