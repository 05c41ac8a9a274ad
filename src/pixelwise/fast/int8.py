"""The int8 engine: a model's graph quantized after training by ONNX Runtime.

Static post-training quantization in ONNX Runtime's QDQ format: int8 weights with one scale per
output channel, uint8 activations whose ranges are the min/max over a calibration set (the
network inputs of a few images the model was trained on, :class:`Calibration`). Steps of
:func:`quantize_model`, on a copy of the model:

1. exact rewrites: batch norm folded (:mod:`pixelwise.fast.fold`), stride-1 transposed
   convolutions as convolutions (:mod:`pixelwise.fast.deconv`: DeconvNet's decoder, which ONNX
   Runtime cannot run in int8 as ``ConvTranspose``);
2. the fp32 graph exported as for the ``onnxruntime`` engine (:mod:`pixelwise.fast.onnx`);
3. ONNX Runtime's quantization pre-processing (shape inference and graph optimisation; without it
   int8 ran only x1.1 faster than fp32 on the issue's CPU, with it x3.7);
4. calibration, one input at a time (memory stays that of one forward pass), and quantization of
   every operator ONNX Runtime quantizes (convolutions, matrix products, ReLU, max-pooling, crops)
   but transposed convolutions (:data:`FLOAT_OPS`), in every part of the network except those
   :class:`QuantSettings` keeps in float (the class scorers by default; benchmarks/README.md has
   what each part costs in accuracy and gains in time). Unpooling (a scatter) has no int8 form and
   stays float.

The result is kept in the engine cache like the fp32 graph; its key adds the calibration's digest
and the settings (:func:`int8_key`). The accuracy guard (agreement with the fp32 model on held-out
images) lives with the inference code: :mod:`pixelwise.inference.int8`.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import logging
import shutil
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from pixelwise.errors import PixelwiseError
from pixelwise.models.base import Family, ModelInterface

PARTS = ("encoder", "scores", "upsampling", "decoder")
"""Parts of a network that :class:`QuantSettings` can keep in float: ``encoder`` (VGG16 with fc6
and fc7), ``scores`` (the 1x1 class scorers), ``upsampling`` (FCN's transposed convolutions) and
``decoder`` (DeconvNet's deconv-fc6 and transposed convolutions)."""

FLOAT_OPS = ("ConvTranspose",)
"""Operator types never quantized: ONNX Runtime has no int8 ``ConvTranspose`` kernel on the CPU
(quantizing FCN's upsampling made FCN-8s 500x500 x2 slower: 969 vs 472 ms)."""

INT8_META = "int8"
"""Metadata key (under ``pixelwise.``) of an int8 graph: its calibration and settings."""

INT8_GUARD_META = "int8_guard"
"""Metadata key (under ``pixelwise.``) of the accuracy guard's verdict, in a file ``pixelwise export
--int8`` wrote."""

QUANT_FORMAT = 1  # bump when the quantization recipe changes: old cache entries then miss

CALIBRATIONS = ("minmax", "percentile", "entropy")
"""How activation ranges come from the calibration inputs: their min and max, the 99.999th
percentile of |x| (outliers clipped) or the range that minimises the KL divergence (ONNX Runtime's
calibrators)."""


@dataclass(frozen=True)
class QuantSettings:
    """How a graph is quantized: which parts stay float (by default the 1x1 class scorers, whose
    outputs are the logits: quantized to 256 levels, close labels flipped on 2 % of CamVid's pixels
    for FCN-8s instead of 1 %, for 1.5 % of the time), weight scales per output channel, and how
    activation ranges are calibrated (min/max: percentile and entropy agreed no better on CamVid)."""

    float_parts: tuple[str, ...] = ("scores",)
    per_channel: bool = True
    calibration: str = "minmax"

    def __post_init__(self) -> None:
        bad = [p for p in self.float_parts if p not in PARTS]
        if bad:
            raise PixelwiseError(f"unknown network part {', '.join(bad)}; valid: {', '.join(PARTS)}")
        if self.calibration not in CALIBRATIONS:
            raise PixelwiseError(f"unknown calibration {self.calibration!r}; valid: {', '.join(CALIBRATIONS)}")

    def to_dict(self) -> dict:
        """Return the settings as JSON-ready values (part of the engine-cache key)."""
        return {"float_parts": sorted(self.float_parts), "per_channel": self.per_channel,
                "calibration": self.calibration, "activations": "uint8", "weights": "int8", "format": "QDQ",
                "recipe": QUANT_FORMAT}


@dataclass(frozen=True)
class Calibration:
    """The network inputs an int8 graph's activation ranges come from: ``(1, 3, H, W)`` float32
    arrays, exactly as the network sees them (normalised; proposal crops for DeconvNet), and where
    they came from (``source``, e.g. ``camvid/train, 8 images``)."""

    inputs: tuple[np.ndarray, ...]
    source: str = "given inputs"
    images: int = 0
    _digest: list = field(default_factory=list, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.inputs:
            raise PixelwiseError(f"calibration set {self.source!r} holds no network input")

    @classmethod
    def from_batches(cls, batches: Sequence, *, source: str = "given inputs", images: int = 0) -> "Calibration":
        """Return the calibration of ``(N, 3, H, W)`` batches (tensors or arrays), split into
        single inputs (the ranges are the same; memory is one input's)."""
        inputs = []
        for batch in batches:
            array = np.asarray(batch.detach().cpu() if hasattr(batch, "detach") else batch, dtype=np.float32)
            inputs += [np.ascontiguousarray(array[i : i + 1]) for i in range(array.shape[0])]
        return cls(tuple(inputs), source, images or len(batches))

    @property
    def digest(self) -> str:
        """A hex digest of every input's shape and bytes (part of the engine-cache key)."""
        if not self._digest:
            h = hashlib.sha1(usedforsecurity=False)
            for array in self.inputs:
                h.update(f"{array.shape}|".encode())
                h.update(memoryview(np.ascontiguousarray(array, dtype=np.float32)).cast("B"))
            self._digest.append(h.hexdigest())
        return self._digest[0]

    def record(self) -> dict:
        """Return what is stored with the engine: source, images, inputs, digest."""
        return {"source": self.source, "images": self.images, "inputs": len(self.inputs), "digest": self.digest}


def node_part(module_path: str, model: ModelInterface) -> str:
    """Return the part (:data:`PARTS`) of the layer at ``module_path`` (``backbone.conv1_1``)."""
    prefix = model.backbone_prefix
    if prefix and (module_path == prefix or module_path.startswith(prefix + ".")):
        return "encoder"
    if module_path in model.score_layers:
        return "scores"
    return "decoder" if model.family == Family.DECONVNET else "upsampling"


def _module_path(node_name: str) -> str:
    # the TorchScript exporter names a node after its module: "/backbone/conv1_1/Conv"
    return ".".join(node_name.strip("/").split("/")[:-1])


class _Reader:
    """ONNX Runtime's calibration data reader over a :class:`Calibration`; ``set_range`` lets
    the calibrator take one input at a time (``CalibStridedMinMax``)."""

    def __init__(self, calibration: Calibration, input_name: str) -> None:
        self.inputs, self.name = calibration.inputs, input_name
        self.set_range(0, len(self.inputs))

    def __len__(self) -> int:
        return len(self.inputs)

    def set_range(self, start_index: int, end_index: int) -> None:
        self._it = iter(self.inputs[start_index:end_index])

    def get_next(self) -> dict | None:
        array = next(self._it, None)
        return None if array is None else {self.name: array}


@contextlib.contextmanager
def _quiet():
    """Silence ONNX Runtime's quantization tool (its shape-inference and pre-processing log lines,
    the histogram calibrators' prints)."""
    root = logging.getLogger()
    level = root.level
    try:
        root.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def quantize_graph(raw: Path, out: Path, calibration: Calibration, settings: QuantSettings,
                   part_of: Callable[[str], str], *, workdir: Path) -> None:
    """Write the int8 graph of the fp32 graph ``raw`` to ``out`` (pre-processed, calibrated on
    ``calibration``, nodes of the float parts excluded; ``part_of(module_path)`` names a node's part)."""
    import onnx
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.registry import QDQRegistry
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from pixelwise.weights.onnx_export import INPUT_NAME

    pre = workdir / "pre.onnx"
    with _quiet():
        # symbolic shape inference cannot follow FCN's crops on dynamic sizes; ONNX's own can
        quant_pre_process(str(raw), str(pre), skip_symbolic_shape=True)
        nodes = onnx.load(str(pre), load_external_data=False).graph.node
        excluded = [n.name for n in nodes if part_of(_module_path(n.name)) in settings.float_parts]
        # every operator ONNX Runtime quantizes in QDQ form but FLOAT_OPS: with only Conv, each
        # ReLU between two int8 convs ran in float (dequantize, ReLU, quantize: x1.7 instead of x3.8)
        ops = [op for op in QDQRegistry if op not in FLOAT_OPS]
        quantize_static(
            str(pre), str(out), _Reader(calibration, INPUT_NAME), quant_format=QuantFormat.QDQ,
            op_types_to_quantize=ops, per_channel=settings.per_channel,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8, nodes_to_exclude=excluded,
            calibrate_method={"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
                              "entropy": CalibrationMethod.Entropy}[settings.calibration],
            extra_options={"CalibStridedMinMax": 1},  # one input at a time (every calibrator merges)
        )


def rewrite_for_int8(model: ModelInterface) -> None:
    """Apply the exact rewrites the int8 graph is exported from, in place (eval mode expected):
    batch norm folded, stride-1 transposed convolutions as convolutions."""
    from pixelwise.fast.deconv import transposed_as_conv
    from pixelwise.fast.fold import fold_batchnorm

    fold_batchnorm(model)
    transposed_as_conv(model)


def quantize_model(model: ModelInterface, calibration: Calibration, settings: QuantSettings, path: Path) -> None:
    """Write ``model``'s int8 graph to ``path``: the fp32 graph of ``model`` (already rewritten by
    :func:`rewrite_for_int8`) exported, pre-processed and quantized, with the calibration's record
    and the settings in its metadata (``pixelwise.int8``)."""
    from pixelwise.fast.onnx import export_graph
    from pixelwise.weights.onnx_export import META_PREFIX, append_metadata

    with tempfile.TemporaryDirectory(prefix="pixelwise-int8-") as folder:
        raw = Path(folder) / "fp32.onnx"
        export_graph(model, raw)
        quantize_graph(raw, path, calibration, settings, lambda name: node_part(name, model), workdir=Path(folder))
    record = {"calibration": calibration.record(), "settings": settings.to_dict()}
    append_metadata(path, {f"{META_PREFIX}{INT8_META}": json.dumps(record)})


def base_key(model: ModelInterface) -> str:
    """Return the key of ``model``'s weights for int8 engines (computed before any rewrite): the
    entry :func:`int8_key` and the choice record (:func:`save_choice`) derive from it."""
    from pixelwise.fast.engine_cache import engine_key
    from pixelwise.fast.onnx import ENGINE_EXPORTER, export_side

    return engine_key(model, engine="int8", exporter=ENGINE_EXPORTER, side=export_side(model))


def int8_key(base: str, calibration: Calibration, settings: QuantSettings) -> str:
    """Return the engine-cache key of the int8 graph of the model whose :func:`base_key` is ``base``,
    for ``calibration`` (its digest) and ``settings``."""
    from pixelwise.cache import settings_key

    return settings_key({"base": base, "calibration": calibration.digest, "quant": settings.to_dict()}, length=24)


def _choice_path(base: str) -> Path:
    from pixelwise.cache import cache_dir

    return cache_dir() / "engines" / f"int8-{base}.json"


def save_choice(base: str, record: dict) -> None:
    """Store which int8 engine the model ``base`` runs, and its guard's verdict: ``record`` holds
    ``key`` (the entry; None when refused), ``accepted``, ``guard`` and ``calibration``."""
    from pixelwise.fast.engine_cache import write_json

    write_json(_choice_path(base), record)


def load_choice(base: str) -> dict | None:
    """Return the record :func:`save_choice` stored for the model ``base`` (None: none, or the
    engine cache is off)."""
    from pixelwise.fast.engine_cache import cache_enabled, read_json

    return read_json(_choice_path(base)) if cache_enabled() else None


def int8_engine(model: ModelInterface, calibration: Calibration, *, settings: QuantSettings | None = None,
                threads: int | None = None, key: str | None = None, keep: Path | None = None):
    """Return an ``OnnxModel`` running ``model``'s int8 graph (``model`` is rewritten in place).

    With ``key`` (:func:`int8_key`) the graph comes from the engine cache, built and stored there
    on a miss; the returned object's ``cache_status`` says ``hit``, ``built`` or ``off``. ``keep``:
    also write the portable graph (before ONNX Runtime optimises it for this CPU) there; the graph
    is then built even when the cache holds it."""
    from pixelwise.fast.engine_cache import cache_enabled, load_or_build
    from pixelwise.fast.onnx import onnxruntime_available
    from pixelwise.weights.onnx_engine import OnnxModel

    if not onnxruntime_available():
        raise PixelwiseError("engine int8 needs the onnx extra: pip install 'pixelwise[onnx]'")
    settings = settings or QuantSettings()
    rewrite_for_int8(model)

    def load(path: Path, **kwargs) -> OnnxModel:
        return OnnxModel(path, threads=threads, **kwargs)

    def build(path: Path) -> None:
        quantize_model(model, calibration, settings, path)
        if keep is not None:
            shutil.copyfile(path, keep)

    if key is not None and cache_enabled():
        session, built = load_or_build(key, build, load, rebuild=keep is not None)
        session.cache_status = "built" if built else "hit"
        return session
    with tempfile.TemporaryDirectory(prefix="pixelwise-int8-") as folder:
        path = Path(folder) / "int8.onnx"
        build(path)
        session = load(path)
    session.cache_status = "off"
    return session


NO_ENGINE_HINT = ("build one with `pixelwise export --int8 --checkpoint CKPT -o FILE.onnx` (it calibrates the "
                  "model on its training images and checks it against fp32)")


def refusal_line(record: dict) -> str:
    """One line saying why the guard refused a model's int8 engine (from its choice record)."""
    guard = record.get("guard") or {}
    agreement, minimum = guard.get("agreement"), record.get("min_agreement")
    if agreement is None or minimum is None:
        return "the int8 engine of this model was refused by its accuracy check"
    return (f"the int8 engine of this model was refused: label agreement with fp32 {100 * agreement:.2f} % < "
            f"{100 * minimum:.2f} % on {guard.get('source', 'held-out images')}")


def chosen_engine(base: str, *, threads: int | None = None):
    """Return ``(session, record)``: the int8 engine ``pixelwise export --int8`` chose for the model
    whose :func:`base_key` is ``base`` (an ``OnnxModel``; None when its guard refused it) and the
    choice record. A model without one is a one-line :class:`PixelwiseError` saying how to build it."""
    from pixelwise.fast.engine_cache import entry_path
    from pixelwise.weights.onnx_engine import OnnxModel

    record = load_choice(base)
    if record is None:
        raise PixelwiseError(f"no int8 engine for this model yet: {NO_ENGINE_HINT}")
    if not record.get("accepted"):
        return None, record
    path = entry_path(str(record.get("key")))
    if not path.is_file():
        raise PixelwiseError(f"the int8 engine of this model is no longer in the engine cache: {NO_ENGINE_HINT}")
    session = OnnxModel(path, optimized=True, threads=threads)
    session.cache_status = "hit"
    return session, record
