"""The one training configuration: a typed dataclass shared by CLI flags, YAML files and checkpoints.

Precedence when a run starts (lowest first): the dataclass defaults, the named recipe
(:mod:`pixelwise.train.recipes`), the YAML file (``--config``), the command-line flags. The fully
resolved config is written to ``config.yaml`` in the output folder and stored in every checkpoint;
``--resume`` reads it back from there (flags given on the resume command line still override it).

Every field carries its help text and choices as metadata; the ``pixelwise train`` flags are
generated from them, so a field added here is a flag, a YAML key and a checkpoint entry at once.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pixelwise.convention import PAD_COLOURS
from pixelwise.data import DATASETS
from pixelwise.errors import PixelwiseError, first_line

SAMPLINGS = ("whole", "objects", "proposals")
LR_POLICIES = ("fixed", "step", "periodic", "poly")
REDUCTIONS = ("mean", "sum")
OPTIMIZERS = ("sgd", "caffe_sgd", "adam")
BN_STATISTICS = ("pooled", "batch_mean")
LOSSES = ("cross_entropy", "focal", "dice", "cross_entropy+dice")
MEDIAN_FREQ = "median-freq"


@dataclass(frozen=True)
class ModelOption:
    """A model-builder option that has its own ``pixelwise train`` flag: its type, the family whose
    builder takes it, its help, its choices, and the value older configs stored for "the builder's
    default" (such a value is dropped when an old config is read)."""

    type: type
    family: str
    help: str
    choices: tuple | None = None
    legacy_default: Any = None


MODEL_OPTIONS: dict[str, ModelOption] = {
    "pad100": ModelOption(bool, "fcn", "conv1_1 pads by 100 as in the release (--no-pad100: pad-free, faster) "
                          "[default: true]", legacy_default=True),
    "upsampling": ModelOption(str, "fcn", "'fixed' bilinear (release) or 'learned' 2x layers (CVPR) [default: fixed]",
                              choices=("fixed", "learned"), legacy_default="fixed"),
    "dropout": ModelOption(float, "fcn", "dropout after fc6/fc7 [default: the paper's 0.5]"),
    "fc6_kernel": ModelOption(int, "fcn", "fc6 kernel side [default: 7 = VGG16's; 3 for a backbone pretrained on "
                              "96-px crops]"),
    "input_size": ModelOption(int, "deconvnet", "proposal side, a multiple of 32 [default: 224 = the paper's; fc6's "
                              "kernel is input_size/32]"),
    "caffe_bn": ModelOption(bool, "deconvnet", "the authors' Caffe BN layer (eps 1e-9, shifts initialised to 0.001) "
                            "[default: false]", legacy_default=False),
}
"""The builder options with a flag of their own (``--pad100``, ``--input-size``, ...); any other
builder argument goes through ``--model-option KEY=VALUE``. Their values live in
``TrainConfig.model_options`` and reach the model's factory unchanged."""


def lift_model_options(values: dict, *, source: str = "options", from_old_config: bool = False) -> dict:
    """Return ``values`` with the builder options given as top-level keys (``pad100: false``, as
    flags, older YAML files and checkpoints write them) moved into ``model_options``, typed.

    Given values override ``model_options``; ``from_old_config`` drops the values older configs
    wrote for "the builder's default" (every such config held all of them, whatever the model)."""
    lifted = {k: values[k] for k in MODEL_OPTIONS if k in values}
    if not lifted:
        return values
    rest = {k: v for k, v in values.items() if k not in MODEL_OPTIONS}
    options = dict(rest.get("model_options") or {})
    for key, value in lifted.items():
        option = MODEL_OPTIONS[key]
        if value is None or (from_old_config and value == option.legacy_default):
            continue
        options[key] = typed_model_option(key, value, source=source)
    rest["model_options"] = options
    return rest


def typed_model_option(key: str, value: Any, *, source: str = "options") -> Any:
    """Return ``value`` converted to the type of builder option ``key`` (other keys: as given)."""
    option = MODEL_OPTIONS.get(key)
    if option is None:
        return value
    typed = _scalar(option.type, value, key, source)
    if option.choices and typed not in option.choices:
        raise PixelwiseError(f"{_label(key, source)} must be one of {', '.join(option.choices)}, got {typed!r}")
    return typed


