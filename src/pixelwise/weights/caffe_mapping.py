"""Map Caffe layer names onto pixelwise modules (FCN release, DeconvNet release, VGG16).

Name tables (from the released prototxts):

- VGG16 / FCN: ``conv1_1`` .. ``conv5_3``, ``fc6``, ``fc7`` (InnerProduct in the ImageNet VGG16,
  Convolution in the FCN nets), ``fc8`` (ImageNet classes; unused); FCN heads ``score_fr``,
  ``score_pool4``, ``score_pool3``, upsampling ``upscore`` (32s), ``upscore2``, ``upscore16``,
  ``upscore_pool4``, ``upscore8`` (Deconvolution, one blob laid out ``(C_in, C_out, k, k)`` as
  torch's ``ConvTranspose2d`` weight), and in the at-once FCN-8s the fixed ``Scale`` layers
  ``scale_pool4`` (0.01) and ``scale_pool3`` (0.0001).
- DeconvNet (``DeconvNet_inference_deploy.prototxt``, V1 ``layers``): encoder ``conv1_1`` ..
  ``conv5_3``, ``fc6``, ``fc7`` with batch norms ``bn1_1`` .. ``bn5_3``, ``bnfc6``, ``bnfc7``;
  decoder ``fc6-deconv`` (+ ``fc6-deconv-bn``), ``deconv5_1`` .. ``deconv1_2`` (+ ``debn5_1`` ..
  ``debn1_2``), score ``seg-score-voc``. Its batch norms are the authors' Caffe fork's ``BN``
  layer: blobs ``scale`` and ``shift`` of shape (1, C, 1, 1); in ``bn_mode: INFERENCE`` (the
  released ``DeconvNet_trainval_inference.caffemodel``) the population statistics are already
  folded into them (y = scale * x + shift); in ``LEARN`` mode (training snapshots) they are gamma and
  beta and the statistics are not stored.
- BVLC ``BatchNorm`` (blobs: mean * s, variance * s, s) followed by a ``Scale`` layer (gamma[, beta])
  is also understood, under the names above or ``<conv>_bn`` / ``bn_<conv>`` / ``<conv>/bn``.
- The CVPR-era Caffe Model Zoo FCN (layout ``fcn-pascal``: ``fcn-8s-pascal``, the FCN-8s the
  DeconvNet release ensembles with, ``model/FCN/fcn-8s-pascal-deploy.prototxt``, V1 ``layers``):
  the same VGG16 names, heads ``score-fr``, ``score-pool4``, ``score-pool3``, 2x upsampling
  ``score2`` (learned, **with** a bias blob) and ``score4`` (learned, no bias), final ``upsample``
  (16/8, fixed bilinear, no bias). Same geometry as the later ``voc-fcn8s`` (its ``Crop`` layers
  derive offsets 5, 9 and 31 from the net). Its deploy input is 500x500, zero-padded after mean
  subtraction; converted models record that as ``pad_input_to=500``.

Any name can be overridden with ``overrides={"pixelwise.module": "caffe_layer"}`` (CLI ``--map``).
"""

from __future__ import annotations

import torch
from torch import nn

from pixelwise.convention import CAFFE_BGR
from pixelwise.errors import CheckpointError, PixelwiseError
from pixelwise.models.base import Family, model_family
from pixelwise.models.deconvnet import DeconvNet
from pixelwise.models.fcn import FCN, FUSE_UPSAMPLE_NAME
from pixelwise.models.vgg import VGG16
from pixelwise.weights.caffemodel import CaffeNet
from pixelwise.weights.transplant import TORCH_BN_EPS, LayerMap, SourceLayer

CONVENTION = CAFFE_BGR
BN_MODES = ("auto", "folded", "learn")
SEG_SCORE_NAMES = ("seg-score-voc", "seg-score", "seg_score", "score")
FCN_HEAD_NAMES = ("score_fr", "score_pool4", "score_pool3", "upscore", "upscore2", "upscore16",
                  "upscore_pool4", "upscore8")
