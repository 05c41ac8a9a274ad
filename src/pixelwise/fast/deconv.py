"""Stride-1 transposed convolutions as ordinary convolutions (an exact rewrite).

A transposed convolution with stride 1 is the ordinary convolution of the same input with the
kernel flipped in space and its two channel axes swapped, padded by ``kernel - 1 - padding``.
DeconvNet's decoder is eighteen such layers (3x3, padding 1). oneDNN runs both forms at the same
speed, but ONNX Runtime has no int8 kernel for ``ConvTranspose``: as ``Conv`` they are quantized
like the encoder (:mod:`pixelwise.fast.int8`). Layers with a stride, dilation, groups or output
padding (FCN's upsampling), or whose conv form would grow the map (DeconvNet's deconv-fc6, 1x1 ->
7x7, which would multiply 48 zeros per output), are left as they are.
"""

from __future__ import annotations

import torch
from torch import nn


def _convertible(layer: nn.ConvTranspose2d) -> bool:
    # a conv padded by k - 1 - p > p would grow the map and multiply zeros (deconv-fc6: 1x1 -> 7x7)
    kernel, padding = layer.kernel_size, layer.padding
    return (layer.stride == (1, 1) and layer.dilation == (1, 1) and layer.groups == 1
            and layer.output_padding == (0, 0) and isinstance(padding, tuple)
            and all(0 <= k - 1 - p <= p for k, p in zip(kernel, padding)))


def as_conv(layer: nn.ConvTranspose2d) -> nn.Conv2d:
    """Return the ``nn.Conv2d`` that computes exactly what the stride-1 ``layer`` computes (a layer
    whose padding ``p`` and kernel ``k`` satisfy ``k - 1 - p <= p``: the map does not grow)."""
    if not _convertible(layer):
        raise ValueError(f"{layer} is not a plain stride-1 transposed convolution")
    padding = tuple(k - 1 - p for k, p in zip(layer.kernel_size, layer.padding))
    conv = nn.Conv2d(layer.in_channels, layer.out_channels, layer.kernel_size, padding=padding,
                     bias=layer.bias is not None)
    conv = conv.to(device=layer.weight.device, dtype=layer.weight.dtype)
    with torch.no_grad():
        conv.weight.copy_(layer.weight.transpose(0, 1).flip(-2, -1))
        if layer.bias is not None:
            conv.bias.copy_(layer.bias)
    return conv.train(layer.training)


def transposed_as_conv(model: nn.Module) -> list[str]:
    """Replace, in place, every stride-1 ``nn.ConvTranspose2d`` of ``model`` by its
    :func:`as_conv`; return the names of the replaced layers. The model's state dict keeps its
    keys (a ``Conv2d`` has the same ``weight``/``bias`` names), not its values' layout."""
    names = [name for name, m in model.named_modules() if isinstance(m, nn.ConvTranspose2d) and _convertible(m)]
    for name in names:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, child, as_conv(getattr(parent, child)))
    return names
