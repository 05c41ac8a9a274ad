"""Plain reference models, written the obvious way, for side-by-side speed ratios.

These follow what the widely used PyTorch ports of FCN-8s and DeconvNet do: a flat module with
one attribute per Caffe layer, ``nn.MaxPool2d`` / ``nn.MaxUnpool2d``, the release's crop offsets
hard-coded, batch norm as separate layers, fc6 as a 7x7 convolution, fp32, NCHW, no rewrites.
Their leaf names equal the pixelwise parameter names (minus the model's ``backbone_prefix``), so
:func:`copy_weights` makes a reference compute exactly the pixelwise model's function (tested):
then a speed ratio compares implementations, not different networks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.models.base import Family, SegmentationModel, model_family, pad_to_multiple
from pixelwise.models.layers import bilinear_kernel
from pixelwise.models.vgg import scaled

VGG = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
# the FCN release's Crop offsets (Caffe prototxts), hard-coded as the ports do
FCN_CROPS = {
    32: {"upscore": 19},
    16: {"score_pool4": 5, "upscore16": 27},
    8: {"score_pool4": 5, "score_pool3": 9, "upscore8": 31},
}


class ReferenceFCN(nn.Module):
    """FCN-32s/16s/8s (``stride`` 32/16/8) as a flat module: ``(N,3,H,W)`` -> ``(N,C,H,W)`` logits."""

    def __init__(self, *, stride: int = 8, num_classes: int = 21, width: float = 1.0, atonce: bool = False,
                 min_channels: int = 1) -> None:
        super().__init__()
        self.stride = stride
        self.atonce = atonce
        in_ch = 3
        for stage, (channels, repeats) in enumerate(VGG, start=1):
            out_ch = scaled(channels, width, min_channels)
            for j in range(1, repeats + 1):
                pad = 100 if (stage, j) == (1, 1) else 1
                setattr(self, f"conv{stage}_{j}", nn.Conv2d(in_ch, out_ch, 3, padding=pad))
                setattr(self, f"relu{stage}_{j}", nn.ReLU(inplace=True))
                in_ch = out_ch
            setattr(self, f"pool{stage}", nn.MaxPool2d(2, 2, ceil_mode=True))
        fc = scaled(4096, width, min_channels)
        self.fc6 = nn.Conv2d(in_ch, fc, 7)
        self.relu6 = nn.ReLU(inplace=True)
        self.drop6 = nn.Dropout2d()
        self.fc7 = nn.Conv2d(fc, fc, 1)
        self.relu7 = nn.ReLU(inplace=True)
        self.drop7 = nn.Dropout2d()
        self.score_fr = nn.Conv2d(fc, num_classes, 1)
        if stride <= 16:
            self.upscore2 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, bias=False)
            self.score_pool4 = nn.Conv2d(scaled(512, width, min_channels), num_classes, 1)
        if stride == 8:
            self.upscore_pool4 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, bias=False)
            self.score_pool3 = nn.Conv2d(scaled(256, width, min_channels), num_classes, 1)
        final = {32: "upscore", 16: "upscore16", 8: "upscore8"}[stride]
        setattr(self, final, nn.ConvTranspose2d(num_classes, num_classes, 2 * stride, stride=stride, bias=False))
        for name in ("upscore", "upscore16", "upscore8", "upscore2", "upscore_pool4"):
            if hasattr(self, name):
                layer = getattr(self, name)
                layer.weight.data.copy_(bilinear_kernel(num_classes, num_classes, layer.kernel_size[0]))

    def _stage(self, x: torch.Tensor, stage: int) -> torch.Tensor:
        for j in range(1, VGG[stage - 1][1] + 1):
            x = getattr(self, f"relu{stage}_{j}")(getattr(self, f"conv{stage}_{j}")(x))
        return getattr(self, f"pool{stage}")(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``(N, C, H, W)`` logits."""
        h, w = x.shape[2:]
        crops = FCN_CROPS[self.stride]
        pool3 = self._stage(self._stage(self._stage(x, 1), 2), 3)
        pool4 = self._stage(pool3, 4)
        pool5 = self._stage(pool4, 5)
        y = self.drop6(self.relu6(self.fc6(pool5)))
        y = self.drop7(self.relu7(self.fc7(y)))
        y = self.score_fr(y)
        if self.stride == 32:
            y = self.upscore(y)
            c = crops["upscore"]
            return y[:, :, c : c + h, c : c + w].contiguous()
        y = self.upscore2(y)
        s4 = self.score_pool4(pool4 * 0.01 if self.atonce else pool4)
        c = crops["score_pool4"]
        y = y + s4[:, :, c : c + y.size(2), c : c + y.size(3)]
        if self.stride == 16:
            y = self.upscore16(y)
            c = crops["upscore16"]
            return y[:, :, c : c + h, c : c + w].contiguous()
        y = self.upscore_pool4(y)
        s3 = self.score_pool3(pool3 * 0.0001 if self.atonce else pool3)
        c = crops["score_pool3"]
        y = y + s3[:, :, c : c + y.size(2), c : c + y.size(3)]
        y = self.upscore8(y)
        c = crops["upscore8"]
        return y[:, :, c : c + h, c : c + w].contiguous()


