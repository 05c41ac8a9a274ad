"""Fast inference: turn a built model into a ready-to-call engine.

``prepare_for_inference(model, engine=...)`` returns a :class:`PreparedModel`: call it with
``(N, 3, H, W)`` float images (any layout/dtype/device) and get ``(N, C, H, W)`` float32 logits
on the input's device. Engines (each applies the exact rewrites of :mod:`pixelwise.fast`):

==================  ==========================================================================
``plain``           the model as built, eval mode (the reference path)
``eager``           batch norm folded, fc6/deconv-fc6 as matrix products; fp32, NCHW
``channels_last``   ``eager`` + channels_last weights and activations (oneDNN's fast layout)
``bf16``            ``channels_last`` with bf16 weights/activations (CPUs with native bf16)
``onnxruntime``     batch norm folded, exported (pixelwise.weights.onnx_export), run by ONNX
                    Runtime (fp32, CPU)
``cuda``            ``channels_last`` on CUDA under bf16 autocast (AMP)
``auto``            the fastest fp32 engine measured for the model's family and workload
                    (:data:`AUTO_ENGINES`, benchmarks/README.md), or ``bf16``/``cuda``
                    when ``precision="bf16"`` / the device is CUDA
==================  ==========================================================================

Tolerances (tested in tests/test_optimize.py, relative to the largest |logit|): ``eager``,
``channels_last`` 1e-5; ``onnxruntime`` 1e-4; ``bf16`` a few 1e-2 with argmax agreement measured
(benchmarks/README.md).
"""

from __future__ import annotations

import copy as _copy
import contextlib
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.errors import PixelwiseError
from pixelwise.fast.fc import use_fc_matmul
from pixelwise.fast.fold import fold_batchnorm
from pixelwise.runtime import cpu_supports_bf16, resolve_device

ENGINES = ("auto", "plain", "eager", "channels_last", "bf16", "onnxruntime", "cuda")
"""Engine names accepted by :func:`prepare_for_inference`."""

# The default fp32 CPU engine per model family, chosen from `pixelwise bench` measurements on the
# project's 2-core CPU (benchmarks/README.md, "Default engines"). channels_last is exact to 1e-5,
# needs no export step and is the fastest fp32 eager layout for both families; for DeconvNet it
# also beats ONNX Runtime (whose transposed convolutions are slow). For FCN, ONNX Runtime is
# faster per image but its export + session cost (~15 s for FCN-8s) pays off only over many
# images: callers that know they will run at least ORT_MIN_IMAGES images pass ``images=``.
AUTO_ENGINES: dict[str, str] = {"fcn": "channels_last", "deconvnet": "channels_last"}
AUTO_ENGINES_MANY: dict[str, str] = {"fcn": "onnxruntime", "deconvnet": "channels_last"}
ORT_MIN_IMAGES = 50

# metadata copied from the model onto the engine, so callers can use either interchangeably
_META = ("num_classes", "input_convention", "class_names", "pixelwise_spec", "input_size", "proposal_pad")


def model_family(model: nn.Module) -> str:
    """Return ``"fcn"``, ``"deconvnet"``, ``"ensemble"`` or ``"other"`` for a model instance."""
    from pixelwise.models.deconvnet import DeconvNet
    from pixelwise.models.ensemble import EDeconvNet
    from pixelwise.models.fcn import FCN

    if isinstance(model, EDeconvNet):
        return "ensemble"
    if isinstance(model, DeconvNet):
        return "deconvnet"
    if isinstance(model, FCN):
        return "fcn"
    return "other"


def _pad_to_proposal(x: torch.Tensor, min_side: int) -> tuple[torch.Tensor, int, int]:
    """Pad ``x`` bottom/right to sides that are multiples of 32 and >= ``min_side`` (DeconvNet's
    ``input_size``)."""
    height, width = x.shape[-2:]
    pad_h = max(min_side, height + (-height) % 32) - height
    pad_w = max(min_side, width + (-width) % 32) - width
    return F.pad(x, (0, pad_w, 0, pad_h)), height, width


