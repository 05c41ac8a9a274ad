"""DeconvNet (Noh, Hong, Han 2015): VGG16-BN encoder mirrored by unpooling + transposed convs."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.convention import CAFFE_BGR
from pixelwise.errors import PixelwiseError
from pixelwise.models.vgg import FC6_KERNEL, VGG16, scaled

# The decoder, one entry per unpooling stage (deepest first): (stage, [output channels of each
# 3x3 deconv]). DESIGN.md section 2.
DECODER_STAGES: tuple[tuple[int, tuple[int, ...]], ...] = (
    (5, (512, 512, 512)),
    (4, (512, 512, 256)),
    (3, (256, 256, 128)),
    (2, (128, 64)),
    (1, (64, 64)),
)
PROPOSAL_SIZE = 224


class DeconvNet(nn.Module):
    """The convolution network (VGG16 + BN, fc6/fc7) and its mirrored deconvolution network.

    ``forward(x)``: ``(N, 3, H, W)`` with ``H, W`` multiples of 32 and at least 224 (the paper's
    proposals are 224x224) -> ``(N, num_classes, H, W)`` logits.
    :meth:`forward_any_size` pads other sizes and crops back.
    """

    def __init__(self, *, num_classes: int = 21, width: float = 1.0) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.input_convention = CAFFE_BGR
        self.backbone = VGG16(
            width=width, batch_norm=True, pad100=False, dropout=0.0, return_indices=True
        )
        fc_ch = self.backbone.taps["fc7"].channels
        pool5_ch = self.backbone.taps["pool5"].channels
        self.deconv_fc6 = nn.ConvTranspose2d(fc_ch, pool5_ch, FC6_KERNEL)
        self.deconv_fc6_bn = nn.BatchNorm2d(pool5_ch)
        self.deconv_names: list[list[str]] = []
        in_ch = pool5_ch
        for stage, widths in DECODER_STAGES:
            names = []
            for j, channels in enumerate(widths, start=1):
                name = f"deconv{stage}_{j}"
                out_ch = scaled(channels, width)
                self.add_module(name, nn.ConvTranspose2d(in_ch, out_ch, 3, padding=1))
                self.add_module(f"{name}_bn", nn.BatchNorm2d(out_ch))
                names.append(name)
                in_ch = out_ch
            self.deconv_names.append(names)
        self.seg_score = nn.Conv2d(in_ch, num_classes, 1)
        self._init_decoder()

    def _init_decoder(self) -> None:
        # the paper: decoder weights Gaussian with std 0.01
        decoder = [self.deconv_fc6, self.seg_score]
        decoder += [getattr(self, n) for names in self.deconv_names for n in names]
        for m in decoder:
            nn.init.normal_(m.weight, std=0.01)
            nn.init.zeros_(m.bias)

    def _deconv_bn_relu(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return F.relu(getattr(self, f"{name}_bn")(getattr(self, name)(x)), inplace=True)

    @staticmethod
    def check_input_size(height: int, width: int) -> None:
        """Raise a clear error unless both sides are multiples of 32 and at least 224."""
        if height % 32 or width % 32 or height < PROPOSAL_SIZE or width < PROPOSAL_SIZE:
            raise PixelwiseError(
                f"DeconvNet needs input sides that are multiples of 32 and >= {PROPOSAL_SIZE}, "
                f"got {height}x{width}; resize proposals to {PROPOSAL_SIZE}x{PROPOSAL_SIZE} or "
                "use forward_any_size()"
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``(N, num_classes, H, W)`` logits; ``H, W`` multiples of 32, >= 224."""
        if not torch.jit.is_tracing() and not torch.compiler.is_compiling():
            self.check_input_size(*x.shape[-2:])
        taps = self.backbone(x)
        switches = taps["switches"]
        y = self._deconv_bn_relu("deconv_fc6", taps["fc7"])
        for (stage, _), names in zip(DECODER_STAGES, self.deconv_names):
            indices, size = switches[stage - 1]
            y = F.max_unpool2d(y, indices, 2, 2, output_size=size)
            for name in names:
                y = self._deconv_bn_relu(name, y)
        return self.seg_score(y)

    def forward_any_size(self, x: torch.Tensor) -> torch.Tensor:
        """Pad ``x`` (bottom/right, zeros = mean colour) to a valid size, run, and crop back."""
        height, width = x.shape[-2:]
        pad_h = max(PROPOSAL_SIZE, height + (-height) % 32) - height
        pad_w = max(PROPOSAL_SIZE, width + (-width) % 32) - width
        out = self.forward(F.pad(x, (0, pad_w, 0, pad_h)))
        return out[..., :height, :width]


def deconvnet(*, num_classes: int = 21, width: float = 1.0) -> DeconvNet:
    """Build the paper's DeconvNet (about 252M parameters at ``width=1``)."""
    return DeconvNet(num_classes=num_classes, width=width)
