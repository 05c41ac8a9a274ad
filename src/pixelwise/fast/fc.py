"""fc6 and deconv-fc6 as matrix products.

DeconvNet's fc6 is a 7x7 convolution applied to a 7x7 map (one output cell), and its mirror
``deconv_fc6`` a 7x7 transposed convolution of a 1x1 map. Each holds ~411 MB of weights and does a
matrix-vector product per proposal; oneDNN's convolution treats them as tiny-output convolutions
(reordering the 411 MB weight on every call) and is ~10x slower than a plain GEMM on the
flattened map. FCN's fc6 (a 7x7 conv on a 16x16 .. 22x22 map at 500x500) has the same problem at a
smaller scale: as im2col + one GEMM it runs about twice as fast.

The modules here keep the original parameters (same names, shared storage, same state_dict keys):

- :class:`MatmulConv2d`: exactly k x k map -> one GEMM on the flattened map; any other map ->
  im2col (``F.unfold``, in row bands of bounded memory) + GEMM. Outputs equal to float rounding.
- :class:`MatmulConvTranspose2d`: 1x1 map -> one GEMM; any other map -> the ordinary transposed
  convolution.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.fast.fold import replace_submodule
from pixelwise.models.base import SegmentationModel

# im2col is done in row bands of at most this many elements (32M = 128 MB in fp32)
BAND_ELEMENTS = 32 * 2**20


def _flat_weight(weight: torch.Tensor, rows: int) -> tuple[torch.Tensor, bool]:
    """Return ``(weight as (rows, -1) view, channels_last_order)`` without copying when possible.

    A channels_last weight (after ``model.to(memory_format=torch.channels_last)``) is flattened
    in (kh, kw, C) order, so the input must be flattened in the same order.
    """
    if weight.is_contiguous():
        return weight.view(rows, -1), False
    if weight.is_contiguous(memory_format=torch.channels_last):
        return weight.permute(0, 2, 3, 1).reshape(rows, -1), True  # a view: no copy
    return weight.reshape(rows, -1), False


def _sharing(conv: nn.Module, new: nn.Module) -> nn.Module:
    """Give ``new`` (built on the meta device) ``conv``'s weight, bias and train/eval mode; return it."""
    new.weight = conv.weight
    new.bias = conv.bias
    new.train(conv.training)
    return new