def _f(default: Any, help: str, *, choices: tuple | None = None, cli: bool = True) -> Any:
    """A dataclass field with CLI metadata (mutable defaults are copied per instance)."""
    meta = {"help": help, "choices": choices, "cli": cli}
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class TrainConfig:
    """Everything a training run depends on. See ``docs/training.md`` for the recipes."""

    # -- model ----------------------------------------------------------------------------------
    model: str = _f("fcn32s", "model name (see `pixelwise models`)")
    width: float = _f(1.0, "channel width multiplier (1.0 = paper-exact)")
    min_channels: int | None = _f(None, "width floor: no layer below this many channels (default 16; width 1.0 is "
                                  "unaffected)")
    model_options: dict = _f({}, "options passed straight to the model's builder, e.g. pad100: false or "
                             "input_size: 96 (see MODEL_OPTIONS; CLI: --pad100, --input-size, ... or "
                             "--model-option KEY=VALUE)", cli=False)
    deep_supervision: float = _f(0.0, "DeconvNet: weight of auxiliary losses on 1x1 class scorers after deconv-fc6 and "
                                 "every unpooling stage (0 = off, the paper; beyond the paper, see docs/reproduce.md)")
    num_classes: int | None = _f(None, "number of classes (default: the dataset's)")
    init_from: str | None = _f(None, "checkpoint whose tensors (matching name and shape) initialise the model")
    backbone_weights: str | None = _f(None, "ImageNet VGG16 weights for the backbone: a torchvision .pth or Caffe "
                                      ".caffemodel, or a name downloaded once (imagenet, vgg16-caffe: `pixelwise weights "
                                      "list`); they set the input convention")
    # -- data -----------------------------------------------------------------------------------
    dataset: str = _f("synthetic", f"dataset: {', '.join(DATASETS)}")
    data_root: str | None = _f(None, "dataset root folder (not needed for synthetic)")
    data_options: dict = _f({}, "extra dataset options, e.g. size=64 sbd_root=... (CLI: --data KEY=VALUE)",
                            cli=False)
    train_split: str = _f("train", "split to train on")
    val_split: str = _f("val", "split to validate on ('' = no validation)")
    train_limit: int | None = _f(None, "use only the first N training images")
    val_limit: int | None = _f(None, "use only the first N validation images")
    cache_data: bool = _f(False, "keep decoded training/validation samples in memory")
    convention: str = _f("caffe_bgr", "input normalisation: caffe_bgr (paper) or torchvision_rgb",
                         choices=("caffe_bgr", "torchvision_rgb"))
    sampling: str = _f("whole", "training samples: whole images, DeconvNet stage-1 'objects' or stage-2 "
                       "'proposals' crops", choices=SAMPLINGS)
    input_scale: float = _f(1.0, "resize every image by this factor before the network sees it, in training and "
                            "in inference (e.g. 0.5: CamVid's 360x480 trained at 180x240); scores are resized back and "
                            "judged at full size; checkpoints record it, so predict, eval, compare and serve apply it")
    crop_size: int | None = _f(None, "random crop side (whole) or crop side (objects/proposals; paper 224)")
    scale_range: list[float] | None = _f(None, "random rescale range MIN,MAX before cropping (default: none)")
    hflip: bool = _f(False, "random horizontal flips for whole-image sampling")
    object_enlarge: list[float] = _f([1.2, 1.5], "DeconvNet: object box enlarged by a factor drawn from MIN,MAX")
    object_resize: int | None = _f(None, "DeconvNet: enlarged box resized to this side before the random "
                                   "crop (default crop_size*250/224, i.e. 250 for 224)")
    object_min_side: int = _f(16, "DeconvNet: smallest side (source pixels) of an object crop, so tiny objects keep "
                              "some context")
    proposal_iou: list[float] = _f([0.3, 0.7], "DeconvNet stage 2: IoU range MIN,MAX of the jittered boxes "
                                   "with their ground-truth object")
    # -- optimisation ---------------------------------------------------------------------------
    recipe: str | None = _f(None, "named recipe: paper, heavy, deconvnet, demo (flags override it)")
    optimizer: str = _f("sgd", "optimiser: sgd (torch), caffe_sgd (Caffe's arithmetic: lr inside the momentum "
                        "history, weight decay / iter_size; the paper, heavy and deconvnet recipes) or adam",
                        choices=OPTIMIZERS)
    lr: float = _f(1e-4, "base learning rate")
    momentum: float = _f(0.9, "SGD momentum (Adam: beta1)")
    weight_decay: float = _f(5e-4, "weight decay (L2) of the weights")
    bias_lr_mult: float = _f(2.0, "learning-rate multiplier of biases (Caffe FCN/DeconvNet: 2)")
    bias_decay: bool = _f(False, "apply weight decay to biases too (Caffe: no)")
    norm_decay: bool = _f(False, "apply weight decay to batch-norm scales/shifts too (the DeconvNet release does)")
    loss_reduction: str = _f("mean", "'mean' over valid pixels (paper) or 'sum' over pixels per image "
                             "(heavy release)", choices=REDUCTIONS)
    ignore_index: int = _f(255, "label that is not scored")
    loss: str = _f("cross_entropy", "training loss: cross_entropy (the papers), focal, dice, or cross_entropy+dice "
                   "(beyond the papers, for imbalanced data)", choices=LOSSES)
    focal_gamma: float = _f(2.0, "focal loss: the focusing exponent gamma")
    class_weights: str | None = _f(None, "per-class loss weights: 'median-freq' (from the training set's class "
                                   "frequencies) or a list W0,W1,... (default: none, the papers)")
    batch_size: int = _f(1, "images per forward pass and process")
    iter_size: int = _f(1, "forward passes accumulated per optimiser step (Caffe iter_size)")
    steps: int = _f(1000, "optimiser steps (iterations)")
    lr_policy: str = _f("fixed", "learning-rate schedule", choices=LR_POLICIES)
    lr_steps: list[int] = _f([], "step policy: steps at which the lr is multiplied by lr_gamma (Caffe's multistep)")
    lr_stepsize: int = _f(0, "periodic policy: multiply the lr by lr_gamma every N steps (Caffe's step)")
    lr_gamma: float = _f(0.1, "step/periodic policy: lr factor at each lr step")
    poly_power: float = _f(0.9, "poly policy: lr x (1 - step/steps)^power")
    warmup_steps: int = _f(0, "linear lr warm-up steps")
    schedule_scale: float = _f(1.0, "multiply the recipe's steps, lr steps and warm-up by this (e.g. 0.01 "
                               "to scale a GPU recipe down for a CPU)")
    stages: list[str] = _f([], "run stages in a row, each in its own subfolder, each starting from the "
                           "previous one, e.g. fcn32s,fcn16s,fcn8s or deconvnet:objects,deconvnet:proposals")
    bn_recalib_batches: int = _f(0, "after training, recompute batch-norm population statistics over N "
                                 "training batches (DeconvNet)")
    bn_recalib_batch_size: int | None = _f(None, "crops per batch for the BN statistics (default batch_size; the "
                                           "release: 28)")
    bn_statistics: str = _f("pooled", "BN population estimator: 'pooled' (mean and unbiased variance over every "
                            "pixel of every batch) or 'batch_mean' (the release: mean of per-batch means and of "
                            "per-batch biased variances x m/(m-1))", choices=BN_STATISTICS)
    crop_pad: str = _f("mean", "DeconvNet crops: colour outside the image, mean or black (the release); also "
                       "the trained model's default for proposals at inference", choices=PAD_COLOURS)
    # -- running --------------------------------------------------------------------------------
    out: str = _f("runs/train", "output folder (checkpoints, log, curves, config.yaml)")
    seed: int = _f(0, "random seed (model init, dropout, data order and augmentation)")
    device: str = _f("auto", "auto (CUDA when present), cpu, cuda[:N]")
    precision: str = _f("fp32", "fp32, bf16 (CPU/GPU) or fp16 (GPU, with a gradient scaler)",
                        choices=("fp32", "bf16", "fp16"))
    channels_last: bool = _f(False, "use the channels-last memory format")
    threads: int = _f(0, "CPU threads per process (0 = cores / processes)")
    workers: int = _f(0, "data-loading worker processes")
    eval_every: int = _f(0, "validate every N steps (0 = only at the end)")
    eval_resize: int | None = _f(None, "validate on images resized to NxN, scores resized back (DeconvNet: 224 = "
                                 "the whole image as one proposal)")
    eval_batch_size: int = _f(1, "validation images per forward pass (same-size images only)")
    save_every: int = _f(0, "also save last.pt every N steps (0 = only at validation and the end)")
    log_every: int = _f(10, "write a training log record every N steps")
    progress: bool = _f(True, "show progress bars (on a terminal only)")
    tensorboard: bool = _f(False, "also write TensorBoard event files into OUT/tensorboard (needs pixelwise[tb])")

    # -------------------------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """Return a plain dict (YAML/JSON/checkpoint friendly)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict, *, source: str = "config") -> "TrainConfig":
        """Build and validate a config from a dict; unknown keys or bad values raise PixelwiseError.
        Builder options written as top-level keys by older versions are read into ``model_options``."""
        values = lift_model_options(values, source=source, from_old_config=True)
        unknown = sorted(set(values) - set(field_names()))
        if unknown:
            raise PixelwiseError(
                f"{source}: unknown option(s) {', '.join(unknown)}; valid: {', '.join(field_names())}"
            )
        coerced = {k: coerce(k, v, source=source) for k, v in values.items()}
        if coerced.get("model_options"):
            coerced["model_options"] = {k: typed_model_option(k, v, source=source)
                                        for k, v in coerced["model_options"].items()}
        cfg = cls(**coerced)
        cfg.validate(source=source)
        return cfg

    def replace(self, **changes: Any) -> "TrainConfig":
        """Return a validated copy with some fields changed."""
        return TrainConfig.from_dict({**self.to_dict(), **changes})

    def validate(self, *, source: str = "config") -> None:
        """Raise PixelwiseError naming the option if a value is out of range."""
        for name in field_names():
            choices = FIELDS[name].metadata.get("choices")
            value = getattr(self, name)
            if choices and value not in choices:
                raise PixelwiseError(f"{source}: {name}={value!r} is not one of {', '.join(choices)}")
        positive = ("batch_size", "iter_size", "eval_batch_size", "log_every")
        if self.lr_policy == "periodic" and self.lr_stepsize < 1:
            raise PixelwiseError(f"{source}: lr_policy=periodic needs lr_stepsize >= 1, got {self.lr_stepsize}")
        if self.bn_recalib_batch_size is not None and self.bn_recalib_batch_size < 1:
            raise PixelwiseError(f"{source}: bn_recalib_batch_size must be >= 1, got {self.bn_recalib_batch_size}")
        for name in positive:
            if getattr(self, name) < 1:
                raise PixelwiseError(f"{source}: {name} must be >= 1, got {getattr(self, name)}")
        for name in ("object_min_side", "steps", "eval_every", "save_every", "warmup_steps", "bn_recalib_batches", "threads",
                     "workers"):
            if getattr(self, name) < 0:
                raise PixelwiseError(f"{source}: {name} must be >= 0, got {getattr(self, name)}")
        if not 0 < self.input_scale <= 4:
            raise PixelwiseError(f"{source}: input_scale must be in (0, 4], got {self.input_scale}")
        if self.deep_supervision < 0:
            raise PixelwiseError(f"{source}: deep_supervision must be >= 0, got {self.deep_supervision}")
        if not self.focal_gamma >= 0 or not self.focal_gamma < float("inf"):
            raise PixelwiseError(f"{source}: focal_gamma must be a number >= 0, got {self.focal_gamma}")
        if self.class_weights is not None and self.class_weights.strip() != MEDIAN_FREQ:
            # the count is checked once the classes are known
            parse_class_weights(self.class_weights, source=f"{source}: class_weights")
        if self.lr <= 0 or not self.lr < float("inf"):
            raise PixelwiseError(f"{source}: lr must be a positive number, got {self.lr}")
        for name in ("object_enlarge", "proposal_iou", "scale_range"):
            pair = getattr(self, name)
            if pair is not None and (len(pair) != 2 or pair[0] > pair[1] or pair[0] <= 0):
                raise PixelwiseError(f"{source}: {name} must be MIN,MAX with 0 < MIN <= MAX, got {pair}")
        if self.proposal_iou[1] > 1:
            raise PixelwiseError(f"{source}: proposal_iou values must be <= 1, got {self.proposal_iou}")
        if self.sampling != "whole" and not self.crop_size:
            raise PixelwiseError(f"{source}: sampling={self.sampling} needs crop_size (paper: 224)")


FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(TrainConfig)}


def field_names() -> list[str]:
    """Return the config keys in declaration order."""
    return list(FIELDS)


def base_type(name: str) -> tuple[type, bool]:
    """Return ``(type, is_list)`` of a field: the scalar type (int/float/str/bool/dict) and whether
    the field is a list of it."""
    hints = typing.get_type_hints(TrainConfig)
    tp = hints[name]
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        tp = args[0]
    if typing.get_origin(tp) is list:
        return typing.get_args(tp)[0], True
    if typing.get_origin(tp) is dict:
        return dict, False
    return tp, False


def _label(name: str, source: str) -> str:
    """``--flag`` for a command-line value, ``source: name`` otherwise."""
    return source if source.startswith("--") else f"{source}: {name}"


def _scalar(tp: type, value: Any, name: str, source: str) -> Any:
    if tp is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "yes", "1", "false", "no", "0"):
            return value.lower() in ("true", "yes", "1")
        raise PixelwiseError(f"{_label(name, source)} must be true or false, got {value!r}")
    try:
        if tp is int and isinstance(value, float) and not value.is_integer():
            raise ValueError
        if tp is int and isinstance(value, str):
            return int(float(value)) if float(value).is_integer() else int(value)
        return tp(value)
    except (TypeError, ValueError):
        raise PixelwiseError(f"{_label(name, source)} must be {tp.__name__}, got {value!r}") from None


