"""Fold eval-mode batch norm into the convolution that feeds it.

``bn(conv(x)) = s * (W x + b - mean) + beta`` with ``s = gamma / sqrt(var + eps)``: the same map as a
conv with weight ``s * W`` (scaled per output channel) and bias ``s * (b - mean) + beta``. The
model names the pairs (:meth:`pixelwise.models.base.SegmentationModel.conv_bn_pairs`). After
folding, the batch norm module is replaced by ``nn.Identity`` so the model's own forward (which
calls the batch norm after its conv) still works unchanged. This is what the DeconvNet authors
did for inference (their release folds the batch-norm statistics into the weights before testing).
"""

from __future__ import annotations

import torch
from torch import nn

from pixelwise.models.base import SegmentationModel


def fold_conv_bn(conv: nn.Conv2d | nn.ConvTranspose2d, bn: nn.BatchNorm2d) -> None:
    """Fold ``bn``'s running statistics and affine parameters into ``conv`` in place.

    ``conv`` gains a bias if it had none. The weight's output-channel axis is 0 for ``Conv2d``
    ``(out, in, kh, kw)`` and 1 for ``ConvTranspose2d`` ``(in, out, kh, kw)``; grouped transposed
    convs are not supported.
    """
    if bn.running_mean is None or bn.running_var is None:
        raise ValueError("cannot fold a batch norm without running statistics")
    if isinstance(conv, nn.ConvTranspose2d) and conv.groups != 1:
        raise ValueError("folding into grouped transposed convolutions is not supported")
    with torch.no_grad():
        # compute in float64: the folded weights then match the unfolded model to ~1e-7
        scale = bn.running_var.double().add(bn.eps).rsqrt()
        if bn.weight is not None:
            scale = scale * bn.weight.double()
        shift = -bn.running_mean.double() * scale
        if bn.bias is not None:
            shift = shift + bn.bias.double()
        axis = 1 if isinstance(conv, nn.ConvTranspose2d) else 0
        shape = [1] * conv.weight.dim()
        shape[axis] = -1
        conv.weight.copy_((conv.weight.double() * scale.view(shape)).to(conv.weight.dtype))
        old_bias = conv.bias.double() if conv.bias is not None else torch.zeros_like(scale)
        new_bias = (old_bias * scale + shift).to(conv.weight.dtype)
        if conv.bias is None:
            conv.bias = nn.Parameter(new_bias, requires_grad=False)
        else:
            conv.bias.copy_(new_bias)


def replace_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    """Put ``module`` at the dotted path ``name`` of ``root`` (``"backbone.fc6"``), in place."""
    parent, _, leaf = name.rpartition(".")
    setattr(root.get_submodule(parent) if parent else root, leaf, module)


def fold_batchnorm(model: SegmentationModel) -> list[str]:
    """Fold every batch norm of ``model.conv_bn_pairs()`` into its conv, in place; return the
    qualified names of the folded convs (``backbone.conv1_1``, ``deconv5_1``, ...).

    The model must be in eval mode (training-mode batch norm uses batch statistics, which cannot
    be folded). A batch norm already folded away (an ``nn.Identity``) is skipped.
    """
    if model.training:
        raise ValueError("fold_batchnorm needs an eval-mode model; call model.eval() first")
    folded = []
    for conv_name, bn_name in model.conv_bn_pairs():
        bn = model.get_submodule(bn_name)
        if not isinstance(bn, nn.BatchNorm2d):
            continue
        fold_conv_bn(model.get_submodule(conv_name), bn)
        replace_submodule(model, bn_name, nn.Identity())
        folded.append(conv_name)
    return folded
