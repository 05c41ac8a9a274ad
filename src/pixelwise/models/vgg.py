"""The VGG16 backbone with Caffe layer names, optional batch norm, pad-100 and pool switches.

The layer table is data (``VGG16_STAGES``); the backbone derives from it each tap's channels and
geometry (stride and offset in input pixels), which the decoders use to place their crops.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.models.layers import Geometry

# (output channels, number of 3x3 convs) for conv1 .. conv5; each stage ends in a 2x2/2 max-pool
VGG16_STAGES: tuple[tuple[int, int], ...] = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
FC_CHANNELS = 4096
FC6_KERNEL = 7
MIN_CHANNELS = 16
"""The width floor: a width multiplier never takes a layer below this many channels (or below the
paper's count, if that is smaller). Unpooling ties DeconvNet's deconv2/deconv1 stages to the
channel counts of pool2/pool1, 16 and 8 at width 1/8; with 8 channels a class was lost where 16
and 32 kept every class (measured, docs/reproduce.md). Width 1.0 is unaffected (the smallest VGG16
layer has 64)."""


def scaled(channels: int, width: float, min_channels: int = 1) -> int:
    """Return ``channels * width`` rounded, but at least ``min(channels, min_channels)`` and 1
    (the width multiplier with its floor)."""
    return max(1, min(channels, min_channels), int(round(channels * width)))


@dataclass(frozen=True)
class TapInfo:
    """A named backbone output: its channel count and where its cells sit in the input."""

    channels: int
    geometry: Geometry

    @property
    def stride(self) -> int:
        """Total downsampling factor of this tap."""
        return int(self.geometry.stride)


class VGG16(nn.Module):
    """VGG16 convolution layers (+ fc6/fc7 as convolutions), returning named taps.

    ``forward(x)`` with ``x`` ``(N, 3, H, W)`` returns a dict with ``pool1`` .. ``pool5`` and,
    when ``fc=True``, ``fc7``; with ``return_indices=True`` also ``switches``: a list of
    ``(indices, input_size)`` per pool, for max-unpooling.

    Args:
        width: channel multiplier (1.0 = paper-exact VGG16).
        min_channels: the width floor (see :data:`MIN_CHANNELS`; 1 = a plain multiplier).
        batch_norm: batch norm after every conv (DeconvNet); modules named ``<conv>_bn``.
        fc_batch_norm: batch norm after fc6/fc7 too (default: as ``batch_norm``; DeconvNet has
            it, torchvision's VGG16-BN classifier does not).
        pad100: conv1_1 pads by 100 (FCN) instead of 1, so any input size yields a score map.
        fc: build fc6 (7x7 conv) and fc7 (1x1 conv).
        fc6_kernel: side of fc6's kernel: 7 (VGG16's 224-px classifier sees a 7x7 pool5); a
            classifier trained on smaller crops of side S has ``S / 32``.
        fc6_padding: padding of fc6 (0 = the papers' valid conv; ``fc6_kernel // 2`` keeps the map size).
        dropout: dropout probability after fc6 and fc7 (FCN: 0.5; DeconvNet: 0).
        return_indices: pools return switch indices (DeconvNet's unpooling).
    """

    def __init__(
        self,
        *,
        width: float = 1.0,
        min_channels: int = MIN_CHANNELS,
        batch_norm: bool = False,
        fc_batch_norm: bool | None = None,
        pad100: bool = True,
        fc: bool = True,
        fc6_kernel: int = FC6_KERNEL,
        fc6_padding: int = 0,
        dropout: float = 0.5,
        return_indices: bool = False,
    ) -> None:
        super().__init__()
        if fc6_kernel < 1:
            raise ValueError(f"fc6_kernel must be >= 1, got {fc6_kernel}")
        self.width = width
        self.min_channels = min_channels
        self.batch_norm = batch_norm
        self.pad100 = pad100
        self.return_indices = return_indices
        self.conv_names: list[list[str]] = []
        self.bn_names: dict[str, str] = {}  # conv -> the batch norm applied to its output
        taps: dict[str, TapInfo] = {}
        geo = Geometry()
        in_ch = 3
        for stage, (channels, repeats) in enumerate(VGG16_STAGES, start=1):
            out_ch = scaled(channels, width, min_channels)
            names = []
            for j in range(1, repeats + 1):
                name = f"conv{stage}_{j}"
                pad = 100 if (pad100 and stage == 1 and j == 1) else 1
                self.add_module(name, nn.Conv2d(in_ch, out_ch, 3, padding=pad))
                if batch_norm:
                    self.bn_names[name] = f"{name}_bn"
                    self.add_module(self.bn_names[name], nn.BatchNorm2d(out_ch))
                geo = geo.conv(3, 1, pad)
                names.append(name)
                in_ch = out_ch
            self.conv_names.append(names)
            self.add_module(
                f"pool{stage}",
                nn.MaxPool2d(2, 2, ceil_mode=True, return_indices=return_indices),
            )
            geo = geo.conv(2, 2, 0)
            taps[f"pool{stage}"] = TapInfo(out_ch, geo)
        self.fc = fc
        self.fc6_kernel = fc6_kernel
        self.fc6_padding = fc6_padding
        if fc:
            fc_ch = scaled(FC_CHANNELS, width, min_channels)
            self.fc6 = nn.Conv2d(in_ch, fc_ch, fc6_kernel, padding=fc6_padding)
            self.fc7 = nn.Conv2d(fc_ch, fc_ch, 1)
            self.fc_batch_norm = batch_norm if fc_batch_norm is None else fc_batch_norm
            if self.fc_batch_norm:
                self.bn_names.update(fc6="fc6_bn", fc7="fc7_bn")
                self.fc6_bn = nn.BatchNorm2d(fc_ch)
                self.fc7_bn = nn.BatchNorm2d(fc_ch)
            self.drop6 = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
            self.drop7 = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
            geo = geo.conv(fc6_kernel, 1, fc6_padding)
            taps["fc7"] = TapInfo(fc_ch, geo)
        self.taps: dict[str, TapInfo] = taps
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """He-normal conv weights, zero biases, unit BN (training from scratch; weights/ imports
        replace these with ImageNet weights)."""
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_in", nonlinearity="relu")
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    @property
    def conv_layers(self) -> tuple[str, ...]:
        """Every convolution, in order: ``conv1_1`` .. ``conv5_3`` and, with ``fc``, ``fc6``, ``fc7``."""
        return (*(n for names in self.conv_names for n in names), *(("fc6", "fc7") if self.fc else ()))

    @property
    def fc_layers(self) -> tuple[str, ...]:
        """The fc6 layer (a 7x7 kernel over a 7x7 pool5 at 224 pixels), if built."""
        return ("fc6",) if self.fc else ()

    def conv_bn_pairs(self) -> list[tuple[str, str]]:
        """Return ``[(conv, its batch norm), ...]`` in layer order (empty without batch norm)."""
        return [(conv, self.bn_names[conv]) for conv in self.conv_layers if conv in self.bn_names]

    def _conv_bn_relu(self, name: str, x: torch.Tensor) -> torch.Tensor:
        x = getattr(self, name)(x)
        if name in self.bn_names:
            x = getattr(self, self.bn_names[name])(x)
        return F.relu(x, inplace=True)

    def forward(self, x: torch.Tensor) -> dict:
        """Return the taps dict (see class docstring); every tap is ``(N, C_tap, h, w)``."""
        out: dict = {}
        switches = []
        for stage, names in enumerate(self.conv_names, start=1):
            for name in names:
                x = self._conv_bn_relu(name, x)
            pool = getattr(self, f"pool{stage}")
            if self.return_indices:
                size = x.shape[-2:]
                x, idx = pool(x)
                switches.append((idx, size))
            else:
                x = pool(x)
            out[f"pool{stage}"] = x
        if self.fc:
            x = self.drop6(self._conv_bn_relu("fc6", x))
            x = self.drop7(self._conv_bn_relu("fc7", x))
            out["fc7"] = x
        if self.return_indices:
            out["switches"] = switches
        return out