class MatmulConv2d(nn.Conv2d):
    """A ``Conv2d`` computed as GEMMs: ``(N, C, H, W)`` -> ``(N, out, H', W')``.

    ``kernel == map size`` (no padding): one GEMM on the flattened map -> ``(N, out, 1, 1)``.
    Other sizes: im2col + GEMM (stride 1, no dilation, no groups; else the ordinary convolution).
    Build with :meth:`from_conv` (shares the parameters of the given conv).
    """

    @classmethod
    def from_conv(cls, conv: nn.Conv2d) -> "MatmulConv2d":
        """Return a MatmulConv2d sharing ``conv``'s weight and bias (no copy)."""
        return _sharing(conv, cls(
            conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
            padding=conv.padding, dilation=conv.dilation, groups=conv.groups,
            bias=conv.bias is not None, padding_mode=conv.padding_mode, device="meta",
        ))

    def _matmul_ok(self, x: torch.Tensor) -> bool:
        return (
            x.dim() == 4
            and tuple(x.shape[-2:]) == tuple(self.kernel_size)
            and self.padding in ((0, 0), "valid")
            and self.groups == 1
            and self.dilation == (1, 1)
        )

    def _im2col_ok(self, x: torch.Tensor) -> bool:
        return (
            x.dim() == 4
            and isinstance(self.padding, tuple)
            and self.padding_mode == "zeros"
            and self.stride == (1, 1)
            and self.dilation == (1, 1)
            and self.groups == 1
            and self.weight.is_contiguous()
            and x.shape[-2] + 2 * self.padding[0] >= self.kernel_size[0]
            and x.shape[-1] + 2 * self.padding[1] >= self.kernel_size[1]
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(N, C, H, W)`` -> ``(N, out, H', W')``; a GEMM when ``H, W`` equal the kernel."""
        if self._matmul_ok(x):
            w, cl_order = _flat_weight(self.weight, self.out_channels)
            flat = x.permute(0, 2, 3, 1) if cl_order else x
            y = F.linear(flat.reshape(x.shape[0], -1), w, self.bias)
            return y.view(x.shape[0], self.out_channels, 1, 1)
        if not self._im2col_ok(x):
            return super().forward(x)
        return self._im2col_gemm(x)

    def _im2col_gemm(self, x: torch.Tensor) -> torch.Tensor:
        (kh, kw), (ph, pw) = self.kernel_size, self.padding
        if ph or pw:
            x = F.pad(x, (pw, pw, ph, ph))
        n, c, h, w = x.shape
        ho, wo = h - kh + 1, w - kw + 1
        weight = self.weight.view(self.out_channels, -1)
        # keep the caller's layout (channels_last engines) for the layers that follow
        channels_last = x.is_contiguous(memory_format=torch.channels_last) and not x.is_contiguous()
        fmt = torch.channels_last if channels_last else torch.contiguous_format
        out = torch.empty((n, self.out_channels, ho, wo), dtype=x.dtype, device=x.device, memory_format=fmt)
        rows = max(1, BAND_ELEMENTS // max(1, n * c * kh * kw * wo))
        for r0 in range(0, ho, rows):
            r1 = min(ho, r0 + rows)
            cols = F.unfold(x[:, :, r0 : r1 + kh - 1], (kh, kw))  # (N, C*kh*kw, rows*wo)
            y = torch.matmul(weight, cols)  # (N, out, rows*wo)
            if self.bias is not None:
                y += self.bias.view(1, -1, 1)
            out[:, :, r0:r1] = y.view(n, self.out_channels, r1 - r0, wo)
        return out


class MatmulConvTranspose2d(nn.ConvTranspose2d):
    """A ``ConvTranspose2d`` that computes the ``1x1 map -> k x k map`` case as one GEMM.

    Input ``(N, C, 1, 1)`` -> ``(N, out, k, k)``; other inputs use the ordinary transposed conv.
    Build with :meth:`from_conv` (shares the parameters of the given layer).
    """

    @classmethod
    def from_conv(cls, conv: nn.ConvTranspose2d) -> "MatmulConvTranspose2d":
        """Return a MatmulConvTranspose2d sharing ``conv``'s weight and bias (no copy)."""
        return _sharing(conv, cls(
            conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
            padding=conv.padding, output_padding=conv.output_padding, groups=conv.groups,
            bias=conv.bias is not None, dilation=conv.dilation, padding_mode=conv.padding_mode,
            device="meta",
        ))

    def _matmul_ok(self, x: torch.Tensor) -> bool:
        return (
            x.dim() == 4
            and tuple(x.shape[-2:]) == (1, 1)
            and self.padding == (0, 0)
            and self.output_padding == (0, 0)
            and self.groups == 1
        )

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        """``(N, C, h, w)`` -> ``(N, out, H, W)``; a GEMM when ``h = w = 1``."""
        if output_size is not None or not self._matmul_ok(x):
            return super().forward(x, output_size)
        kh, kw = self.kernel_size
        n = x.shape[0]
        w, cl_order = _flat_weight(self.weight, self.in_channels)
        y = x.reshape(n, -1) @ w  # (N, out*kh*kw) or (N, kh*kw*out) in channels_last order
        if cl_order:
            y = y.view(n, kh, kw, self.out_channels).permute(0, 3, 1, 2)  # channels_last strides
        else:
            y = y.view(n, self.out_channels, kh, kw)
        if self.bias is not None:
            y = y + self.bias.view(1, -1, 1, 1)
        return y


def use_fc_matmul(model: SegmentationModel) -> list[str]:
    """Replace every layer of ``model.fc_layers`` (``fc6`` Conv2d, ``deconv_fc6`` ConvTranspose2d)
    with its GEMM form, in place; return the qualified names of the replaced layers.

    Parameters and state_dict keys are unchanged; outputs are equal to float rounding (the GEMM
    sums in another order). The weights are made contiguous (NCHW): call this after any
    ``model.to(memory_format=torch.channels_last)`` so that the GEMMs read them without a copy.
    A layer already replaced is left as it is.
    """
    replaced = []
    for name in model.fc_layers:
        layer = model.get_submodule(name)
        if type(layer) is nn.Conv2d:
            fast: nn.Module = MatmulConv2d.from_conv(_contiguous(layer))
        elif type(layer) is nn.ConvTranspose2d:
            fast = MatmulConvTranspose2d.from_conv(_contiguous(layer))
        else:
            continue
        replace_submodule(model, name, fast)
        replaced.append(name)
    return replaced


def _contiguous(layer: nn.Conv2d | nn.ConvTranspose2d) -> nn.Conv2d | nn.ConvTranspose2d:
    with torch.no_grad():
        layer.weight.data = layer.weight.data.contiguous()
    return layer
