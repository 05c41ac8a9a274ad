"""ImageNet initialisation of a model's VGG16 backbone(s) from a local file ("net surgery").

Accepted files: torchvision ``vgg16-397923af.pth`` (VGG16) and ``vgg16_bn-6c64b313.pth``
(VGG16-BN), and Caffe ``VGG_ILSVRC_16_layers.caffemodel`` (fc6/fc7 as InnerProduct) or the
DeconvNet release's ``VGG_ILSVRC_16_layers_conv.caffemodel`` (fc6/fc7 already convolutions).
The weights decide the input convention; it is returned and set on the model so that checkpoints
and transforms carry it.
"""

from __future__ import annotations

import os

from torch import nn

from pixelwise.convention import InputConvention
from pixelwise.errors import CheckpointError, PixelwiseError
from pixelwise.models.base import SegmentationModel
from pixelwise.models.vgg import VGG16, scaled
from pixelwise.weights import caffe_mapping, torchvision_vgg
from pixelwise.weights.caffemodel import CaffeNet, looks_like_caffemodel, read_caffemodel
from pixelwise.weights.files import resolve_backbone_weights
from pixelwise.weights.report import ImportReport
from pixelwise.weights.transplant import SourceLayer, apply_mapping, infer_width


def find_backbones(model: nn.Module) -> list[tuple[str, VGG16]]:
    """Return ``[(module path, VGG16), ...]``: every VGG16 backbone in ``model`` (two in EDeconvNet)."""
    return [(name, m) for name, m in model.named_modules() if isinstance(m, VGG16)]


def set_input_convention(model: nn.Module, convention) -> None:
    """Set ``input_convention`` on the model and on every sub-model (an ensemble's members)."""
    for m in model.modules():
        if isinstance(m, SegmentationModel):
            m.input_convention = convention
    model.input_convention = convention


def _check_width(origin: str, file_channels: dict[int, int], backbone: VGG16, path_in_model: str) -> None:
    """Raise a clear error unless the file's channel counts (``{paper count: found}``) are the
    backbone's; it names the width and floor that would fit."""
    own = {base: scaled(base, backbone.width, backbone.min_channels) for base in file_channels}
    if own == file_channels:
        return
    inferred = infer_width(file_channels)
    if inferred is None:
        fits, fix = "for no single width", "check the file"
    else:
        width, floor = inferred
        fits = f"for width {width:g}" + (f" with floor {floor}" if floor > 1 else "")
        fix = f"build the model with width={width:g}" + (
            f", min_channels={floor}" if floor != backbone.min_channels else "")
    raise CheckpointError(
        f"{origin}: the weights are {fits} (conv1_1 has {file_channels.get(64)} filters) but {path_in_model} has "
        f"width {backbone.width:g} with floor {backbone.min_channels} ({own.get(64)} filters); {fix}"
    )


def unused_layers(sources: dict[str, SourceLayer], used: set[str]) -> list[str]:
    """Return the names of weighted source layers that no mapping consumed."""
    return [name for name, s in sources.items() if s.blobs and name not in used and not (set(s.consumed) & used)]


def backbone_from_caffe(model: nn.Module, net: CaffeNet, *, bn_mode: str = "auto") -> ImportReport:
    """Load a parsed Caffe VGG16 into every backbone of ``model``; returns the report."""
    sources, warnings = caffe_mapping.caffe_sources(net, bn_mode=bn_mode)
    conv1 = sources.get("conv1_1")
    if conv1 is None:
        raise CheckpointError(f"{net.path}: no layer 'conv1_1'; not a VGG16 caffemodel")
    rows, kept, used = [], [], set()
    for prefix, backbone in _require_backbones(model):
        _check_width(net.path, caffe_mapping.width_channels(net), backbone, prefix)
        mapping = caffe_mapping.backbone_mapping(prefix, backbone, bn_required=False)
        r, k, u = apply_mapping(model, sources, mapping, origin=net.path)
        rows, kept, used = rows + r, kept + k, used | u
    report = ImportReport(
        net.path, f"Caffe caffemodel ({net.layer_format})", caffe_mapping.CONVENTION, rows, kept,
        unused_layers(sources, used), warnings,
    )
    set_input_convention(model, report.input_convention)
    return report


