"""The torch.hub entry points: one builder per registered model, imported by the repository's
``hubconf.py``, so that ``torch.hub.load("<owner>/pixelwise", "fcn8s", weights="voc-fcn8s")``
works. Each takes ``weights`` (None, trained weights of that model, or ImageNet backbone weights:
``pixelwise weights list``) and the model's builder arguments (``num_classes``, ``width``, ...);
see :func:`pixelwise.weights.zoo.create_model_with_weights`."""

from __future__ import annotations

from torch import nn

from pixelwise.weights.zoo import create_model_with_weights


def fcn32s(*, weights: str | None = None, **kwargs) -> nn.Module:
    """FCN-32s (VGG16, 32x upsampling); trained weights: ``voc-fcn32s``."""
    return create_model_with_weights("fcn32s", weights=weights, **kwargs)


def fcn16s(*, weights: str | None = None, **kwargs) -> nn.Module:
    """FCN-16s (+ pool4 skip); trained weights: ``voc-fcn16s``."""
    return create_model_with_weights("fcn16s", weights=weights, **kwargs)


def fcn8s(*, weights: str | None = None, **kwargs) -> nn.Module:
    """FCN-8s (+ pool3 skip); trained weights: ``voc-fcn8s`` (heavy release), ``fcn-8s-pascal`` (CVPR)."""
    return create_model_with_weights("fcn8s", weights=weights, **kwargs)


def fcn8s_atonce(*, weights: str | None = None, **kwargs) -> nn.Module:
    """FCN-8s trained all at once (scaled skips); trained weights: ``voc-fcn8s-atonce``."""
    return create_model_with_weights("fcn8s_atonce", weights=weights, **kwargs)


def deconvnet(*, weights: str | None = None, **kwargs) -> nn.Module:
    """DeconvNet (VGG16-BN encoder, unpooling decoder); trained weights: ``voc-deconvnet``."""
    return create_model_with_weights("deconvnet", weights=weights, **kwargs)


def edeconvnet(*, weights: str | None = None, **kwargs) -> nn.Module:
    """EDeconvNet (FCN-8s + DeconvNet); no trained weights of its own (combine members with
    ``pixelwise ensemble``); ``weights`` may name ImageNet backbone weights for both members."""
    return create_model_with_weights("edeconvnet", weights=weights, **kwargs)


__all__ = ["deconvnet", "edeconvnet", "fcn16s", "fcn32s", "fcn8s", "fcn8s_atonce"]