# Caffe layer names per layout: "fcn" (the later FCN release, voc-fcn*: pixelwise's own module
# names) and "fcn-pascal" (the CVPR-era Model Zoo fcn-*s-pascal)
FCN_LAYOUTS = ("fcn", "fcn-pascal")
PASCAL_FCN_NAMES: dict[str, tuple[str, ...]] = {
    "score_fr": ("score-fr",),
    "score_pool4": ("score-pool4",),
    "score_pool3": ("score-pool3",),
    "upscore2": ("score2",),
    "upscore_pool4": ("score4",),
    "upscore8": ("upsample",),
    # not in fcn-8s-pascal (unverified guesses for the 16s / 32s Model Zoo nets)
    "upscore16": ("upsample-fused-16", "upsample"),
    "upscore": ("upsample",),
}
PASCAL_HEAD_NAMES = ("score-fr", "score-pool4", "score-pool3", "score2", "score4")
# fcn-8s-pascal-deploy.prototxt's input_dim; the release pads every image to it (preprocess_image.m)
PASCAL_INPUT_SIZE = 500
DECONV_HEAD_NAMES = ("fc6-deconv", "deconv5_1", *SEG_SCORE_NAMES[:2])


def _tensor(a) -> torch.Tensor:
    return torch.from_numpy(a).float()


def _identity_stats(c: int) -> tuple[torch.Tensor, torch.Tensor]:
    # mean 0 and var + eps == 1: the BatchNorm2d becomes exactly y = weight * x + bias
    return torch.zeros(c), torch.full((c,), 1.0 - TORCH_BN_EPS)


def _fork_bn(layer, bn_mode: str, warnings: list[str]) -> SourceLayer:
    if len(layer.blobs) != 2:
        raise CheckpointError(f"BN layer {layer.name!r} has {len(layer.blobs)} blobs, expected 2 (scale, shift)")
    scale, shift = (_tensor(b).reshape(-1) for b in layer.blobs)
    mode = {"folded": "INFERENCE", "learn": "LEARN"}.get(bn_mode) or layer.bn_mode or "LEARN"
    mean, var = _identity_stats(scale.numel())
    if mode == "INFERENCE":
        note = "BN (INFERENCE): statistics folded into scale/shift"
    else:
        note = "BN (LEARN): gamma/beta only"
        if not any("LEARN" in w for w in warnings):
            warnings.append(
                "batch-norm layers are in LEARN mode: the file has gamma/beta but no population "
                "statistics; recompute them on training data before inference (the release's "
                "DeconvNet_trainval_inference.caffemodel has them folded in)"
            )
    return SourceLayer(layer.name, "BatchNorm", [scale, shift, mean, var], note)


def _bvlc_bn(layer, scale_layer) -> SourceLayer:
    if len(layer.blobs) < 2:
        raise CheckpointError(f"BatchNorm layer {layer.name!r} has {len(layer.blobs)} blobs, expected 3")
    factor = float(layer.blobs[2].reshape(-1)[0]) if len(layer.blobs) > 2 else 1.0
    factor = 0.0 if factor == 0 else 1.0 / factor  # Caffe's moving-average normaliser
    mean = _tensor(layer.blobs[0]).reshape(-1) * factor
    var = _tensor(layer.blobs[1]).reshape(-1) * factor
    eps = layer.eps if layer.eps is not None else 1e-5
    var = var + (eps - TORCH_BN_EPS)  # keep var + eps as Caffe had it
    c = mean.numel()
    gamma, beta = torch.ones(c), torch.zeros(c)
    consumed = (layer.name,)
    if scale_layer is not None:
        gamma = _tensor(scale_layer.blobs[0]).reshape(-1)
        if len(scale_layer.blobs) > 1:
            beta = _tensor(scale_layer.blobs[1]).reshape(-1)
        consumed += (scale_layer.name,)
    return SourceLayer(layer.name, "BatchNorm", [gamma, beta, mean, var], "BatchNorm + Scale" if scale_layer else "BatchNorm", consumed)


def caffe_sources(net: CaffeNet, *, bn_mode: str = "auto") -> tuple[dict[str, SourceLayer], list[str]]:
    """Return ``(sources, warnings)``: the net's weighted layers as :class:`SourceLayer` objects.

    ``bn_mode`` for the fork's ``BN`` layers: ``auto`` (the mode stored in the file; LEARN, the
    proto default, when absent), ``folded`` (scale/shift include the statistics) or ``learn``.
    A BVLC ``BatchNorm`` is merged with the ``Scale`` layer right after it.
    """
    if bn_mode not in BN_MODES:
        raise PixelwiseError(f"unknown bn mode {bn_mode!r}; valid: {', '.join(BN_MODES)}")
    warnings: list[str] = []
    sources: dict[str, SourceLayer] = {}
    merged_scales: set[str] = set()
    layers = net.layers
    for i, layer in enumerate(layers):
        if not layer.blobs or layer.name in merged_scales:
            continue
        try:
            if layer.type == "BN":
                sources[layer.name] = _fork_bn(layer, bn_mode, warnings)
            elif layer.type == "BatchNorm":
                nxt = layers[i + 1] if i + 1 < len(layers) else None
                scale = nxt if (nxt is not None and nxt.type == "Scale" and nxt.blobs) else None
                if scale is not None:
                    merged_scales.add(scale.name)
                sources[layer.name] = _bvlc_bn(layer, scale)
            else:
                sources[layer.name] = SourceLayer(layer.name, layer.type, [_tensor(b) for b in layer.blobs])
        except CheckpointError as exc:
            raise CheckpointError(f"{net.path}: {exc}") from None
    return sources, warnings


