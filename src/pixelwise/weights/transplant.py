"""Copy named source layers into a model's modules, checking every shape first.

Importers (torchvision, Caffe) turn their files into :class:`SourceLayer` objects with torch
semantics and describe where each goes with :class:`LayerMap`; :func:`apply_mapping` validates the
whole mapping before it writes anything, so a failed import leaves the model untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from pixelwise.errors import CheckpointError
from pixelwise.weights.report import ImportRow

# torch's BatchNorm2d epsilon; imported statistics are adjusted so that var + eps is preserved
TORCH_BN_EPS = 1e-5


@dataclass
class SourceLayer:
    """A layer from a weight file, in torch semantics.

    ``type``: ``"Convolution"`` / ``"Deconvolution"`` (blobs: weight[, bias]), ``"InnerProduct"``
    (a 2-D weight that may become a convolution), ``"BatchNorm"`` (blobs: weight, bias,
    running_mean, running_var, for ``eps = 1e-5``) or ``"Scale"`` (blob: per-channel factors).
    """

    name: str
    type: str
    blobs: list[torch.Tensor]
    note: str = ""
    consumed: tuple[str, ...] = field(default_factory=tuple)  # file layers this one stands for


@dataclass(frozen=True)
class LayerMap:
    """Where a source layer goes: the model's module path and candidate source names.

    ``fold_bn`` names a source BatchNorm folded into this (BN-less) convolution; ``input_scale``
    is ``(source Scale layer, the model's own fixed factor)``: a skip scale in the file is moved
    into this convolution's weights (the at-once FCN-8s ``scale_pool4``/``scale_pool3``).
    """

    target: str
    sources: tuple[str, ...]
    required: bool = True
    fold_bn: str | None = None
    input_scale: tuple[str, float] | None = None


def fit_blob(
    blob: torch.Tensor,
    shape: tuple[int, ...],
    *,
    origin: str,
    layer: str,
    index: int,
    target: str,
    allow_flatten: bool = False,
) -> tuple[torch.Tensor, str]:
    """Return ``(blob reshaped to shape, note)``; raise a clear :class:`CheckpointError` if it can't.

    Accepted without copying data around: the exact shape, the same shape up to size-1 axes
    (Caffe's legacy 4-D blobs), and with ``allow_flatten`` a 2-D ``(out, in)`` fully connected
    weight whose ``in`` is the flattened ``(C, kh, kw)`` of a convolution (VGG's fc6/fc7).
    """
    shape = tuple(int(d) for d in shape)
    found = tuple(int(d) for d in blob.shape)
    if found == shape:
        return blob, ""
    if blob.numel() == _prod(shape):
        fc_note = f"fully connected {shape[0]}x{_prod(shape[1:])} -> conv" if allow_flatten else ""
        if tuple(d for d in found if d != 1) == tuple(d for d in shape if d != 1):
            return blob.reshape(shape), fc_note
        # (out, in) with in = C*kh*kw flattened in (C, kh, kw) order: torchvision and Caffe agree
        if allow_flatten and found[-2:] == (shape[0], _prod(shape[1:])):
            return blob.reshape(shape), fc_note
    raise CheckpointError(
        f"{origin}: layer {layer!r} blob {index} has shape {found}, but {target} needs {shape} "
        "(weights for another width or number of classes? check --width/--num-classes)"
    )


def _prod(shape: tuple[int, ...]) -> int:
    out = 1
    for d in shape:
        out *= int(d)
    return out


def _first(sources: dict[str, SourceLayer], names: tuple[str, ...]) -> SourceLayer | None:
    for name in names:
        if name in sources:
            return sources[name]
    return None


def _missing(origin: str, lm: LayerMap, sources: dict[str, SourceLayer]) -> CheckpointError:
    names = " or ".join(repr(n) for n in lm.sources)
    have = [n for n in sources if sources[n].blobs]
    shown = ", ".join(have[:12]) + (", ..." if len(have) > 12 else "")
    return CheckpointError(
        f"{origin}: no layer {names} for {lm.target}; the file has: {shown or 'no weighted layers'} "
        f"(map another name with --map {lm.target}=NAME)"
    )


def _plan_bn(module: nn.BatchNorm2d, src: SourceLayer, origin: str, target: str) -> dict:
    if src.type != "BatchNorm" or len(src.blobs) != 4:
        raise CheckpointError(f"{origin}: layer {src.name!r} ({src.type}) cannot fill batch norm {target}")
    c = (module.num_features,)
    names = ("weight", "bias", "running_mean", "running_var")
    return {
        f"{target}.{n}": fit_blob(b, c, origin=origin, layer=src.name, index=i, target=target)[0]
        for i, (n, b) in enumerate(zip(names, src.blobs))
    }


def _plan_conv(module: nn.Module, src: SourceLayer, lm: LayerMap, sources: dict, origin: str) -> tuple[dict, str]:
    target = lm.target
    if src.type not in ("Convolution", "Deconvolution", "InnerProduct"):
        raise CheckpointError(f"{origin}: layer {src.name!r} ({src.type}) cannot fill {target}")
    if not src.blobs:
        raise CheckpointError(f"{origin}: layer {src.name!r} has no weights for {target}")
    transposed = isinstance(module, nn.ConvTranspose2d)
    if transposed != (src.type == "Deconvolution"):
        raise CheckpointError(
            f"{origin}: layer {src.name!r} is a {src.type} layer but {target} is a "
            f"{'transposed ' if transposed else ''}convolution"
        )
    weight, note = fit_blob(
        src.blobs[0], tuple(module.weight.shape), origin=origin, layer=src.name, index=0,
        target=target, allow_flatten=src.type == "InnerProduct",
    )
    notes = [note] if note else []
    weight = weight.float()
    bias = None
    if module.bias is not None:
        if len(src.blobs) > 1:
            bias = fit_blob(src.blobs[1], tuple(module.bias.shape), origin=origin, layer=src.name, index=1, target=target)[0]
        else:
            bias = torch.zeros_like(module.bias)
            notes.append("no bias in file: zero")
    elif len(src.blobs) > 1 and src.blobs[1].abs().max() > 0:
        raise CheckpointError(f"{origin}: layer {src.name!r} has a non-zero bias but {target} has none")
    if lm.fold_bn:
        bn = sources[lm.fold_bn]
        gamma, beta, mean, var = (b.reshape(-1).float() for b in bn.blobs)
        scale = gamma / torch.sqrt(var + TORCH_BN_EPS)
        weight = weight * scale.reshape(-1, 1, 1, 1)
        bias = (bias - mean) * scale + beta
        notes.append(f"{bn.name} folded in")
    if lm.input_scale:
        scale_name, own = lm.input_scale
        found = sources.get(scale_name)
        factor = found.blobs[0].reshape(-1).float() if found is not None else torch.ones(1)
        if factor.numel() not in (1, weight.shape[1]):
            raise CheckpointError(
                f"{origin}: layer {scale_name!r} has {factor.numel()} factors, {target} has {weight.shape[1]} inputs"
            )
        ratio = factor / own
        if not torch.allclose(ratio, torch.ones_like(ratio), rtol=1e-6, atol=0):
            weight = weight * ratio.reshape(1, -1, 1, 1)
            notes.append(f"skip scale {scale_name if found is not None else '1'} moved into weights")
    plan = {f"{target}.weight": weight}
    if bias is not None:
        plan[f"{target}.bias"] = bias
    return plan, "; ".join(n for n in notes if n)


def apply_mapping(
    model: nn.Module,
    sources: dict[str, SourceLayer],
    mapping: list[LayerMap],
    *,
    origin: str,
) -> tuple[list[ImportRow], list[str], set[str]]:
    """Load ``sources`` into ``model`` as ``mapping`` says; return ``(rows, kept, used_names)``.

    Every shape is checked before any tensor is written. ``kept`` lists optional targets the
    sources lacked; ``used_names`` the file layers consumed (for the "unused" report).
    """
    plan: dict[str, torch.Tensor] = {}
    rows: list[ImportRow] = []
    kept: list[str] = []
    used: set[str] = set()
    for lm in mapping:
        module = model.get_submodule(lm.target)
        src = _first(sources, lm.sources)
        if src is None:
            if lm.required:
                raise _missing(origin, lm, sources)
            kept.append(lm.target)
            continue
        if isinstance(module, nn.BatchNorm2d):
            plan.update(_plan_bn(module, src, origin, lm.target))
            note = src.note
            shape = (module.num_features,)
        elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            entries, note = _plan_conv(module, src, lm, sources, origin)
            plan.update(entries)
            note = "; ".join(n for n in (src.note, note) if n)
            shape = tuple(module.weight.shape)
        else:  # pragma: no cover - mappings only name conv and BN modules
            raise TypeError(f"cannot load weights into {type(module).__name__} {lm.target}")
        used.update(src.consumed or (src.name,))
        for extra in (lm.fold_bn, lm.input_scale[0] if lm.input_scale else None):
            if extra and extra in sources:
                used.update(sources[extra].consumed or (extra,))
        source_label = "+".join(src.consumed) if src.consumed else src.name
        rows.append(ImportRow(lm.target, source_label, shape, note))
    state = model.state_dict()
    with torch.no_grad():
        for key, value in plan.items():
            state[key].copy_(value.to(dtype=state[key].dtype))
    return rows, kept, used


def infer_width(channels: dict[int, int]) -> tuple[float, int] | None:
    """Return ``(width, min_channels)``: the width multiplier and floor that turn every ``base``
    channel count into the ``found`` one.

    ``channels`` maps base (paper) counts to counts found in a file, e.g. ``{64: 2, 4096: 128}``.
    A plain multiplier (floor 1, how the papers' and torchvision's files are made) is tried first,
    then pixelwise's default floor; None if neither fits (see :func:`pixelwise.models.vgg.scaled`).
    """
    from pixelwise.models.vgg import MIN_CHANNELS, scaled

    for floor in (1, MIN_CHANNELS):
        # the largest layer pins the multiplier most precisely, so try it first
        for base, found in sorted(channels.items(), reverse=True):
            width = found / base
            if all(scaled(b, width, floor) == f for b, f in channels.items()):
                return width, floor
    return None