def coerce(name: str, value: Any, *, source: str = "config") -> Any:
    """Convert a YAML/CLI value to the field's type (lists also from ``"a,b"`` strings)."""
    tp, is_list = base_type(name)
    if value is None:
        return None
    if tp is dict:
        if not isinstance(value, dict):
            raise PixelwiseError(f"{_label(name, source)} must be a mapping, got {value!r}")
        return dict(value)
    if is_list:
        if isinstance(value, str):
            value = [v for v in value.replace(" ", "").split(",") if v]
        elif not isinstance(value, (list, tuple)):
            value = [value]
        return [_scalar(tp, v, name, source) for v in value]
    return _scalar(tp, value, name, source)


def load_yaml(path: str | Path) -> dict:
    """Read a YAML config file; return its options as a dict (keys checked, values typed)."""
    path = Path(path)
    if not path.is_file():
        raise PixelwiseError(f"--config {path}: file not found")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise PixelwiseError(f"--config {path}: not valid YAML: {first_line(exc, None)}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise PixelwiseError(f"--config {path}: expected a mapping of option: value")
    data = {str(k).replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(data) - set(field_names()) - set(MODEL_OPTIONS))
    if unknown:
        raise PixelwiseError(
            f"--config {path}: unknown option(s) {', '.join(unknown)}; valid: {', '.join(field_names())}"
        )
    data = lift_model_options(data, source=f"--config {path}")
    return {k: coerce(k, v, source=f"--config {path}") for k, v in data.items()}


def save_yaml(cfg: TrainConfig, path: str | Path) -> Path:
    """Write the config as YAML (readable by ``--config``); return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(cfg.to_dict(), sort_keys=False), encoding="utf-8")
    return path


def parse_class_weights(text: str, num_classes: int | None = None, *, source: str = "--class-weights") -> list[float]:
    """Return the weights of a ``W0,W1,...`` string (brackets and spaces allowed, as YAML writes a
    list); raise a one-line :class:`PixelwiseError` unless every entry is a finite number >= 0, one
    is > 0 and, when ``num_classes`` is given, there is one per class."""
    body = str(text).strip().strip("[]()")
    items = [s for s in body.replace(" ", "").split(",") if s]
    try:
        weights = [float(s) for s in items]
    except ValueError:
        raise PixelwiseError(f"{source} must be {MEDIAN_FREQ} or a list of numbers W0,W1,..., got {text!r}") from None
    if not weights:
        raise PixelwiseError(f"{source} is empty: give {MEDIAN_FREQ} or one weight per class W0,W1,...")
    if any(not math.isfinite(w) or w < 0 for w in weights) or not any(w > 0 for w in weights):
        raise PixelwiseError(f"{source}: weights must be finite numbers >= 0, not all 0, got {text!r}")
    if num_classes is not None and len(weights) != num_classes:
        raise PixelwiseError(f"{source} has {len(weights)} weights but there are {num_classes} classes: give one "
                             f"per class (W0,...,W{num_classes - 1}) or {MEDIAN_FREQ}")
    return weights
