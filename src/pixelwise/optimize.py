"""Fast inference: turn a built model into a ready-to-call engine.

``prepare_for_inference(model, engine=...)`` returns a :class:`PreparedModel`: call it with
``(N, 3, H, W)`` float images (any layout/dtype/device) and get ``(N, C, H, W)`` float32 logits
on the input's device. Engines (each applies the exact rewrites of :mod:`pixelwise.fast`):

==================  ==========================================================================
``plain``           the model as built, eval mode (the reference path)
``eager``           batch norm folded, fc6/deconv-fc6 as matrix products; fp32, NCHW
``channels_last``   ``eager`` + channels_last weights and activations (oneDNN's fast layout)
``bf16``            ``channels_last`` with bf16 weights/activations (CPUs with native bf16)
``onnxruntime``     batch norm folded, exported (pixelwise.weights.onnx_export; the graph kept
                    in the engine cache, pixelwise.fast.engine_cache), run by ONNX Runtime
                    (fp32, CPU)
``int8``            batch norm folded, DeconvNet's stride-1 transposed convs as convs, exported
                    and statically quantized by ONNX Runtime (int8 per-channel weights, uint8
                    activations calibrated on the model's training images; pixelwise.fast.int8),
                    kept in the engine cache; built by ``pixelwise export --int8``, which also
                    checks it against fp32 (pixelwise.inference.int8)
``cuda``            ``channels_last`` on CUDA under bf16 autocast (AMP)
``auto``            the fastest fp32 engine measured for the model's family and workload
                    (:data:`AUTO_ENGINES`, benchmarks/README.md), or ``bf16``/``cuda``
                    when ``precision="bf16"`` / the device is CUDA
==================  ==========================================================================

Tolerances (tested in tests/test_optimize.py, relative to the largest |logit|): ``eager``,
``channels_last`` 1e-5; ``onnxruntime`` 1e-4; ``bf16`` a few 1e-2 with argmax agreement measured
(benchmarks/README.md); ``int8``: label agreement, checked per model by its guard.

An exported ``.onnx`` file (``pixelwise export``, or an engine-cache entry) becomes the same kind of
engine through :func:`load_onnx_model`.
"""

from __future__ import annotations

import copy as _copy
import contextlib
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

from pixelwise.errors import PixelwiseError
from pixelwise.fast.fc import use_fc_matmul
from pixelwise.fast.fold import fold_batchnorm
from pixelwise.fast.int8 import Calibration, QuantSettings
from pixelwise.models.base import Family, ModelInterface, SizeRule, as_model
from pixelwise.runtime import cpu_supports_bf16, resolve_device

ENGINES = ("auto", "plain", "eager", "channels_last", "bf16", "onnxruntime", "int8", "cuda")
"""Engine names accepted by :func:`prepare_for_inference`."""

# The default fp32 CPU engine per model family, chosen from `pixelwise bench` measurements on the
# project's 2-core CPU (benchmarks/README.md, "Default engines"). channels_last is exact to 1e-5,
# needs no export step and is the fastest fp32 eager layout for both families; for DeconvNet it
# also beats ONNX Runtime (whose transposed convolutions are slow). For FCN, ONNX Runtime is
# faster per image but its export (~10 s for FCN-8s) pays off only over many images: callers that
# know they will run at least ORT_MIN_IMAGES images pass ``images=``, and once the graph is in the
# engine cache (a later process) the export is gone and ONNX Runtime wins from the first image.
AUTO_ENGINES: dict[str, str] = {Family.FCN: "channels_last", Family.DECONVNET: "channels_last"}
AUTO_ENGINES_MANY: dict[str, str] = {Family.FCN: "onnxruntime", Family.DECONVNET: "channels_last"}
ORT_MIN_IMAGES = 50


