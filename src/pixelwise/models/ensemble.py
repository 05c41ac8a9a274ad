"""EDeconvNet: the ensemble of DeconvNet and FCN-8s."""

from __future__ import annotations

import torch

from pixelwise.models.base import Family, SegmentationModel
from pixelwise.models.deconvnet import DeconvNet
from pixelwise.models.fcn import FCN

ENSEMBLE_MODES = ("mean", "product")


def combine_scores(fcn_logits: torch.Tensor, deconv_logits: torch.Tensor, mode: str = "mean") -> torch.Tensor:
    """Combine two ``(N, C, H, W)`` score maps into ensemble scores whose softmax is the ensemble.

    ``mean`` (the paper, section 4.4): log of the average of the two softmax probabilities.
    ``product`` (the release, ``generate_EDeconvNet_CRF_results.m``): ``max(0, deconv) *
    max(0, fcn)``. The release's DeconvNet scores are already >= 0 (its max over proposals starts
    from a zero map, aggregation ``max0``) and it zeroes FCN-8s's negatives; flooring both keeps the
    product from flipping the sign of a class that both members score negative.
    """
    if mode == "mean":
        probs = (fcn_logits.softmax(1) + deconv_logits.softmax(1)) / 2
        return probs.clamp_min(1e-12).log()
    if mode == "product":
        return deconv_logits.clamp_min(0) * fcn_logits.clamp_min(0)
    raise ValueError(f"unknown ensemble mode {mode!r}; valid: {', '.join(ENSEMBLE_MODES)}")


class EDeconvNet(SegmentationModel):
    """FCN-8s and DeconvNet run on the same input, their scores combined by :func:`combine_scores`
    (family ``"ensemble"``).

    ``forward(x)``: ``(N, 3, H, W)`` -> ``(N, C, H, W)`` ensemble scores, for any ``H, W``. This
    whole-image forward runs DeconvNet on the padded image; the proposal pipeline
    (``pixelwise.inference``) runs it on object proposals as the paper does and combines with the
    same function. Its layer names are its members', under ``fcn.`` and ``deconvnet.``.
    """

    family = Family.ENSEMBLE
    backbone_prefix = None  # each member has its own backbone

    def __init__(self, fcn: FCN, deconvnet: DeconvNet, *, mode: str = "mean") -> None:
        super().__init__()
        if fcn.num_classes != deconvnet.num_classes:
            raise ValueError(
                f"FCN has {fcn.num_classes} classes but DeconvNet has {deconvnet.num_classes}"
            )
        if mode not in ENSEMBLE_MODES:
            raise ValueError(f"unknown ensemble mode {mode!r}; valid: {', '.join(ENSEMBLE_MODES)}")
        self.fcn = fcn
        self.deconvnet = deconvnet
        self.mode = mode
        self.num_classes = fcn.num_classes

    @property
    def dynamic_trace(self) -> bool:
        """False: DeconvNet's padding depends on the input size."""
        return False

    def _members(self) -> tuple[tuple[str, SegmentationModel], ...]:
        return (("fcn", self.fcn), ("deconvnet", self.deconvnet))

    def conv_bn_pairs(self) -> list[tuple[str, str]]:
        """Return the members' ``(conv, batch norm)`` pairs, qualified (``deconvnet.deconv1_2``)."""
        return [(f"{name}.{conv}", f"{name}.{bn}")
                for name, m in self._members() for conv, bn in m.conv_bn_pairs()]

    @property
    def fc_layers(self) -> tuple[str, ...]:
        """The members' fc layers, qualified (``fcn.backbone.fc6``, ``deconvnet.deconv_fc6``, ...)."""
        return tuple(f"{name}.{layer}" for name, m in self._members() for layer in m.fc_layers)

    @property
    def score_layers(self) -> tuple[str, ...]:
        """The members' score layers, qualified (``fcn.score_fr``, ``deconvnet.seg_score``, ...)."""
        return tuple(f"{name}.{layer}" for name, m in self._members() for layer in m.score_layers)

    def member_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(fcn_logits, deconvnet_logits)``, each ``(N, C, H, W)``."""
        return self.fcn(x), self.deconvnet.forward_any_size(x)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``(N, C, H, W)`` ensemble scores."""
        return combine_scores(*self.member_logits(x), self.mode)