def backbone_from_torchvision(model: nn.Module, path: str | os.PathLike, *, state: dict | None = None) -> ImportReport:
    """Load a torchvision VGG16 / VGG16-BN state dict (read from ``path`` unless ``state`` is
    given) into every backbone of ``model``; returns the report."""
    origin = str(path)
    if state is None:
        state = torchvision_vgg.read_state_dict(path)
    sources = torchvision_vgg.source_layers(state, origin)
    source_bn = torchvision_vgg.has_batch_norm(state)
    rows, kept, used = [], [], set()
    for prefix, backbone in _require_backbones(model):
        channels = {base: int(state[f"{p}.weight"].shape[0]) for base, p in torchvision_vgg.width_probes(state)}
        _check_width(origin, channels, backbone, prefix)
        mapping = torchvision_vgg.backbone_mapping(prefix, target_bn=backbone.batch_norm, source_bn=source_bn)
        r, k, u = apply_mapping(model, sources, mapping, origin=origin)
        rows, kept, used = rows + r, kept + k, used | u
    fmt = f"torchvision VGG16{'-BN' if source_bn else ''} state dict"
    report = ImportReport(
        origin, fmt, torchvision_vgg.CONVENTION, rows, kept, unused_layers(sources, used), []
    )
    set_input_convention(model, report.input_convention)
    return report


def _require_backbones(model: nn.Module) -> list[tuple[str, VGG16]]:
    found = find_backbones(model)
    if not found:
        raise PixelwiseError(f"{type(model).__name__} has no VGG16 backbone to initialise")
    for prefix, backbone in found:
        if not backbone.fc:
            raise PixelwiseError(f"{prefix} has no fc6/fc7; cannot take VGG16 ImageNet weights")
    return found


def load_backbone_weights(model: nn.Module, path: str | os.PathLike, *, bn_mode: str = "auto") -> ImportReport:
    """Initialise ``model``'s VGG16 backbone(s) from ImageNet weights in ``path``; return the report.

    ``path``: a torchvision VGG16 / VGG16-BN state dict (``.pth``) or a Caffe VGG16
    ``.caffemodel``. Convolutions conv1_1..conv5_3 are copied, fc6 (25088 -> 4096) becomes the 7x7
    convolution and fc7 the 1x1 one; fc8 is dropped. Batch-norm statistics are copied into a
    BN backbone (DeconvNet), folded into the convolutions of a plain one (FCN), or left at their
    initialisation when the file has none (reported in ``report.kept``). Every shape is checked
    before anything is written; a width mismatch raises :class:`CheckpointError` naming both widths.
    Sets ``model.input_convention`` to the weights' convention (``report.input_convention``):
    ``torchvision_rgb`` for torchvision files, ``caffe_bgr`` for Caffe ones. ``path`` may also name
    downloadable ImageNet weights (``imagenet``, ``vgg16-caffe``: :mod:`pixelwise.models.pretrained`),
    fetched once into the cache.
    """
    path = resolve_backbone_weights(path)
    if looks_like_caffemodel(path):
        return backbone_from_caffe(model, read_caffemodel(path), bn_mode=bn_mode)
    return backbone_from_torchvision(model, path)



def backbone_weights_convention(path: str | os.PathLike) -> InputConvention:
    """Return the input convention that backbone weights in ``path`` were trained with (Caffe files:
    ``caffe_bgr``; torchvision state dicts: ``torchvision_rgb``), without loading them, so that a run
    can build its datasets with it. A weights name is downloaded first (see :func:`load_backbone_weights`)."""
    path = resolve_backbone_weights(path)
    return caffe_mapping.CONVENTION if looks_like_caffemodel(path) else torchvision_vgg.CONVENTION