def _bn_candidates(caffe_conv: str, release: str) -> tuple[str, ...]:
    return (release, f"{caffe_conv}_bn", f"bn_{caffe_conv}", f"{caffe_conv}/bn")


def _release_bn_name(conv: str) -> str:
    # conv1_1 -> bn1_1, fc6 -> bnfc6 (DeconvNet release)
    return f"bn{conv.removeprefix('conv')}" if conv.startswith("conv") else f"bn{conv}"


def backbone_mapping(prefix: str, backbone: VGG16, *, bn_required: bool) -> list[LayerMap]:
    """Return the :class:`LayerMap` list for a VGG16 backbone at module path ``prefix`` from
    Caffe names (its convolutions and, where it has them, their batch norms)."""
    mapping = []
    bn_of = dict(backbone.conv_bn_pairs())
    for conv in backbone.conv_layers:
        mapping.append(LayerMap(f"{prefix}.{conv}", (conv,)))
        if conv in bn_of:
            cands = _bn_candidates(conv, _release_bn_name(conv))
            mapping.append(LayerMap(f"{prefix}.{bn_of[conv]}", cands, required=bn_required))
    return mapping


def fcn_mapping(model: FCN, *, heads: bool = True, layout: str = "fcn") -> list[LayerMap]:
    """Return the mapping of an FCN's modules from Caffe layer names: the FCN release's
    (``layout="fcn"``) or the CVPR-era Model Zoo ``fcn-*s-pascal`` ones (``"fcn-pascal"``)."""
    if layout not in FCN_LAYOUTS:
        raise PixelwiseError(f"unknown FCN layout {layout!r}; valid: {', '.join(FCN_LAYOUTS)}")

    def names(module: str) -> tuple[str, ...]:
        return PASCAL_FCN_NAMES[module] if layout == "fcn-pascal" else (module,)

    mapping = backbone_mapping(model.backbone_prefix, model.backbone, bn_required=True)
    mapping.append(LayerMap("score_fr", names("score_fr"), required=heads))
    for tap in model.skips:
        scale = (f"scale_{tap}", float(model.skip_scales.get(tap, 1.0)))
        mapping.append(LayerMap(f"score_{tap}", names(f"score_{tap}"), required=heads, input_scale=scale))
        up = FUSE_UPSAMPLE_NAME[tap]
        mapping.append(LayerMap(up, names(up), required=heads))
    mapping.append(LayerMap(model.final_name, names(model.final_name), required=heads))
    return mapping


def biased_upsampling(model: FCN, mapping: list[LayerMap], sources: dict[str, SourceLayer]) -> tuple[str, ...]:
    """Return the FCN upsampling modules whose source Deconvolution layer carries a bias blob
    (``fcn-8s-pascal``'s ``score2``), in the model's order; the model needs ``upsample_bias``
    set to them to carry and use those biases."""
    found = set()
    for lm in mapping:
        if lm.target not in model.upsample_names:
            continue
        src = next((sources[n] for n in lm.sources if n in sources), None)
        if src is not None and src.type == "Deconvolution" and len(src.blobs) > 1:
            found.add(lm.target)
    return tuple(n for n in model.upsample_names if n in found)


def deconvnet_mapping(model: DeconvNet, *, heads: bool = True) -> list[LayerMap]:
    """Return the mapping of a DeconvNet's modules from the DeconvNet release's layer names."""
    bn_of = dict(model.conv_bn_pairs())
    mapping = backbone_mapping(model.backbone_prefix, model.backbone, bn_required=heads)
    mapping.append(LayerMap("deconv_fc6", ("fc6-deconv",), required=heads))
    mapping.append(LayerMap(bn_of["deconv_fc6"], _bn_candidates("fc6-deconv", "fc6-deconv-bn"), required=heads))
    for names in model.deconv_names:
        for name in names:
            mapping.append(LayerMap(name, (name,), required=heads))
            release = f"debn{name.removeprefix('deconv')}"
            mapping.append(LayerMap(bn_of[name], _bn_candidates(name, release), required=heads))
    mapping.append(LayerMap("seg_score", SEG_SCORE_NAMES, required=heads))
    return mapping


