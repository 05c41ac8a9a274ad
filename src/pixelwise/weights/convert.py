"""Turn a Caffe ``.caffemodel`` or a torchvision VGG16 ``.pth`` into a pixelwise model.

Caffe files from the FCN and DeconvNet releases become the full trained model (architecture,
number of classes and width inferred from the layers when not given); a bare VGG16 (Caffe or
torchvision) becomes a backbone-initialised model of the requested architecture.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import nn

from pixelwise.errors import CheckpointError, PixelwiseError
from pixelwise.models.registry import create_model, get_entry, list_models
from pixelwise.weights import caffe_mapping, torchvision_vgg
from pixelwise.weights.backbone import (
    backbone_from_caffe,
    backbone_from_torchvision,
    set_input_convention,
    unused_layers,
)
from pixelwise.weights.caffemodel import CaffeNet, looks_like_caffemodel, read_caffemodel
from pixelwise.weights.report import ImportReport
from pixelwise.weights.transplant import apply_mapping, infer_width

def _caffe_width(net: CaffeNet) -> tuple[float, int] | None:
    channels = caffe_mapping.width_channels(net)
    return infer_width(channels) if channels else None


def _build(arch: str, num_classes: int, width: float, model_kwargs: dict) -> nn.Module:
    return create_model(arch, num_classes=num_classes, width=width, **model_kwargs).eval()


def _fcn_upsample_bias(arch, num_classes, width, model_kwargs, sources, layout, overrides) -> tuple[str, ...]:
    """The upsampling layers that must carry a bias for this file (built on the meta device:
    only the module names and the mapping are needed)."""
    with torch.device("meta"):
        probe = _build(arch, num_classes, width, model_kwargs)
    if probe.family != "fcn":
        return ()
    mapping = caffe_mapping.apply_overrides(caffe_mapping.model_mapping(probe, layout=layout), overrides)
    return caffe_mapping.biased_upsampling(probe, mapping, sources)


def convert_caffemodel(
    path: str | os.PathLike,
    *,
    arch: str | None = None,
    num_classes: int | None = None,
    width: float | None = None,
    bn_mode: str = "auto",
    overrides: dict[str, str] | None = None,
    layout: str = "auto",
    **model_kwargs,
) -> tuple[nn.Module, ImportReport]:
    """Read a caffemodel and return ``(model, report)``; the model is in eval mode, CAFFE_BGR.

    ``arch``/``num_classes``/``width`` default to what the layers say (``score_pool3`` -> fcn8s,
    ``fc6-deconv`` -> deconvnet, the score layer's outputs, fc6's outputs / 4096). A file with only
    VGG16 layers needs ``arch`` and initialises the backbone. Missing or mis-shaped layers raise
    :class:`CheckpointError` naming the layer, the expected and the found shape.

    ``layout``: the FCN layer naming, ``auto`` (from the names), ``fcn`` (the FCN release's
    ``score_fr`` ...) or ``fcn-pascal`` (the CVPR-era Model Zoo ``fcn-8s-pascal`` the DeconvNet
    release uses: ``score-fr`` ...). An ``fcn-pascal`` FCN is built with ``upsampling="learned"``
    and ``pad_input_to=500`` (the release's input protocol) unless ``model_kwargs`` say otherwise.
    Upsampling layers whose file layer has a bias blob get ``upsample_bias`` (``score2``).
    """
    net = read_caffemodel(path)
    guessed = caffe_mapping.infer_arch(net)
    heads = caffe_mapping.has_heads(net)
    if layout == "auto":
        layout = caffe_mapping.infer_layout(net)
    elif layout not in caffe_mapping.FCN_LAYOUTS:
        raise PixelwiseError(f"unknown layout {layout!r}; valid: auto, {', '.join(caffe_mapping.FCN_LAYOUTS)}")
    arch = arch or guessed
    if arch is None:
        raise PixelwiseError(
            f"{net.path}: only VGG16 layers found; pass --arch to choose the model to initialise "
            f"(one of {', '.join(list_models())})"
        )
    if width is None:
        inferred = _caffe_width(net)
        if inferred is None:
            raise CheckpointError(f"{net.path}: cannot infer the width from conv1_1/conv5_3/fc6; pass --width")
        width, floor = inferred
        model_kwargs.setdefault("min_channels", floor)
    if num_classes is None:
        num_classes = (caffe_mapping.infer_num_classes(net) if heads else None) or 21
    fcn_heads = heads and get_entry(arch).family == "fcn"
    if fcn_heads and layout == "fcn-pascal":
        model_kwargs.setdefault("upsampling", "learned")  # score2/score4 learned, upsample fixed
        model_kwargs.setdefault("pad_input_to", caffe_mapping.PASCAL_INPUT_SIZE)
    if heads and get_entry(arch).family == "deconvnet":
        # the release pads proposal crops outside the image with black; released weights expect it
        model_kwargs.setdefault("proposal_pad", "black")
    sources, warnings = caffe_mapping.caffe_sources(net, bn_mode=bn_mode) if heads else ({}, [])
    if fcn_heads and "upsample_bias" not in model_kwargs:
        biased = _fcn_upsample_bias(arch, num_classes, width, model_kwargs, sources, layout, overrides)
        if biased:
            model_kwargs["upsample_bias"] = biased
    model = _build(arch, num_classes, width, model_kwargs)
    if not heads:
        report = backbone_from_caffe(model, net, bn_mode=bn_mode)
    else:
        mapping = caffe_mapping.apply_overrides(caffe_mapping.model_mapping(model, layout=layout), overrides)
        rows, kept, used = apply_mapping(model, sources, mapping, origin=net.path)
        report = ImportReport(
            net.path, f"Caffe caffemodel ({net.layer_format})", caffe_mapping.CONVENTION, rows, kept,
            unused_layers(sources, used), warnings,
        )
        set_input_convention(model, report.input_convention)
    if guessed and arch != guessed:
        report.warnings.append(f"the layer names look like {guessed}, converted as {arch}")
    report.arch, report.num_classes, report.width = arch, num_classes, width
    if fcn_heads:
        report.layout = layout
    return model, report


def convert_torchvision(
    path: str | os.PathLike,
    *,
    arch: str,
    num_classes: int | None = None,
    width: float | None = None,
    **model_kwargs,
) -> tuple[nn.Module, ImportReport]:
    """Build ``arch`` and initialise its backbone from a torchvision VGG16(-BN) state dict;
    returns ``(model in eval mode, report)`` with the TORCHVISION_RGB convention."""
    state = torchvision_vgg.read_state_dict(path)
    if not torchvision_vgg.is_torchvision_vgg(state):
        raise CheckpointError(
            f"{path}: neither a .caffemodel nor a torchvision VGG16 state dict (no features.0.weight)"
        )
    if width is None:
        channels = {base: int(state[f"{prefix}.weight"].shape[0]) for base, prefix in torchvision_vgg.width_probes(state)}
        inferred = infer_width(channels)
        width, floor = inferred if inferred else (torchvision_vgg.feature_width(state), 1)
        model_kwargs.setdefault("min_channels", floor)
    num_classes = num_classes or 21
    model = _build(arch, num_classes, width, model_kwargs)
    report = backbone_from_torchvision(model, path, state=state)
    report.arch, report.num_classes, report.width = arch, num_classes, width
    return model, report


def convert_weights(
    path: str | os.PathLike,
    *,
    arch: str | None = None,
    num_classes: int | None = None,
    width: float | None = None,
    bn_mode: str = "auto",
    overrides: dict[str, str] | None = None,
    layout: str = "auto",
    **model_kwargs,
) -> tuple[nn.Module, ImportReport]:
    """Convert a ``.caffemodel`` or torchvision ``.pth`` file; returns ``(model, report)``.

    See :func:`convert_caffemodel` and :func:`convert_torchvision`.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if looks_like_caffemodel(path):
        return convert_caffemodel(
            path, arch=arch, num_classes=num_classes, width=width, bn_mode=bn_mode,
            overrides=overrides, layout=layout, **model_kwargs,
        )
    if not torchvision_vgg.looks_like_torch_file(path):
        raise CheckpointError(f"{path}: not a PyTorch state dict (.pth) nor a Caffe .caffemodel")
    if overrides:
        raise PixelwiseError("--map applies to Caffe files only")
    if layout != "auto":
        raise PixelwiseError("--layout applies to Caffe files only")
    if arch is None:
        raise PixelwiseError(f"{path}: a torchvision VGG16 only initialises a backbone; pass --arch "
                             f"(one of {', '.join(list_models())})")
    return convert_torchvision(path, arch=arch, num_classes=num_classes, width=width, **model_kwargs)
