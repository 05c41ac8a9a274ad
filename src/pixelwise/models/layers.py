"""Small building blocks shared by the models: bilinear kernels, crops, geometry bookkeeping."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import torch
from torch import nn


def bilinear_kernel(in_channels: int, out_channels: int, kernel_size: int) -> torch.Tensor:
    """Return a ``(in_channels, out_channels, k, k)`` transposed-conv weight doing bilinear upsampling.

    Channel ``c`` maps to channel ``c`` only (the FCN release's "surgery" initialisation); with
    ``kernel_size = 2 * factor`` and ``stride = factor`` it interpolates bilinearly.
    """
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    ramp = 1 - (torch.arange(kernel_size, dtype=torch.float64) - center).abs() / factor
    filt = (ramp[:, None] * ramp[None, :]).float()
    weight = torch.zeros(in_channels, out_channels, kernel_size, kernel_size)
    for c in range(min(in_channels, out_channels)):
        weight[c, c] = filt
    return weight


class BilinearUpsample(nn.ConvTranspose2d):
    """A backwards-strided convolution (no bias) initialised to bilinear interpolation.

    ``learnable=False`` freezes it (the FCN release); ``True`` lets it learn (the CVPR paper's 2x
    layers). Input ``(N, C, h, w)`` -> ``(N, C, (h - 1) * factor + 2 * factor, ...)``.
    """

    def __init__(self, channels: int, factor: int, *, learnable: bool = False) -> None:
        super().__init__(channels, channels, 2 * factor, stride=factor, bias=False)
        self.factor = factor
        with torch.no_grad():
            self.weight.copy_(bilinear_kernel(channels, channels, 2 * factor))
        self.weight.requires_grad_(learnable)


def crop(x: torch.Tensor, top: int, left: int, height: int, width: int) -> torch.Tensor:
    """Return ``x[..., top:top+height, left:left+width]`` (a Caffe ``Crop`` layer)."""
    return x[..., top : top + height, left : left + width]


@dataclass(frozen=True)
class Geometry:
    """Where a feature map's cells sit in input pixels: cell ``i`` is centred at ``stride * i + offset``.

    Exact fractions, so that crop offsets come out as exact integers (or fail loudly).
    """

    stride: Fraction = Fraction(1)
    offset: Fraction = Fraction(0)

    def conv(self, kernel: int, stride: int = 1, padding: int = 0) -> "Geometry":
        """Geometry after a convolution or pooling with this kernel, stride and padding."""
        return Geometry(
            self.stride * stride,
            self.offset + self.stride * (Fraction(kernel - 1, 2) - padding),
        )

    def deconv(self, kernel: int, stride: int = 1, padding: int = 0) -> "Geometry":
        """Geometry after a transposed convolution (the inverse mapping of :meth:`conv`)."""
        new_stride = self.stride / stride
        return Geometry(new_stride, self.offset + new_stride * (padding - Fraction(kernel - 1, 2)))


def overlap_crops(a: Geometry, b: Geometry) -> tuple[int, int, Geometry]:
    """Return ``(crop_a, crop_b, fused)``: the leading cells to drop from each map so they align.

    Both maps must have the same stride. The fused map starts where the later of the two starts.
    """
    if a.stride != b.stride:
        raise ValueError(f"cannot align maps with strides {a.stride} and {b.stride}")
    start = max(a.offset, b.offset)
    crop_a, crop_b = (start - a.offset) / a.stride, (start - b.offset) / b.stride
    if crop_a.denominator != 1 or crop_b.denominator != 1:
        raise ValueError(f"maps at offsets {a.offset} and {b.offset} do not align on a whole cell")
    return int(crop_a), int(crop_b), Geometry(a.stride, start)
