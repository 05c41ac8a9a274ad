"""DeconvNet (Noh, Hong, Han 2015): VGG16-BN encoder mirrored by unpooling + transposed convs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.convention import PAD_COLOURS
from pixelwise.errors import PixelwiseError
from pixelwise.models.base import Family, SegmentationModel, SizeRule, prefixed
from pixelwise.models.layers import max_unpool2d
from pixelwise.models.vgg import MIN_CHANNELS, VGG16, scaled

# The decoder, one entry per unpooling stage (deepest first): (stage, [output channels of each
# 3x3 deconv]), mirroring VGG16's convolution stages as the paper's Table 1 lists them.
DECODER_STAGES: tuple[tuple[int, tuple[int, ...]], ...] = (
    (5, (512, 512, 512)),
    (4, (512, 512, 256)),
    (3, (256, 256, 128)),
    (2, (128, 64)),
    (1, (64, 64)),
)
PROPOSAL_SIZE = 224
"""The paper's proposal side: fc6's 7x7 kernel covers the whole 7x7 pool5 of a 224x224 input."""
CAFFE_BN_EPS = 1e-9
CAFFE_BN_SHIFT = 0.001
"""The authors' Caffe fork's BN layer: variance epsilon 1e-9, shifts initialised to 0.001."""


class DeconvNet(SegmentationModel):
    """The convolution network (VGG16 + BN, fc6/fc7) and its mirrored deconvolution network
    (family ``"deconvnet"``).

    ``forward(x)``: ``(N, 3, H, W)`` with ``H, W`` multiples of 32 and at least ``input_size``
    (the paper's proposals are 224x224) -> ``(N, num_classes, H, W)`` logits.
    :meth:`forward_any_size` pads other sizes and crops back.

    Args:
        num_classes: classes including background.
        width: channel multiplier (1.0 = paper-exact), with the floor ``min_channels``.
        input_size: proposal side, a multiple of 32. fc6 is a ``input_size / 32`` square kernel
            that sees the whole pool5 (7x7 at the paper's 224). Smaller sides are for CPU budgets
            (the demo uses 96: 3x3), with an encoder pretrained at the same side.
        deep_supervision: add a 1x1 class scorer (``aux_score.<layer>``) on the output of
            deconv-fc6 and of the last layer of every unpooling stage but the finest, for
            :meth:`forward_aux` (training only; beyond the paper, see ``docs/reproduce.md``).
            :meth:`forward` ignores them.
        caffe_bn: every BN layer as in the authors' Caffe fork: eps 1e-9 (torch: 1e-5) and shifts
            initialised to 0.001 (``--recipe deconvnet``); False keeps torch's BN.
        proposal_pad: the colour proposal crops are padded with outside the image, by default at
            inference: ``mean`` (0 after normalisation) or ``black`` (raw 0, as the release padded
            its proposals and stage-2 windows; set for released weights and models trained that way).
    """

    family = Family.DECONVNET

    def __init__(self, *, num_classes: int = 21, width: float = 1.0, min_channels: int = MIN_CHANNELS,
                 input_size: int = PROPOSAL_SIZE, deep_supervision: bool = False, caffe_bn: bool = False,
                 proposal_pad: str = "mean") -> None:
        super().__init__()
        if input_size % 32 or input_size < 32:
            raise PixelwiseError(f"DeconvNet input_size must be a multiple of 32 (paper: 224), got {input_size}")
        if proposal_pad not in PAD_COLOURS:
            raise PixelwiseError(f"DeconvNet proposal_pad must be one of {', '.join(PAD_COLOURS)}, got {proposal_pad!r}")
        self.proposal_pad = proposal_pad
        self.num_classes = num_classes
        self.input_size = int(input_size)
        self.backbone = VGG16(
            width=width, min_channels=min_channels, batch_norm=True, pad100=False, dropout=0.0,
            return_indices=True, fc6_kernel=input_size // 32,
        )
        fc_ch = self.backbone.taps["fc7"].channels
        pool5_ch = self.backbone.taps["pool5"].channels
        self.deconv_fc6 = nn.ConvTranspose2d(fc_ch, pool5_ch, input_size // 32)
        self.deconv_fc6_bn = nn.BatchNorm2d(pool5_ch)
        self.deconv_names: list[list[str]] = []
        in_ch = pool5_ch
        for stage, widths in DECODER_STAGES:
            names = []
            for j, channels in enumerate(widths, start=1):
                name = f"deconv{stage}_{j}"
                out_ch = scaled(channels, width, min_channels)
                self.add_module(name, nn.ConvTranspose2d(in_ch, out_ch, 3, padding=1))
                self.add_module(f"{name}_bn", nn.BatchNorm2d(out_ch))
                names.append(name)
                in_ch = out_ch
            self.deconv_names.append(names)
        self.seg_score = nn.Conv2d(in_ch, num_classes, 1)
        self._init_decoder()
        self.deep_supervision = deep_supervision
        if deep_supervision:
            self.aux_score = nn.ModuleDict(
                {name: nn.Conv2d(getattr(self, name).out_channels, num_classes, 1) for name in self.aux_layers}
            )
        self.caffe_bn = caffe_bn
        if caffe_bn:
            self._use_caffe_bn()

    @property
    def aux_layers(self) -> list[str]:
        """The decoder layers deep supervision scores: deconv-fc6 and the last layer of every
        unpooling stage but the finest (whose last layer feeds ``seg_score``)."""
        return ["deconv_fc6"] + [names[-1] for names in self.deconv_names[:-1]]

    def _init_decoder(self) -> None:
        # the paper: decoder weights Gaussian with std 0.01
        decoder = [self.deconv_fc6, self.seg_score]
        decoder += [getattr(self, n) for names in self.deconv_names for n in names]
        for m in decoder:
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)

    def _use_caffe_bn(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.eps = CAFFE_BN_EPS
                nn.init.constant_(m.bias, CAFFE_BN_SHIFT)

    def _deconv_bn_relu(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return F.relu(getattr(self, f"{name}_bn")(getattr(self, name)(x)), inplace=True)

    @property
    def size_rule(self) -> SizeRule:
        """Sides that are multiples of 32 and at least ``input_size``."""
        return SizeRule(32, self.input_size)

    def conv_bn_pairs(self) -> list[tuple[str, str]]:
        """Return every ``(conv, batch norm)`` pair: the encoder's (``backbone.conv1_1`` ..
        ``backbone.fc7``), then the decoder's (``deconv_fc6`` .. ``deconv1_2``)."""
        prefix = self.backbone_prefix
        encoder = [(f"{prefix}.{conv}", f"{prefix}.{bn}") for conv, bn in self.backbone.conv_bn_pairs()]
        decoder = ["deconv_fc6", *(name for names in self.deconv_names for name in names)]
        return encoder + [(name, f"{name}_bn") for name in decoder]

    @property
    def fc_layers(self) -> tuple[str, ...]:
        """``("backbone.fc6", "deconv_fc6")``: a 7x7 kernel over a 7x7 map and its mirror."""
        return (*prefixed(self.backbone_prefix, self.backbone.fc_layers), "deconv_fc6")

    @property
    def score_layers(self) -> tuple[str, ...]:
        """``("seg_score",)`` (the deep-supervision scorers ``aux_score.*`` are training-only)."""
        return ("seg_score",)

    def _decode(self, x: torch.Tensor, aux: list | None) -> torch.Tensor:
        if not torch.jit.is_tracing() and not torch.compiler.is_compiling():
            self.check_input_size(*x.shape[-2:])
        taps = self.backbone(x)
        switches = taps["switches"]
        y = self._deconv_bn_relu("deconv_fc6", taps["fc7"])
        if aux is not None:
            aux.append(self.aux_score["deconv_fc6"](y))
        for (stage, _), names in zip(DECODER_STAGES, self.deconv_names):
            indices, size = switches[stage - 1]
            y = max_unpool2d(y, indices, 2, 2, output_size=size)
            for name in names:
                y = self._deconv_bn_relu(name, y)
            if aux is not None and names[-1] in self.aux_score:
                aux.append(self.aux_score[names[-1]](y))
        return self.seg_score(y)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``(N, num_classes, H, W)`` logits; ``H, W`` multiples of 32, >= ``input_size``."""
        return self._decode(x, None)

    def forward_aux(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Return ``(logits (N, C, H, W), aux)``: ``aux`` holds one ``(N, C, h, w)`` score map per
        :attr:`aux_layers` entry, at that layer's resolution (``H / 32`` ... ``H / 2``). Needs a
        model built with ``deep_supervision=True``."""
        if not self.deep_supervision:
            raise PixelwiseError("forward_aux needs a DeconvNet built with deep_supervision=True")
        aux: list[torch.Tensor] = []
        return self._decode(x, aux), aux


def deconvnet(*, num_classes: int = 21, width: float = 1.0, **kwargs) -> DeconvNet:
    """Build the paper's DeconvNet (about 252M parameters at ``width=1``); ``kwargs`` go to
    :class:`DeconvNet` (``min_channels``, ``input_size``, ``deep_supervision``, ``caffe_bn``,
    ``proposal_pad``)."""
    return DeconvNet(num_classes=num_classes, width=width, **kwargs)
