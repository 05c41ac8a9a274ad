"""The model a run segments with, ready as an engine, and the engine cache's part in it.

A :class:`ModelRequest` names the model (a checkpoint, an exported ``.onnx`` file, a freshly built
model, or an FCN-8s and a DeconvNet checkpoint combined into an EDeconvNet) and how it runs
(device, engine, precision). :func:`load_inference_model` returns it as a
:class:`~pixelwise.optimize.PreparedModel`. The engine-cache policy for checkpoints under the
``auto`` engine: a checkpoint whose ONNX Runtime graph is cached (and unchanged since) is run from
the cache without being loaded, and :func:`warm_engine_cache` stores that graph after a run that
did not have it, so that later runs start on the faster engine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch
from torch import nn

from pixelwise.errors import PixelwiseError
from pixelwise.optimize import PreparedModel, ensemble_engine, load_onnx_model, prepare_for_inference


@dataclass(frozen=True)
class ModelRequest:
    """Which model to load and how to run it. The model is ``checkpoint`` (a ``.pt`` or ``.onnx``
    file), else ``model`` (a registry name, built fresh with ``num_classes`` and ``width``), else
    the EDeconvNet of ``fcn`` and ``deconvnet`` (checkpoints) combined by ``ensemble_mode``."""

    checkpoint: str | None = None
    model: str | None = None
    width: float = 1.0
    num_classes: int = 21
    fcn: str | None = None
    deconvnet: str | None = None
    ensemble_mode: str = "mean"
    device: torch.device = torch.device("cpu")
    engine: str = "auto"
    precision: str = "fp32"


def load_inference_model(request: ModelRequest, *, images: int | None = None) -> PreparedModel:
    """Return the model ``request`` names, in eval mode on its device, prepared with its engine for
    ``images`` images (None: a few). An ``.onnx`` file always runs in ONNX Runtime; a checkpoint
    whose ``auto`` engine is cached is not loaded at all."""
    if request.checkpoint is not None and str(request.checkpoint).endswith(".onnx"):
        return load_onnx_model(request.checkpoint)
    if request.engine == "int8" and request.checkpoint is None and request.model is None:
        return _int8_pair(request)
    cached = _cached_engine(request)
    if cached is not None:
        return cached
    model = _build_model(request).to(request.device).eval()
    prepared = prepare_for_inference(model, engine=request.engine, precision=request.precision,
                                     device=request.device, copy=False, images=images)
    if (prepared.engine == "onnxruntime" and prepared.cache_key and request.checkpoint is not None
            and request.engine == "auto"):
        from pixelwise.fast.engine_cache import remember_checkpoint

        remember_checkpoint(request.checkpoint, prepared.cache_key)  # the next run skips loading the checkpoint
    return prepared


def _int8_pair(request: ModelRequest) -> PreparedModel:
    """The EDeconvNet of ``request``'s two checkpoints, each member run by the int8 engine
    ``pixelwise export --int8`` built for its own checkpoint (or fp32 where that was refused)."""
    model = _build_model(request)  # checks that the two fit together
    members = [load_inference_model(replace(request, checkpoint=path, fcn=None, deconvnet=None))
               for path in (request.fcn, request.deconvnet)]
    return ensemble_engine(model, *members, request.device)


def _build_model(request: ModelRequest) -> nn.Module:
    """Return the torch model ``request`` names: loaded, freshly built, or the two members combined."""
    from pixelwise.checkpoint import load_model
    from pixelwise.models.registry import create_model

    if request.checkpoint is not None:
        return load_model(request.checkpoint)
    if request.model is not None:
        model = create_model(request.model, num_classes=request.num_classes, width=request.width)
        model.class_names = None
        return model
    from pixelwise.models.assemble import build_edeconvnet

    return build_edeconvnet(
        load_model(request.fcn), load_model(request.deconvnet), mode=request.ensemble_mode,
        fcn_source=request.fcn, deconvnet_source=request.deconvnet,
    )


def _cached_engine(request: ModelRequest) -> PreparedModel | None:
    """Return the engine cache's ONNX Runtime engine of the checkpoint when ``auto`` would run it
    (fp32 on the CPU), or its accepted int8 engine for ``int8``, and the file is unchanged since it
    was stored: the checkpoint is then not loaded at all. None otherwise (the usual path decides;
    for a refused int8 engine, it says so and runs fp32)."""
    if (request.checkpoint is None or request.engine not in ("auto", "int8") or request.precision != "fp32"
            or request.device.type != "cpu"):
        return None
    from pixelwise.fast.engine_cache import entry_for_checkpoint

    entry = entry_for_checkpoint(request.checkpoint, "onnxruntime" if request.engine == "auto" else "int8")
    if entry is None:
        return None
    try:
        return load_onnx_model(entry, optimized=True)
    except PixelwiseError:
        return None  # unusable: the usual path rebuilds it


def warm_engine_cache(request: ModelRequest, prepared: PreparedModel) -> float | None:
    """After a run whose ``auto`` engine had no cached ONNX graph for this FCN checkpoint, export
    it into the engine cache (once per checkpoint), so that later runs take ONNX Runtime, the
    faster engine, without paying the export. Return the seconds the export took, or None when
    nothing was stored (not needed, or already there)."""
    key = prepared.cache_key  # None: no ONNX Runtime for it (cache off, no onnx, fixed size)
    if request.engine != "auto" or prepared.engine != "channels_last" or key is None:
        return None
    if request.checkpoint is None or str(request.checkpoint).endswith(".onnx"):
        return None
    from pixelwise.checkpoint import load_model
    from pixelwise.fast.engine_cache import has_entry, remember_checkpoint

    if has_entry(key):
        return None
    model = load_model(request.checkpoint).eval()  # the run's own copy was rewritten in place (channels_last)
    start = time.perf_counter()
    prepare_for_inference(model, engine="onnxruntime", copy=False)
    remember_checkpoint(request.checkpoint, key)
    return time.perf_counter() - start
