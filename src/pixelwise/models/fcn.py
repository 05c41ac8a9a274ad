"""FCN-32s / 16s / 8s / 8s-at-once as one decoder configured by its skip taps.

The decoder scores ``fc7`` (``score_fr``), then for each skip tap upsamples the running score 2x
(``upscore2``, ``upscore_pool4``), scores the tap (``score_pool4``, ``score_pool3``), crops both to
their overlap and sums; a final upsampling (``upscore``, ``upscore16``, ``upscore8``) brings it to
input resolution, cropped to the input. Every crop offset is derived from the layer geometry.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.models.base import Family, SegmentationModel, prefixed
from pixelwise.models.layers import BilinearUpsample, Geometry, crop, overlap_crops
from pixelwise.models.vgg import FC6_KERNEL, MIN_CHANNELS, VGG16

# The at-once FCN-8s scales the skip features before scoring (release values)
ATONCE_SCALES = {"pool4": 0.01, "pool3": 0.0001}
# Names of the 2x upsampling layers that fuse with each skip, and of the final upsampling
FUSE_UPSAMPLE_NAME = {"pool4": "upscore2", "pool3": "upscore_pool4"}
FINAL_UPSAMPLE_NAME = {32: "upscore", 16: "upscore16", 8: "upscore8"}


@dataclass(frozen=True)
class FuseStep:
    """One skip fusion: crop offsets into the upsampled score and the skip score."""

    tap: str
    crop_up: int
    crop_skip: int


class FCN(SegmentationModel):
    """A fully convolutional VGG16 with skip fusion (family ``"fcn"``).

    ``forward(x)``: ``(N, 3, H, W)`` normalised images -> ``(N, num_classes, H, W)`` logits,
    aligned pixel for pixel with the input, for any ``H, W >= 1``.

    Args:
        num_classes: classes including background (21 for VOC).
        skips: taps fused after ``fc7``, coarse to fine: ``()`` (32s), ``("pool4",)`` (16s),
            ``("pool4", "pool3")`` (8s).
        width: backbone width multiplier (1.0 = paper-exact).
        skip_scales: multiply a skip tap by this before scoring (at-once FCN-8s).
        upsampling: ``"fixed"`` (release: all bilinear, frozen) or ``"learned"`` (CVPR paper: the 2x
            layers learn, the final one stays fixed).
        pad100: the release geometry (conv1_1 pad 100). ``False`` = pad-free mode: the input is
            padded to a multiple of 32, fc6 keeps the map size, and the output is cropped back.
        dropout: after fc6 and fc7.
        min_channels: the width floor (:data:`pixelwise.models.vgg.MIN_CHANNELS`).
        fc6_kernel: fc6's kernel side (7 = VGG16's; ``S / 32`` for a backbone pretrained as a
            classifier on ``S x S`` crops). Odd in the pad-free mode, which pads fc6 by half of it.
        upsample_bias: names of upsampling layers (``upscore2``, ``upscore_pool4``, the final one)
            that add a per-class bias, initialised to zero. Default none (the FCN release); the
            CVPR-era Model Zoo ``fcn-8s-pascal`` has one on its first 2x layer (``score2``).
        pad_input_to: ``None`` (default) or a side ``S``: pad the input bottom/right with zeros
            (the mean colour, since inputs are mean-subtracted) to at least ``S x S`` before the
            network and crop the scores back to the image: how the DeconvNet release runs
            ``fcn-8s-pascal`` (``S = 500``, VOC's largest side). A side already longer than ``S``
            is not padded (the release would fail there; the network takes any size).
    """

    family = Family.FCN

    def __init__(
        self,
        *,
        num_classes: int = 21,
        skips: tuple[str, ...] = (),
        width: float = 1.0,
        skip_scales: dict[str, float] | None = None,
        upsampling: str = "fixed",
        pad100: bool = True,
        dropout: float = 0.5,
        min_channels: int = MIN_CHANNELS,
        fc6_kernel: int = FC6_KERNEL,
        upsample_bias: tuple[str, ...] = (),
        pad_input_to: int | None = None,
    ) -> None:
        super().__init__()
        if upsampling not in ("fixed", "learned"):
            raise ValueError(f"upsampling must be 'fixed' or 'learned', got {upsampling!r}")
        if pad_input_to is not None and (isinstance(pad_input_to, bool) or int(pad_input_to) != pad_input_to
                                         or pad_input_to < 1):
            raise ValueError(f"pad_input_to must be None or a positive integer, got {pad_input_to!r}")
        self.pad_input_to = None if pad_input_to is None else int(pad_input_to)
        if not pad100 and fc6_kernel % 2 == 0:
            raise ValueError(f"the pad-free mode needs an odd fc6_kernel, got {fc6_kernel}")
        self.num_classes = num_classes
        self.skips = tuple(skips)
        self.skip_scales = dict(skip_scales or {})
        self.pad100 = pad100
        self.backbone = VGG16(
            width=width, min_channels=min_channels, pad100=pad100, fc6_kernel=fc6_kernel,
            fc6_padding=0 if pad100 else fc6_kernel // 2, dropout=dropout,
        )
        taps = self.backbone.taps
        self.score_fr = nn.Conv2d(taps["fc7"].channels, num_classes, 1)
        geo: Geometry = taps["fc7"].geometry
        self.fuse_steps: list[FuseStep] = []
        for tap in self.skips:
            up_name = FUSE_UPSAMPLE_NAME[tap]
            self.add_module(up_name, BilinearUpsample(num_classes, 2, learnable=upsampling == "learned"))
            self.add_module(f"score_{tap}", nn.Conv2d(taps[tap].channels, num_classes, 1))
            up_geo = geo.deconv(4, 2)
            crop_up, crop_skip, geo = overlap_crops(up_geo, taps[tap].geometry)
            self.fuse_steps.append(FuseStep(tap, crop_up, crop_skip))
        factor = int(geo.stride)
        self.final_name = FINAL_UPSAMPLE_NAME[factor]
        self.add_module(self.final_name, BilinearUpsample(num_classes, factor, learnable=False))
        final_geo = geo.deconv(2 * factor, factor)
        self.final_crop, _, _ = overlap_crops(final_geo, Geometry())
        if final_geo.offset > 0:
            raise ValueError("final score map starts inside the image; geometry is inconsistent")
        self.upsample_bias = tuple(upsample_bias)
        unknown = sorted(set(self.upsample_bias) - set(self.upsample_names))
        if unknown:
            raise ValueError(
                f"upsample_bias: {unknown[0]!r} is not an upsampling layer of this FCN; valid: "
                f"{', '.join(self.upsample_names)}"
            )
        for name in self.upsample_bias:
            up = getattr(self, name)
            up.bias = nn.Parameter(torch.zeros(num_classes), requires_grad=up.weight.requires_grad)
        for m in (self.score_fr, *(getattr(self, f"score_{t}") for t in self.skips)):
            nn.init.zeros_(m.weight)
            nn.init.zeros_(m.bias)

    @property
    def dynamic_trace(self) -> bool:
        """False with ``pad_input_to``: its padding depends on the input size."""
        return self.pad_input_to is None

    def conv_bn_pairs(self) -> list[tuple[str, str]]:
        """Return the backbone's ``(conv, batch norm)`` pairs (none in the FCN's VGG16)."""
        prefix = self.backbone_prefix
        return [(f"{prefix}.{conv}", f"{prefix}.{bn}") for conv, bn in self.backbone.conv_bn_pairs()]

    @property
    def fc_layers(self) -> tuple[str, ...]:
        """``("backbone.fc6",)``."""
        return prefixed(self.backbone_prefix, self.backbone.fc_layers)

    @property
    def score_layers(self) -> tuple[str, ...]:
        """``score_fr`` and the skip scorers: ``score_pool4``, ``score_pool3``."""
        return ("score_fr", *(f"score_{tap}" for tap in self.skips))

    @property
    def upsample_names(self) -> tuple[str, ...]:
        """The upsampling layers, coarse to fine: the 2x fusion layers, then the final one."""
        return (*(FUSE_UPSAMPLE_NAME[t] for t in self.skips), self.final_name)

    @property
    def crop_offsets(self) -> dict[str, int]:
        """The Caffe ``Crop`` offsets this geometry implies, keyed by the cropped layer.

        With ``pad100`` these equal the release's: 32s ``{upscore: 19}``; 16s ``{score_pool4: 5,
        upscore16: 27}``; 8s ``{score_pool4: 5, score_pool3: 9, upscore8: 31}``.
        """
        out = {}
        for step in self.fuse_steps:
            if step.crop_skip:
                out[f"score_{step.tap}"] = step.crop_skip
            if step.crop_up:
                out[FUSE_UPSAMPLE_NAME[step.tap]] = step.crop_up
        out[self.final_name] = self.final_crop
        return out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``(N, num_classes, H, W)`` logits for ``(N, 3, H, W)`` input (padded first as
        ``pad_input_to`` says, scores cropped back to ``H x W``)."""
        height, width = x.shape[-2:]
        if self.pad_input_to is not None:
            # the DeconvNet release's protocol: image top-left in a side x side zero canvas
            side = self.pad_input_to
            x = F.pad(x, (0, max(0, side - width), 0, max(0, side - height)))
        if not self.pad100:
            # pad-free mode: pad bottom/right to a multiple of 32 (zeros = the mean colour)
            x = F.pad(x, (0, (-x.shape[-1]) % 32, 0, (-x.shape[-2]) % 32))
        taps = self.backbone(x)
        score = self.score_fr(taps["fc7"])
        for step in self.fuse_steps:
            up = getattr(self, FUSE_UPSAMPLE_NAME[step.tap])(score)
            feat = taps[step.tap]
            if step.tap in self.skip_scales:
                feat = feat * self.skip_scales[step.tap]
            skip = getattr(self, f"score_{step.tap}")(feat)
            h = min(up.shape[-2] - step.crop_up, skip.shape[-2] - step.crop_skip)
            w = min(up.shape[-1] - step.crop_up, skip.shape[-1] - step.crop_skip)
            score = crop(up, step.crop_up, step.crop_up, h, w) + crop(
                skip, step.crop_skip, step.crop_skip, h, w
            )
        out = getattr(self, self.final_name)(score)
        return crop(out, self.final_crop, self.final_crop, height, width)