def model_mapping(model: nn.Module, *, heads: bool = True, layout: str = "fcn") -> list[LayerMap]:
    """Return the default Caffe mapping for an FCN (layer names of ``layout``, see
    :data:`FCN_LAYOUTS`) or DeconvNet model."""
    family = model_family(model)  # any module may come here: Family.GENERIC for a foreign one
    if family == Family.FCN:
        return fcn_mapping(model, heads=heads, layout=layout)
    if layout != "fcn":
        raise PixelwiseError(f"layout {layout!r} names FCN layers; {type(model).__name__} cannot use it")
    if family == Family.DECONVNET:
        return deconvnet_mapping(model, heads=heads)
    raise PixelwiseError(
        f"Caffe import supports the FCN models and deconvnet, not {type(model).__name__}; convert "
        "the FCN-8s and DeconvNet files separately and combine them with `pixelwise ensemble`"
    )


def apply_overrides(mapping: list[LayerMap], overrides: dict[str, str] | None) -> list[LayerMap]:
    """Replace the source names of the targets in ``overrides`` (``{module: caffe_layer}``)."""
    if not overrides:
        return mapping
    targets = {lm.target for lm in mapping}
    unknown = sorted(set(overrides) - targets)
    if unknown:
        raise PixelwiseError(
            f"--map: {unknown[0]!r} is not a module of this model; valid: {', '.join(sorted(targets))}"
        )
    return [
        LayerMap(lm.target, (overrides[lm.target],), lm.required, lm.fold_bn, lm.input_scale)
        if lm.target in overrides
        else lm
        for lm in mapping
    ]


def infer_arch(net: CaffeNet) -> str | None:
    """Guess the pixelwise model a Caffe net is from its layer names; None for a bare VGG16."""
    names = set(net.names)
    if "fc6-deconv" in names or "deconv5_1" in names:
        return "deconvnet"
    if "score_pool3" in names or "score-pool3" in names:
        return "fcn8s_atonce" if "scale_pool3" in names else "fcn8s"
    if "score_pool4" in names or "score-pool4" in names:
        return "fcn16s"
    if "score_fr" in names or "score-fr" in names:
        return "fcn32s"
    return None


def infer_layout(net: CaffeNet) -> str:
    """Return the FCN naming the net uses: ``fcn-pascal`` (hyphenated ``score-fr`` ... of the
    CVPR-era Model Zoo ``fcn-8s-pascal``) or ``fcn`` (the later release; also for non-FCN nets)."""
    return "fcn-pascal" if any(n in net for n in PASCAL_HEAD_NAMES[:3]) else "fcn"


def infer_num_classes(net: CaffeNet) -> int | None:
    """Return the number of classes of the net's score layer (``score_fr``, ``score-fr`` or
    ``seg-score*``)."""
    for name in ("score_fr", "score-fr", *SEG_SCORE_NAMES):
        layer = net.get(name)
        if layer is not None and layer.blobs:
            return int(layer.blobs[0].shape[0]) if layer.blobs[0].ndim else None
    return None


def has_heads(net: CaffeNet) -> bool:
    """Return True if the net has FCN or DeconvNet layers beyond the VGG16 backbone."""
    return any(n in net for n in FCN_HEAD_NAMES + PASCAL_HEAD_NAMES + DECONV_HEAD_NAMES)


# paper channel counts of the layers that pin the width multiplier (and floor) of a file
WIDTH_PROBES = {"conv1_1": 64, "conv2_1": 128, "conv3_1": 256, "conv5_3": 512, "fc6": 4096}


def width_channels(net) -> dict[int, int]:
    """Return ``{paper channel count: count in the file}`` for the :data:`WIDTH_PROBES` layers the
    caffemodel has (V1 stores an InnerProduct weight as ``(1, 1, out, in)``)."""
    channels = {}
    for name, base in WIDTH_PROBES.items():
        layer = net.get(name)
        if layer is not None and layer.blobs:
            shape = layer.blobs[0].shape
            channels[base] = int(shape[-2] if layer.type == "InnerProduct" else shape[0])
    return channels