class PreparedModel(ModelInterface, nn.Module):
    """A model prepared by :func:`prepare_for_inference`.

    ``self(x)``: ``(N, 3, H, W)`` images -> ``(N, C, H, W)`` float32 logits on ``x``'s device.
    It answers the model interface (:class:`pixelwise.models.base.ModelInterface`) with the
    answers of ``source``, the model it was prepared from (its card, ``num_classes``,
    ``input_size``, ``proposal_pad``, ``dynamic_trace`` and size rule; its ``family`` unless
    ``family`` says otherwise), plus ``engine`` (its name) and ``inner`` (the module that runs).
    For an EDeconvNet, ``fcn`` / ``deconvnet`` / ``member_logits`` / ``mode`` reach the prepared
    members.
    """

    def __init__(
        self,
        inner: Any,
        *,
        engine: str,
        source: ModelInterface,
        device: torch.device,
        family: Family | None = None,
        dtype: torch.dtype = torch.float32,
        channels_last: bool = False,
        autocast_dtype: torch.dtype | None = None,
        convert_input: bool = True,
    ) -> None:
        super().__init__()
        self.inner = inner
        self.engine = engine
        self.family = source.family if family is None else Family(family)
        self.device = device
        self.dtype = dtype
        self.channels_last = channels_last
        self.autocast_dtype = autocast_dtype
        self.convert_input = convert_input
        self.card = source.card
        self.num_classes: int | None = source.num_classes
        self.input_size: int | None = source.input_size
        self.proposal_pad: str | None = source.proposal_pad
        self._size_rule: SizeRule = source.size_rule
        self._dynamic_trace = source.dynamic_trace
        self.cache_key: str | None = None  # the engine-cache key, when ONNX Runtime could run the model

    @property
    def size_rule(self) -> SizeRule:
        """The input sizes the engine takes (those of the model it was prepared from)."""
        return self._size_rule

    @property
    def dynamic_trace(self) -> bool:
        """Whether one trace serves every valid size (as for the model it was prepared from)."""
        return self._dynamic_trace

    @property
    def _size_subject(self) -> str:
        return type(self.inner).__name__

    def _ensemble(self) -> nn.Module:
        if self.family != Family.ENSEMBLE:
            raise AttributeError(f"a prepared {self.family} model has no ensemble members")
        return self.inner

    @property
    def fcn(self) -> "PreparedModel":
        """An ensemble's prepared FCN-8s."""
        return self._ensemble().fcn

    @property
    def deconvnet(self) -> "PreparedModel":
        """An ensemble's prepared DeconvNet."""
        return self._ensemble().deconvnet

    @property
    def mode(self) -> str:
        """An ensemble's combination, ``mean`` or ``product``."""
        return self._ensemble().mode

    def member_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """An ensemble's ``(fcn_logits, deconvnet_logits)``, each ``(N, C, H, W)`` float32."""
        return self._ensemble().member_logits(x)

    def _convert(self, x: torch.Tensor) -> torch.Tensor:
        if not self.convert_input:
            return x
        fmt = torch.channels_last if self.channels_last else torch.contiguous_format
        return x.to(device=self.device, dtype=self.dtype, memory_format=fmt)

    def _context(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    def _run(self, fn, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), self._context():
            out = fn(self._convert(x))
        return out.to(device=x.device, dtype=torch.float32).contiguous()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``(N, C, H, W)`` float32 logits for ``(N, 3, H, W)`` images."""
        return self._run(self.inner, x)

    def extra_repr(self) -> str:
        return f"engine={self.engine}, family={self.family}, device={self.device}"


def _check_engine(engine: str, precision: str, device: torch.device) -> None:
    if engine not in ENGINES:
        raise PixelwiseError(f"unknown engine {engine!r}; valid engines: {', '.join(ENGINES)}")
    if precision not in ("fp32", "bf16"):
        raise PixelwiseError(f"unknown precision {precision!r} for inference; use fp32 or bf16")
    if engine == "cuda" and device.type != "cuda":
        raise PixelwiseError("engine cuda needs a CUDA device; CUDA is not available here, use --engine auto")
    if engine not in ("auto", "cuda") and device.type == "cuda":
        raise PixelwiseError(f"engine {engine} runs on the CPU; with --device cuda use --engine cuda or auto")
    if engine == "bf16" and not cpu_supports_bf16():
        raise PixelwiseError(
            "engine bf16 needs a CPU with native bf16 (AVX512-BF16 or AMX), which this one lacks; "
            "use --precision fp32"
        )
    if precision == "bf16" and engine in ("plain", "eager", "channels_last", "onnxruntime"):
        raise PixelwiseError(f"engine {engine} is fp32 only; use --engine bf16 (or auto) for --precision bf16")
    if precision == "bf16" and engine == "int8":
        raise PixelwiseError("engine int8 computes in int8, not bf16: drop --precision bf16")


def resolve_engine(
    model: ModelInterface | nn.Module,
    engine: str = "auto",
    *,
    precision: str = "fp32",
    device: str | torch.device = "cpu",
    images: int | None = None,
    cached: bool = False,
) -> str:
    """Return the concrete engine name that ``engine`` means for this model, precision, device
    and expected number of images (see :data:`AUTO_ENGINES`, :data:`ORT_MIN_IMAGES`). ``cached``:
    the engine cache already holds this model's ONNX graph, so ONNX Runtime costs no export and
    ``auto`` takes it for FCN whatever the number of images."""
    model = as_model(model)
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    _check_engine(engine, precision, dev)
    if engine != "auto":
        return engine
    if dev.type == "cuda":
        return "cuda"
    if precision == "bf16":
        _check_engine("bf16", precision, dev)
        return "bf16"
    if (cached or (images is not None and images >= ORT_MIN_IMAGES)) and model.dynamic_trace:
        from pixelwise.fast.onnx import onnxruntime_available

        if onnxruntime_available():
            return AUTO_ENGINES_MANY.get(model.family, "channels_last")
    return AUTO_ENGINES.get(model.family, "channels_last")


def _has_cache_entry(key: str) -> bool:
    from pixelwise.fast.engine_cache import has_entry

    return has_entry(key)


def onnx_cache_key(model: ModelInterface, engine: str, precision: str, device: torch.device) -> str | None:
    """Return the engine-cache key of ``model`` when ONNX Runtime may run it (``engine`` is
    ``onnxruntime``, or ``auto`` for an FCN in fp32 on the CPU whose one trace serves every size:
    a graph traced at one size, an FCN with ``pad_input_to``, cannot serve other images) and the
    cache is on; else None (and nothing is hashed)."""
    from pixelwise.fast.engine_cache import cache_enabled, engine_key
    from pixelwise.fast.onnx import ENGINE_EXPORTER, export_side, onnxruntime_available

    candidate = engine == "onnxruntime" or (
        engine == "auto" and precision == "fp32" and device.type == "cpu" and model.dynamic_trace
        and AUTO_ENGINES_MANY.get(model.family) == "onnxruntime")
    if not (candidate and cache_enabled() and onnxruntime_available()):
        return None
    return engine_key(model, engine="onnxruntime", exporter=ENGINE_EXPORTER, side=export_side(model))


def prepare_for_inference(
    model: nn.Module,
    *,
    engine: str = "auto",
    precision: str = "fp32",
    device: str | torch.device = "cpu",
    images: int | None = None,
    copy: bool = True,
    threads: int | None = None,
    calibration: Calibration | None = None,
    quant: QuantSettings | None = None,
    keep: Path | None = None,
) -> PreparedModel:
    """Return a :class:`PreparedModel`: ``(N, 3, H, W)`` images -> ``(N, C, H, W)`` fp32 logits.

    Args:
        model: a pixelwise model (any of :func:`pixelwise.list_models`) or any image-to-logits
            module (only the layout/dtype engines apply to unknown modules).
        engine: one of :data:`ENGINES`; ``auto`` picks per family, precision and device.
        precision: ``fp32`` (default) or ``bf16`` (``auto`` then means the ``bf16`` engine on
            CPU, AMP bf16 on CUDA).
        device: ``cpu``, ``cuda[:i]`` or ``auto``.
        images: how many images the caller expects to run (None = unknown, few). With ``auto``
            and at least :data:`ORT_MIN_IMAGES`, FCN models get ONNX Runtime (its export cost
            pays off).
        copy: work on a deep copy (default), leaving ``model`` untouched. ``copy=False`` rewrites
            ``model`` in place (saves one model's memory; the model is then inference-only: its
            batch norms are folded away).
        threads: ONNX Runtime intra-op threads (default: ``torch.get_num_threads()``).
        calibration: for ``int8``, the network inputs to calibrate on: the graph is quantized
            (or taken from the engine cache). Without it ``int8`` runs the engine
            ``pixelwise export --int8`` built and checked for this model, falls back to ``auto``
            with one line when its guard refused it, and fails when there is none.
        quant: for ``int8`` with ``calibration``, what is quantized (default :class:`QuantSettings`).
        keep: for ``int8`` with ``calibration``, also write the portable int8 graph (not optimised
            for this CPU) to this path.
    """
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    model = as_model(model)  # a foreign module answers the model interface from here on
    ensemble = model.family == Family.ENSEMBLE
    if engine == "int8":
        _check_engine(engine, precision, dev)
        if not ensemble:
            return _prepare_int8(model, copy=copy, threads=threads, calibration=calibration, quant=quant, keep=keep)
        if calibration is not None:
            raise PixelwiseError("an EDeconvNet's int8 engine is its members': calibrate the FCN-8s and the "
                                 "DeconvNet one by one")
    key = None if ensemble else onnx_cache_key(model, engine, precision, dev)
    cached = key is not None and _has_cache_entry(key)
    name = resolve_engine(model, engine, precision=precision, device=dev, images=images, cached=cached)
    if ensemble:
        return _prepare_ensemble(model, engine, precision, dev, images, copy, threads)
    prepared = _prepare_single(_copy.deepcopy(model) if copy else model, name, model, dev, threads, key)
    prepared.cache_key = key
    return prepared


def load_onnx_model(path: str | Path, *, optimized: bool = False, threads: int | None = None) -> PreparedModel:
    """Return an exported ``.onnx`` model (``pixelwise export``) as a :class:`PreparedModel` run by
    ONNX Runtime on the CPU, dispatched as the FCN or DeconvNet it was exported from (an exported
    EDeconvNet is one whole-image graph, family ``generic``); its engine is ``int8`` for a
    quantized graph (``pixelwise export --int8``), else ``onnxruntime``. ``optimized``: the file is
    an engine-cache entry, already optimised by ONNX Runtime."""
    from pixelwise.fast.int8 import INT8_META
    from pixelwise.weights.onnx_engine import OnnxModel

    onnx = OnnxModel(path, optimized=optimized, threads=threads)
    engine = "int8" if INT8_META in onnx.metadata else "onnxruntime"
    return PreparedModel(onnx, engine=engine, source=onnx, family=_exported_family(onnx), device=torch.device("cpu"))


def _prepare_int8(model: ModelInterface, *, copy: bool, threads: int | None, calibration: Calibration | None,
                  quant: QuantSettings | None, keep: Path | None) -> PreparedModel:
    """The ``int8`` engine of ``model``: quantized on ``calibration`` (or taken from the cache), or,
    without it, the one ``pixelwise export --int8`` chose; ``auto`` (fp32) where its guard refused it."""
    from pixelwise.fast import int8

    if not model.dynamic_trace:
        raise PixelwiseError("engine int8 needs a model whose one graph serves every input size (this one is "
                             "fixed to its padding size); use --engine auto")
    base = int8.base_key(model)
    if calibration is None:
        session, record = int8.chosen_engine(base, threads=threads)
        if session is None:
            print(f"pixelwise: {int8.refusal_line(record)}; running fp32", file=sys.stderr)
            return prepare_for_inference(model, engine="auto", copy=copy, threads=threads)
        key = record["key"]
    else:
        settings = quant or QuantSettings()
        key = int8.int8_key(base, calibration, settings)
        work = _copy.deepcopy(model) if copy else model
        work.eval()
        session = int8.int8_engine(work, calibration, settings=settings, threads=threads, key=key, keep=keep)
    prepared = PreparedModel(session, engine="int8", source=model, device=torch.device("cpu"))
    prepared.cache_key = key
    return prepared


def _exported_family(onnx: ModelInterface) -> Family:
    """The family an exported graph runs as: its model's (its spec names it), except an EDeconvNet's
    (one whole-image graph) and a graph without a spec: :attr:`Family.GENERIC`."""
    from pixelwise.models.registry import get_entry

    name = (onnx.pixelwise_spec or {}).get("name")
    family = get_entry(name).family if name else Family.GENERIC
    return Family.GENERIC if family == Family.ENSEMBLE else family


def _prepare_single(work: ModelInterface, name: str, source: ModelInterface, dev: torch.device,
                    threads: int | None, key: str | None) -> PreparedModel:
    """Apply engine ``name``'s rewrites to ``work`` (``source`` or its copy, in place) and wrap it."""
    work.eval()
    for p in work.parameters():
        p.requires_grad_(False)
    if name == "plain":
        return PreparedModel(work.to(dev), engine=name, source=source, device=dev)
    rewrite = source.family != Family.GENERIC  # only pixelwise models name their layers; others get layout/dtype
    if rewrite:
        fold_batchnorm(work)
    if name == "onnxruntime":
        from pixelwise.fast.onnx import onnx_engine

        session = onnx_engine(work, threads=threads, key=key)
        return PreparedModel(session, engine=name, source=source, device=torch.device("cpu"))
    if name == "eager":
        if rewrite:
            use_fc_matmul(work)
        return PreparedModel(work, engine=name, source=source, device=dev)
    work = work.to(device=dev, memory_format=torch.channels_last)
    if name == "bf16":
        work = work.to(torch.bfloat16)
    if rewrite:
        use_fc_matmul(work)  # after the layout change: the GEMM layers keep contiguous weights
    if name == "channels_last":
        return PreparedModel(work, engine=name, source=source, device=dev, channels_last=True)
    if name == "bf16":
        return PreparedModel(work, engine=name, source=source, device=dev, dtype=torch.bfloat16, channels_last=True)
    # cuda: fp32 weights, AMP autocast (bf16 where the GPU supports it, else fp16)
    amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return PreparedModel(work, engine=name, source=source, device=dev, channels_last=True, autocast_dtype=amp)


def _prepare_ensemble(model: ModelInterface, engine: str, precision: str, dev: torch.device, images: int | None,
                      copy: bool, threads: int | None) -> PreparedModel:
    """Prepare each EDeconvNet member with its own engine; combine their fp32 scores."""
    kwargs = dict(engine=engine, precision=precision, device=dev, images=images, copy=copy, threads=threads)
    fcn = prepare_for_inference(model.fcn, **kwargs)
    deconv = prepare_for_inference(model.deconvnet, **kwargs)
    return ensemble_engine(model, fcn, deconv, dev)


def ensemble_engine(model: ModelInterface, fcn: PreparedModel, deconvnet: PreparedModel,
                    device: torch.device) -> PreparedModel:
    """Return the EDeconvNet ``model`` run by the prepared members ``fcn`` and ``deconvnet`` (their
    fp32 scores combined as ``model.mode`` says), e.g. each member's own int8 engine."""
    from pixelwise.models.ensemble import EDeconvNet

    shell = EDeconvNet(fcn, deconvnet, mode=model.mode).eval()
    name = f"fcn:{fcn.engine}+deconvnet:{deconvnet.engine}"
    return PreparedModel(shell, engine=name, source=model, device=device, convert_input=False)
