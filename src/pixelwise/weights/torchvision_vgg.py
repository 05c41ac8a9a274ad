"""torchvision VGG16 / VGG16-BN state dicts (``vgg16-397923af.pth``, ``vgg16_bn-6c64b313.pth``).

torchvision stores the convolutions in ``features.N`` (``N`` counts every module of the
``nn.Sequential``: conv, [BN,] ReLU, and a max-pool after each stage) and the classifier in
``classifier.0`` (fc6, 4096 x 25088), ``classifier.3`` (fc7, 4096 x 4096) and ``classifier.6``
(fc8, 1000 ImageNet classes; not used). fc6 flattens pool5 in (C, H, W) order, as Caffe does, so it
becomes the 7x7 convolution by a plain reshape. The indices are derived from the VGG16 layer table
rather than listed: plain VGG16 gives convs at 0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28.
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch

from pixelwise.convention import TORCHVISION_RGB
from pixelwise.errors import CheckpointError, first_line
from pixelwise.models.vgg import VGG16_STAGES
from pixelwise.weights.transplant import LayerMap, SourceLayer

CONVENTION = TORCHVISION_RGB
# classifier indices of fc6, fc7 (and fc8, dropped) in torchvision's VGG
CLASSIFIER = {"fc6": "classifier.0", "fc7": "classifier.3"}
FC8 = "classifier.6"


def torchvision_feature_layout(batch_norm: bool) -> list[tuple[str, str]]:
    """Return ``[(torchvision prefix, pixelwise module), ...]`` for the 13 convs (and their BNs).

    E.g. plain: ``("features.0", "conv1_1")``, ``("features.2", "conv1_2")``, ...; with batch norm:
    ``("features.0", "conv1_1")``, ``("features.1", "conv1_1_bn")``, ``("features.3", "conv1_2")``...
    """
    out = []
    index = 0
    for stage, (_, repeats) in enumerate(VGG16_STAGES, start=1):
        for j in range(1, repeats + 1):
            name = f"conv{stage}_{j}"
            out.append((f"features.{index}", name))
            index += 1
            if batch_norm:
                out.append((f"features.{index}", f"{name}_bn"))
                index += 1
            index += 1  # ReLU
        index += 1  # max-pool
    return out


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a torchvision-layout state dict from ``path`` (also inside ``{"state_dict": ...}`` or
    ``{"model": ...}``, with any ``module.`` prefix removed); returns name -> tensor."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    if not looks_like_torch_file(path):
        raise CheckpointError(f"{path}: not a PyTorch state dict (.pth) nor a Caffe .caffemodel")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, zipfile.BadZipFile, pickle.UnpicklingError, ValueError, OSError) as exc:
        raise CheckpointError(f"{path}: not a readable PyTorch state dict: {first_line(exc, 160)}") from None
    if isinstance(obj, dict) and obj.get("format") == "pixelwise.checkpoint":
        raise CheckpointError(f"{path}: already a pixelwise checkpoint; load it with --checkpoint instead")
    for key in ("state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise CheckpointError(f"{path}: expected a dict of tensors (a state dict), got {type(obj).__name__}")
    return {k.removeprefix("module."): v for k, v in obj.items()}


def looks_like_torch_file(path: str | os.PathLike) -> bool:
    """Return True if ``path`` starts like a ``torch.save`` file (a zip, or a pickle for old torch)."""
    with open(path, "rb") as f:
        head = f.read(2)
    return head == b"PK" or head[:1] == b"\x80"


def is_torchvision_vgg(state: dict[str, torch.Tensor]) -> bool:
    """Return True if ``state`` has torchvision VGG keys (``features.0.weight``, ``classifier.0``)."""
    return "features.0.weight" in state and "classifier.0.weight" in state


def has_batch_norm(state: dict[str, torch.Tensor]) -> bool:
    """Return True for the VGG16-BN layout (a BN right after the first conv)."""
    return "features.1.running_mean" in state


def source_layers(state: dict[str, torch.Tensor], origin: str) -> dict[str, SourceLayer]:
    """Return the state dict as :class:`SourceLayer` objects keyed by torchvision prefix."""
    if not is_torchvision_vgg(state):
        raise CheckpointError(
            f"{origin}: not a torchvision VGG16 state dict (no features.0.weight / classifier.0.weight)"
        )
    bn = has_batch_norm(state)
    layers: dict[str, SourceLayer] = {}
    for prefix, module in torchvision_feature_layout(bn):
        if module.endswith("_bn"):
            keys = ("weight", "bias", "running_mean", "running_var")
            kind = "BatchNorm"
        else:
            keys = ("weight", "bias")
            kind = "Convolution"
        missing = [f"{prefix}.{k}" for k in keys if f"{prefix}.{k}" not in state]
        if missing:
            raise CheckpointError(
                f"{origin}: {missing[0]} is missing; torchvision's VGG16{'-BN' if bn else ''} "
                f"puts {module} there (is this a VGG16, not VGG11/13/19?)"
            )
        layers[prefix] = SourceLayer(prefix, kind, [state[f"{prefix}.{k}"] for k in keys])
    for name, prefix in CLASSIFIER.items():
        keys = (f"{prefix}.weight", f"{prefix}.bias")
        if not all(k in state for k in keys):
            raise CheckpointError(f"{origin}: {keys[0]} ({name}) is missing")
        layers[prefix] = SourceLayer(prefix, "InnerProduct", [state[k] for k in keys])
    if f"{FC8}.weight" in state:
        layers[FC8] = SourceLayer(FC8, "InnerProduct", [state[f"{FC8}.weight"], state[f"{FC8}.bias"]])
    return layers


def backbone_mapping(prefix: str, *, target_bn: bool, source_bn: bool) -> list[LayerMap]:
    """Return the :class:`LayerMap` list for one backbone at module path ``prefix`` (e.g.
    ``"backbone"``). BN statistics are copied when both sides have BN, folded into the conv when
    only the file has them, and left at initialisation (reported) when only the model has them."""
    mapping = []
    bn_of = dict(torchvision_feature_layout(True))
    by_module = {m: p for p, m in bn_of.items()}
    plain = {m: p for p, m in torchvision_feature_layout(False)}
    for module, tv_prefix in (by_module if source_bn else plain).items():
        if module.endswith("_bn"):
            if target_bn:
                mapping.append(LayerMap(f"{prefix}.{module}", (tv_prefix,)))
            continue
        fold = by_module[f"{module}_bn"] if (source_bn and not target_bn) else None
        mapping.append(LayerMap(f"{prefix}.{module}", (tv_prefix,), fold_bn=fold))
        if target_bn and not source_bn:
            mapping.append(LayerMap(f"{prefix}.{module}_bn", (), required=False))
    for name, tv_prefix in CLASSIFIER.items():
        mapping.append(LayerMap(f"{prefix}.{name}", (tv_prefix,)))
        if target_bn:  # DeconvNet's fc6_bn/fc7_bn: torchvision has no BN in the classifier
            mapping.append(LayerMap(f"{prefix}.{name}_bn", (), required=False))
    return mapping


def width_probes(state: dict[str, torch.Tensor]) -> list[tuple[int, str]]:
    """Return ``[(paper channel count, torchvision prefix), ...]`` of the layers that pin the width
    multiplier and floor: conv1_1, conv2_1, conv3_1, conv5_3 and fc6."""
    layout = {module: prefix for prefix, module in torchvision_feature_layout(has_batch_norm(state))}
    return [(64, layout["conv1_1"]), (128, layout["conv2_1"]), (256, layout["conv3_1"]), (512, layout["conv5_3"]),
            (4096, CLASSIFIER["fc6"])]


def feature_width(state: dict[str, torch.Tensor]) -> float:
    """Return the width multiplier the state dict was made for (conv1_1 filters / 64)."""
    return state["features.0.weight"].shape[0] / 64
