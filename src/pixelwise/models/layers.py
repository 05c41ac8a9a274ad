"""Small building blocks shared by the models: bilinear kernels, crops, max-unpooling, geometry bookkeeping."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

import torch
import torch.nn.functional as F
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


def max_unpool2d(
    input: torch.Tensor,
    indices: torch.Tensor,
    kernel_size,
    stride=None,
    padding=0,
    output_size=None,
) -> torch.Tensor:
    """Return ``F.max_unpool2d(input, indices, ...)``: ``(N, C, H_out, W_out)`` (DeconvNet's unpooling).

    Eager (and compiled) runs call torch's kernel. While ``torch.onnx.export`` traces the model
    (either exporter) the same result is computed by :func:`scatter_max_unpool2d`: tracing
    ``F.max_unpool2d`` fails in current torch (its Python size check compares traced sizes), and
    ONNX ``MaxUnpool`` wants indices over the whole tensor where torch's are per plane. The choice
    is made here, per call, so nothing process-wide is swapped (``serve`` runs requests on threads
    while a run may be exporting an engine).
    """
    if _onnx_tracing():
        return scatter_max_unpool2d(input, indices, kernel_size, stride, padding, output_size)
    return F.max_unpool2d(input, indices, kernel_size, stride, padding, output_size)


def _onnx_tracing() -> bool:
    """Whether this call is being traced by an ONNX exporter: TorchScript's (``jit.is_tracing``,
    a per-thread state) or dynamo's (``torch.export`` underneath). Checks tracing first, so that an
    eager forward never imports ``torch.onnx``."""
    return (torch.jit.is_tracing() or torch.compiler.is_compiling()) and torch.onnx.is_in_onnx_export()


def scatter_max_unpool2d(
    input: torch.Tensor,
    indices: torch.Tensor,
    kernel_size,
    stride=None,
    padding=0,
    output_size=None,
) -> torch.Tensor:
    """Same result as ``F.max_unpool2d`` for ``(N, C, h, w)`` input and per-plane indices,
    written as a scatter so that it traces and exports (``ScatterElements``) with dynamic sizes.
    Returns ``(N, C, H_out, W_out)``."""
    k = _pair(kernel_size)
    s = _pair(stride if stride is not None else kernel_size)
    p = _pair(padding)
    n, c, h, w = input.shape
    if output_size is None:
        out_h = (h - 1) * s[0] + k[0] - 2 * p[0]
        out_w = (w - 1) * s[1] + k[1] - 2 * p[1]
    else:
        out_h, out_w = output_size[-2], output_size[-1]
    flat = input.new_zeros((n, c, out_h * out_w))
    flat = flat.scatter(2, indices.flatten(2), input.flatten(2))
    return flat.reshape(n, c, out_h, out_w)


def _pair(v) -> tuple[int, int]:
    return (v, v) if isinstance(v, int) else (v[0], v[1])


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