DECODER = ((5, (512, 512, 512)), (4, (512, 512, 256)), (3, (256, 256, 128)), (2, (128, 64)), (1, (64, 64)))


class ReferenceDeconvNet(nn.Module):
    """DeconvNet as a flat module: ``(N,3,224,224)`` -> ``(N,C,224,224)`` logits."""

    def __init__(self, *, num_classes: int = 21, width: float = 1.0, min_channels: int = 1) -> None:
        super().__init__()
        in_ch = 3
        for stage, (channels, repeats) in enumerate(VGG, start=1):
            out_ch = scaled(channels, width, min_channels)
            for j in range(1, repeats + 1):
                setattr(self, f"conv{stage}_{j}", nn.Conv2d(in_ch, out_ch, 3, padding=1))
                setattr(self, f"conv{stage}_{j}_bn", nn.BatchNorm2d(out_ch))
                in_ch = out_ch
            setattr(self, f"pool{stage}", nn.MaxPool2d(2, 2, ceil_mode=True, return_indices=True))
        fc = scaled(4096, width, min_channels)
        self.fc6 = nn.Conv2d(in_ch, fc, 7)
        self.fc6_bn = nn.BatchNorm2d(fc)
        self.fc7 = nn.Conv2d(fc, fc, 1)
        self.fc7_bn = nn.BatchNorm2d(fc)
        self.deconv_fc6 = nn.ConvTranspose2d(fc, in_ch, 7)
        self.deconv_fc6_bn = nn.BatchNorm2d(in_ch)
        for stage, widths in DECODER:
            setattr(self, f"unpool{stage}", nn.MaxUnpool2d(2, 2))
            for j, channels in enumerate(widths, start=1):
                out_ch = scaled(channels, width, min_channels)
                setattr(self, f"deconv{stage}_{j}", nn.ConvTranspose2d(in_ch, out_ch, 3, padding=1))
                setattr(self, f"deconv{stage}_{j}_bn", nn.BatchNorm2d(out_ch))
                in_ch = out_ch
        self.seg_score = nn.Conv2d(in_ch, num_classes, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``(N, C, H, W)`` logits."""
        switches = []
        for stage, (_, repeats) in enumerate(VGG, start=1):
            for j in range(1, repeats + 1):
                name = f"conv{stage}_{j}"
                x = F.relu(getattr(self, f"{name}_bn")(getattr(self, name)(x)))
            size = x.size()
            x, idx = getattr(self, f"pool{stage}")(x)
            switches.append((idx, size))
        x = F.relu(self.fc6_bn(self.fc6(x)))
        x = F.relu(self.fc7_bn(self.fc7(x)))
        x = F.relu(self.deconv_fc6_bn(self.deconv_fc6(x)))
        for stage, widths in DECODER:
            idx, size = switches[stage - 1]
            x = getattr(self, f"unpool{stage}")(x, idx, output_size=size)
            for j in range(1, len(widths) + 1):
                name = f"deconv{stage}_{j}"
                x = F.relu(getattr(self, f"{name}_bn")(getattr(self, name)(x)))
        return self.seg_score(x)


class ReferenceEnsemble(nn.Module):
    """Reference EDeconvNet: the two reference members, scores combined as pixelwise does."""

    def __init__(self, fcn: ReferenceFCN, deconvnet: ReferenceDeconvNet, mode: str = "mean") -> None:
        super().__init__()
        self.fcn = fcn
        self.deconvnet = deconvnet
        self.mode = mode

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``(N, C, H, W)`` ensemble scores (DeconvNet on the padded image)."""
        from pixelwise.models.ensemble import combine_scores

        h, w = x.shape[2:]
        pad_h, pad_w = pad_to_multiple(h, 32, 224) - h, pad_to_multiple(w, 32, 224) - w
        d = self.deconvnet(F.pad(x, (0, pad_w, 0, pad_h)))[..., :h, :w]
        return combine_scores(self.fcn(x), d, self.mode)


def reference_for(model: nn.Module, width: float | None = None) -> nn.Module:
    """Return the reference module matching a pixelwise model (same shapes, its own init).

    ``width`` defaults to the one in ``model.pixelwise_spec`` (1.0 without a spec).
    """
    family = model_family(model)
    if family == Family.GENERIC:
        raise ValueError(f"no reference model for {type(model).__name__}")
    if width is None:
        width = float((model.pixelwise_spec or {}).get("width", 1.0))
    if family == Family.ENSEMBLE:
        return ReferenceEnsemble(
            reference_for(model.fcn, width), reference_for(model.deconvnet, width), model.mode
        )
    floor = model.backbone.min_channels
    if family == Family.DECONVNET:
        if model.input_size != 224:
            raise ValueError("the reference DeconvNet implements the paper's 224-pixel proposals only")
        return ReferenceDeconvNet(num_classes=model.num_classes, width=width, min_channels=floor)
    if not model.pad100:
        raise ValueError("the reference FCN implements the release geometry (pad100=True) only")
    stride = {0: 32, 1: 16, 2: 8}[len(model.skips)]
    if model.backbone.fc6_kernel != 7:
        raise ValueError("the reference FCN implements VGG16's 7x7 fc6 only")
    return ReferenceFCN(stride=stride, num_classes=model.num_classes, width=width, atonce=bool(model.skip_scales),
                        min_channels=floor)


def copy_weights(reference: nn.Module, model: SegmentationModel) -> nn.Module:
    """Copy every tensor of the pixelwise ``model`` into ``reference`` (matched by leaf name: the
    model's names without its ``backbone_prefix``; an ensemble member by member).

    Raises ``ValueError`` when a name or shape does not match. Returns ``reference``.
    """
    if model.family == "ensemble":  # each member carries its own backbone
        copy_weights(reference.fcn, model.fcn)
        copy_weights(reference.deconvnet, model.deconvnet)
        return reference
    own = reference.state_dict()
    prefix = f"{model.backbone_prefix}."
    src = {k.removeprefix(prefix): v for k, v in model.state_dict().items()}
    if set(own) != set(src):
        missing, extra = sorted(set(own) - set(src)), sorted(set(src) - set(own))
        raise ValueError(f"reference/model names differ: missing {missing[:5]}, extra {extra[:5]}")
    with torch.no_grad():
        for k, v in own.items():
            if v.shape != src[k].shape:
                raise ValueError(f"shape mismatch for {k}: {tuple(v.shape)} vs {tuple(src[k].shape)}")
            v.copy_(src[k])
    return reference


def build_reference(model: nn.Module) -> nn.Module:
    """Return the reference for ``model`` carrying ``model``'s weights, in eval mode."""
    return copy_weights(reference_for(model), model).eval()
