"""Fold eval-mode batch norm into the convolution that feeds it.

``bn(conv(x)) = s * (W x + b - mean) + beta`` with ``s = gamma / sqrt(var + eps)``: the same map as a
conv with weight ``s * W`` (scaled per output channel) and bias ``s * (b - mean) + beta``. After
folding, the batch norm module is replaced by ``nn.Identity`` so the model's own forward (which
calls ``<conv>_bn`` after ``<conv>``) still works unchanged. This is what the DeconvNet authors
did for inference (DESIGN.md section 2).
"""

from __future__ import annotations

import torch
from torch import nn

BN_SUFFIX = "_bn"


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


def fold_batchnorm(model: nn.Module) -> list[str]:
    """Fold every ``<name>_bn`` BatchNorm2d into its sibling conv ``<name>``, in place.

    Relies on the pixelwise naming convention (VGG16 ``conv1_1`` + ``conv1_1_bn``, DeconvNet
    ``deconv5_1`` + ``deconv5_1_bn``, ...), where the batch norm is applied directly to that conv's
    output. The model must be in eval mode (training-mode batch norm uses batch statistics, which
    cannot be folded). Returns the qualified names of the folded convs.
    """
    if model.training:
        raise ValueError("fold_batchnorm needs an eval-mode model; call model.eval() first")
    folded = []
    for parent_name, parent in model.named_modules():
        for child_name, child in list(parent.named_children()):
            if not (isinstance(child, nn.BatchNorm2d) and child_name.endswith(BN_SUFFIX)):
                continue
            conv = getattr(parent, child_name[: -len(BN_SUFFIX)], None)
            if not isinstance(conv, (nn.Conv2d, nn.ConvTranspose2d)):
                continue
            fold_conv_bn(conv, child)
            setattr(parent, child_name, nn.Identity())
            prefix = f"{parent_name}." if parent_name else ""
            folded.append(prefix + child_name[: -len(BN_SUFFIX)])
    return folded
