"""The built-in models, registered by name."""

from __future__ import annotations

from pixelwise.models import deconvnet as _deconvnet
from pixelwise.models import fcn as _fcn
from pixelwise.models.ensemble import EDeconvNet
from pixelwise.models.deconvnet import PROPOSAL_SIZE
from pixelwise.models.entries import register_model
from pixelwise.models.vgg import MIN_CHANNELS

register_model("fcn32s", family="fcn", description="FCN-32s: VGG16, score fc7, 32x bilinear upsampling")(
    _fcn.fcn32s
)
register_model("fcn16s", family="fcn", description="FCN-16s: + pool4 skip, 16x upsampling")(_fcn.fcn16s)
register_model("fcn8s", family="fcn", description="FCN-8s: + pool3 skip, 8x upsampling")(_fcn.fcn8s)
register_model(
    "fcn8s_atonce",
    family="fcn",
    description="FCN-8s trained at once (pool4 x0.01, pool3 x0.0001)",
)(_fcn.fcn8s_atonce)
register_model(
    "deconvnet",
    family="deconvnet",
    description="DeconvNet: VGG16-BN encoder, unpooling + deconvolution decoder",
)(_deconvnet.deconvnet)


@register_model(
    "edeconvnet",
    family="ensemble",
    description="EDeconvNet: FCN-8s + DeconvNet ensemble (mode mean|product)",
)
def edeconvnet(*, num_classes: int = 21, width: float = 1.0, mode: str = "mean", min_channels: int = MIN_CHANNELS,
               input_size: int = PROPOSAL_SIZE, **fcn_kwargs) -> EDeconvNet:
    """Build an untrained EDeconvNet (load trained members with ``pixelwise ensemble``):
    ``min_channels`` goes to both members, ``input_size`` to DeconvNet, the rest to FCN-8s."""
    return EDeconvNet(
        _fcn.fcn8s(num_classes=num_classes, width=width, min_channels=min_channels, **fcn_kwargs),
        _deconvnet.deconvnet(num_classes=num_classes, width=width, min_channels=min_channels, input_size=input_size),
        mode=mode,
    )