class PreparedModel(nn.Module):
    """A model prepared by :func:`prepare_for_inference`.

    ``self(x)``: ``(N, 3, H, W)`` images -> ``(N, C, H, W)`` float32 logits on ``x``'s device.
    Carries the original model's ``num_classes``, ``input_convention``, ``class_names`` and
    ``pixelwise_spec``, plus ``engine`` (its name) and ``inner`` (the module that runs). For a
    DeconvNet, :meth:`forward_any_size` pads and crops like ``DeconvNet.forward_any_size``; for an
    EDeconvNet, ``fcn`` / ``deconvnet`` / ``member_logits`` reach the prepared members.
    """

    def __init__(
        self,
        inner: nn.Module,
        *,
        engine: str,
        family: str,
        device: torch.device,
        dtype: torch.dtype = torch.float32,
        channels_last: bool = False,
        autocast_dtype: torch.dtype | None = None,
        convert_input: bool = True,
        meta: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.inner = inner
        self.engine = engine
        self.family = family
        self.device = device
        self.dtype = dtype
        self.channels_last = channels_last
        self.autocast_dtype = autocast_dtype
        self.convert_input = convert_input
        for key, value in (meta or {}).items():
            setattr(self, key, value)

    def __getattr__(self, name: str):
        # nn.Module resolves parameters/submodules; everything else falls through to the inner
        # model (e.g. an ensemble's prepared ``fcn`` / ``deconvnet`` members)
        try:
            return super().__getattr__(name)
        except AttributeError:
            inner = self._modules.get("inner")
            if inner is None:
                inner = self.__dict__.get("inner")  # a non-Module engine (ONNX Runtime session)
            if inner is None or name.startswith("_"):
                raise
            return getattr(inner, name)

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

    def forward_any_size(self, x: torch.Tensor) -> torch.Tensor:
        """DeconvNet on any input size: pad to a valid size, run, crop back to ``(N, C, H, W)``."""
        if self.family != "deconvnet":
            return self.forward(x)
        from pixelwise.models.deconvnet import PROPOSAL_SIZE

        padded, height, width = _pad_to_proposal(x, getattr(self, "input_size", PROPOSAL_SIZE))
        return self.forward(padded)[..., :height, :width]

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


def resolve_engine(
    model: nn.Module,
    engine: str = "auto",
    *,
    precision: str = "fp32",
    device: str | torch.device = "cpu",
    images: int | None = None,
) -> str:
    """Return the concrete engine name that ``engine`` means for this model, precision, device
    and expected number of images (see :data:`AUTO_ENGINES`, :data:`ORT_MIN_IMAGES`)."""
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    _check_engine(engine, precision, dev)
    if engine != "auto":
        return engine
    if dev.type == "cuda":
        return "cuda"
    if precision == "bf16":
        _check_engine("bf16", precision, dev)
        return "bf16"
    family = model_family(model)
    if images is not None and images >= ORT_MIN_IMAGES:
        from pixelwise.fast.onnx import onnxruntime_available

        if onnxruntime_available():
            return AUTO_ENGINES_MANY.get(family, "channels_last")
    return AUTO_ENGINES.get(family, "channels_last")


def prepare_for_inference(
    model: nn.Module,
    *,
    engine: str = "auto",
    precision: str = "fp32",
    device: str | torch.device = "cpu",
    images: int | None = None,
    copy: bool = True,
    threads: int | None = None,
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
    """
    dev = device if isinstance(device, torch.device) else resolve_device(device)
    name = resolve_engine(model, engine, precision=precision, device=dev, images=images)
    family = model_family(model)
    meta = {k: getattr(model, k) for k in _META if hasattr(model, k)}
    if family == "ensemble":
        return _prepare_ensemble(model, engine, precision, dev, images, copy, threads, meta)
    work = _copy.deepcopy(model) if copy else model
    work.eval()
    for p in work.parameters():
        p.requires_grad_(False)
    if name == "plain":
        return PreparedModel(work.to(dev), engine=name, family=family, device=dev, meta=meta)
    fold_batchnorm(work)
    if name == "onnxruntime":
        from pixelwise.fast.onnx import onnx_engine

        session = onnx_engine(work, threads=threads)
        return PreparedModel(session, engine=name, family=family, device=torch.device("cpu"), meta=meta)
    if name == "eager":
        use_fc_matmul(work)
        return PreparedModel(work, engine=name, family=family, device=dev, meta=meta)
    work = work.to(device=dev, memory_format=torch.channels_last)
    if name == "bf16":
        work = work.to(torch.bfloat16)
    use_fc_matmul(work)  # after the layout change: the GEMM layers keep contiguous weights
    if name == "channels_last":
        return PreparedModel(work, engine=name, family=family, device=dev, channels_last=True, meta=meta)
    if name == "bf16":
        return PreparedModel(
            work, engine=name, family=family, device=dev, dtype=torch.bfloat16, channels_last=True, meta=meta
        )
    # cuda: fp32 weights, AMP autocast (bf16 where the GPU supports it, else fp16)
    amp = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return PreparedModel(
        work, engine=name, family=family, device=dev, channels_last=True, autocast_dtype=amp, meta=meta
    )


def _prepare_ensemble(model, engine, precision, dev, images, copy, threads, meta) -> PreparedModel:
    """Prepare each EDeconvNet member with its own engine; combine their fp32 scores."""
    from pixelwise.models.ensemble import EDeconvNet

    kwargs = dict(engine=engine, precision=precision, device=dev, images=images, copy=copy, threads=threads)
    fcn = prepare_for_inference(model.fcn, **kwargs)
    deconv = prepare_for_inference(model.deconvnet, **kwargs)
    shell = EDeconvNet(fcn, deconv, mode=model.mode).eval()
    name = f"fcn:{fcn.engine}+deconvnet:{deconv.engine}"
    return PreparedModel(shell, engine=name, family="ensemble", device=dev, convert_input=False, meta=meta)
