"""Input conventions: how a model's weights expect images to be normalised.

The weights decide the convention (Caffe VGG16: BGR, 0..255, mean subtracted; torchvision VGG16:
RGB, 0..1, ImageNet mean/std). It is stored with every checkpoint and applied by the transforms,
never guessed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class InputConvention:
    """How an RGB uint8 image becomes the network input.

    ``x = (img[..., order] * scale - mean) / std`` per channel, in the channel order given.
    """

    name: str
    channel_order: str  # "BGR" or "RGB": order of channels fed to the network
    scale: float  # multiply the 0..255 pixel values by this first
    mean: tuple[float, float, float]  # in the network's channel order, after scaling
    std: tuple[float, float, float]

    def to_dict(self) -> dict:
        """Return a plain dict (for checkpoints and JSON)."""
        return asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "InputConvention":
        """Rebuild a convention saved by :meth:`to_dict`."""
        return InputConvention(
            name=str(d["name"]),
            channel_order=str(d["channel_order"]),
            scale=float(d["scale"]),
            mean=tuple(float(v) for v in d["mean"]),
            std=tuple(float(v) for v in d["std"]),
        )


CAFFE_BGR = InputConvention(
    name="caffe_bgr",
    channel_order="BGR",
    scale=1.0,
    mean=(104.00699, 116.66877, 122.67892),
    std=(1.0, 1.0, 1.0),
)

TORCHVISION_RGB = InputConvention(
    name="torchvision_rgb",
    channel_order="RGB",
    scale=1.0 / 255.0,
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
)

CONVENTIONS = {c.name: c for c in (CAFFE_BGR, TORCHVISION_RGB)}

PAD_COLOURS = ("mean", "black")
"""What fills a crop where it reaches past the image (DeconvNet's training crops and proposals):
the mean colour (0 after normalisation) or black (raw 0 before normalisation, the release's)."""


def get_convention(name_or_dict: str | dict | InputConvention) -> InputConvention:
    """Return the convention named (``caffe_bgr``/``torchvision_rgb``) or stored as a dict."""
    if isinstance(name_or_dict, InputConvention):
        return name_or_dict
    if isinstance(name_or_dict, dict):
        return InputConvention.from_dict(name_or_dict)
    try:
        return CONVENTIONS[name_or_dict]
    except KeyError:
        raise ValueError(
            f"unknown input convention {name_or_dict!r}; valid: {', '.join(sorted(CONVENTIONS))}"
        ) from None