def _fcn(skips: tuple[str, ...], *, num_classes: int, width: float, **kwargs) -> FCN:
    return FCN(num_classes=num_classes, skips=skips, width=width, **kwargs)


def fcn32s(*, num_classes: int = 21, width: float = 1.0, **kwargs) -> FCN:
    """FCN-32s: score fc7, upsample 32x. Returns an :class:`FCN`."""
    return _fcn((), num_classes=num_classes, width=width, **kwargs)


def fcn16s(*, num_classes: int = 21, width: float = 1.0, **kwargs) -> FCN:
    """FCN-16s: FCN-32s plus the pool4 skip, upsample 16x. Returns an :class:`FCN`."""
    return _fcn(("pool4",), num_classes=num_classes, width=width, **kwargs)


def fcn8s(*, num_classes: int = 21, width: float = 1.0, **kwargs) -> FCN:
    """FCN-8s: FCN-16s plus the pool3 skip, upsample 8x. Returns an :class:`FCN`."""
    return _fcn(("pool4", "pool3"), num_classes=num_classes, width=width, **kwargs)


def fcn8s_atonce(*, num_classes: int = 21, width: float = 1.0, **kwargs) -> FCN:
    """FCN-8s trained at once: pool4 scaled by 0.01, pool3 by 0.0001 before scoring."""
    kwargs.setdefault("skip_scales", ATONCE_SCALES)
    return _fcn(("pool4", "pool3"), num_classes=num_classes, width=width, **kwargs)


def init_from(model: nn.Module, source: nn.Module | dict) -> list[str]:
    """Copy into ``model`` every tensor of ``source`` whose name and shape match; return their names.

    Used for staged training (FCN-16s from FCN-32s, FCN-8s from FCN-16s): new skip scorers stay at
    zero, so at initialisation the new model's output equals the old one's.
    """
    src = source.state_dict() if isinstance(source, nn.Module) else source
    own = model.state_dict()
    copied = [k for k, v in src.items() if k in own and own[k].shape == v.shape]
    with torch.no_grad():
        for k in copied:
            own[k].copy_(src[k])
    return copied
