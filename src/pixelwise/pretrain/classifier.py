"""VGG16 as an object classifier (the ImageNet network), and its export in torchvision's layout."""

from __future__ import annotations

import torch
from torch import nn

from pixelwise.models.vgg import MIN_CHANNELS, VGG16
from pixelwise.weights.torchvision_vgg import CLASSIFIER, FC8, torchvision_feature_layout


class VGGClassifier(nn.Module):
    """VGG16 (conv1_1 .. conv5_3, batch norm optional) with fc6 / fc7 / fc8 as in VGG.

    ``forward(x)``: ``(N, 3, S, S)`` crops, ``S = crop_size`` -> ``(N, num_classes)`` logits. fc6
    is a ``S / 32`` square convolution over the whole pool5 (7x7 at VGG's 224), fc7 a 1x1 one,
    each followed by ReLU and dropout; fc8 scores the classes. As in torchvision's VGG16-BN, only
    the convolutions have batch norm, so the network exports to that layout exactly
    (:func:`torchvision_state_dict`).
    """

    def __init__(self, *, num_classes: int, width: float = 1.0, min_channels: int = MIN_CHANNELS,
                 crop_size: int = 224, batch_norm: bool = True, dropout: float = 0.5) -> None:
        super().__init__()
        if crop_size % 32 or crop_size < 32:
            raise ValueError(f"crop_size must be a multiple of 32 (VGG: 224), got {crop_size}")
        self.crop_size = crop_size
        self.backbone = VGG16(width=width, min_channels=min_channels, batch_norm=batch_norm, fc_batch_norm=False,
                              pad100=False, fc6_kernel=crop_size // 32, dropout=dropout)
        self.fc8 = nn.Linear(self.backbone.taps["fc7"].channels, num_classes)
        nn.init.normal_(self.fc8.weight, std=0.01)
        nn.init.zeros_(self.fc8.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``(N, num_classes)`` logits for ``(N, 3, crop_size, crop_size)`` crops."""
        return self.fc8(self.backbone(x)["fc7"].flatten(1))


def torchvision_state_dict(model: VGGClassifier) -> dict[str, torch.Tensor]:
    """Return ``model``'s weights under torchvision's VGG16(-BN) names: ``features.N.*`` for the
    convolutions (and their batch norms), ``classifier.0`` / ``classifier.3`` / ``classifier.6``
    for fc6 / fc7 / fc8 as fully connected ``(out, in)`` weights (fc6's ``in`` is pool5 flattened in
    ``(C, H, W)`` order, as torchvision and Caffe store it)."""
    backbone = model.backbone
    state = backbone.state_dict()
    out: dict[str, torch.Tensor] = {}
    for tv_prefix, module in torchvision_feature_layout(backbone.batch_norm):
        for key, value in state.items():
            if key.startswith(f"{module}."):
                out[f"{tv_prefix}.{key[len(module) + 1:]}"] = value.detach().clone()
    for name, tv_prefix in CLASSIFIER.items():
        conv = getattr(backbone, name)
        out[f"{tv_prefix}.weight"] = conv.weight.detach().reshape(conv.out_channels, -1).clone()
        out[f"{tv_prefix}.bias"] = conv.bias.detach().clone()
    out[f"{FC8}.weight"] = model.fc8.weight.detach().clone()
    out[f"{FC8}.bias"] = model.fc8.bias.detach().clone()
    return out
