"""The one interface of every pixelwise model, so that callers ask the model instead of guessing.

- :class:`SizeRule` and :func:`pad_to_multiple`: which input sizes a model takes. DeconvNet takes
  sides that are multiples of 32 and at least its proposal side (``input_size``); FCN and
  EDeconvNet take any size. This is the only place that rule is written.
- :class:`ModelCard`: what a checkpoint records about a model besides its weights.
- :class:`Family`: the one name of each family, ``generic`` for every module outside them.
- :class:`ModelInterface`: family, card, class count, input sizes, proposal side and padding,
  whether one trace serves every size, and :meth:`~ModelInterface.forward_any_size`: everything
  callers ask of a model, answered by built models, the engines of
  :func:`pixelwise.optimize.prepare_for_inference` and exported graphs
  (:class:`pixelwise.weights.onnx_engine.OnnxModel`). Callers ask it, never ``getattr``.
- :class:`ForeignModel` and :func:`as_model`: any other image-to-scores module behind the same
  interface, wrapped once where it enters (``segment``, ``predict_batch``, ``dense_logits``,
  ``deconvnet_on_boxes``, ``prepare_for_inference``, ``resolve_engine``, ``export_onnx``).
- :class:`SegmentationModel`: a built model (FCN, DeconvNet, EDeconvNet): the above plus the layer
  names that batch-norm folding, the fc fast path, weight import and the benchmarks rely on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from pixelwise.convention import CAFFE_BGR, InputConvention
from pixelwise.errors import PixelwiseError


class Family(str, Enum):
    """A model's family, which decides how inference runs it. A ``str``: members equal, hash, print
    and serialise as their values (``Family.FCN == "fcn"``, ``json.dumps`` writes ``"fcn"``).
    ``GENERIC`` is every module outside the three (a foreign module, or an exported graph run as one
    whole-image pass); ``"other"``, its former second name, reads as it (``Family("other")``)."""

    FCN = "fcn"
    DECONVNET = "deconvnet"
    ENSEMBLE = "ensemble"
    GENERIC = "generic"

    def __str__(self) -> str:
        return self.value

    def __format__(self, spec: str) -> str:
        return format(self.value, spec)

    @classmethod
    def _missing_(cls, value: object) -> "Family | None":
        return cls.GENERIC if value == "other" else None


FAMILIES = (Family.FCN, Family.DECONVNET, Family.ENSEMBLE)
"""The pixelwise model families; :attr:`Family.GENERIC` is any module outside them."""

# the texts of the sizes an exported graph takes (its ONNX metadata ``input_sizes``)
_ANY_TEXT = "any"
_MULTIPLE_OF_32_TEXT = "multiple_of_32_min_"
_FIXED_TEXT = "fixed:"


def pad_to_multiple(side: int, multiple: int = 32, minimum: int = 0) -> int:
    """Return the smallest side ``>= side`` that is a multiple of ``multiple`` and ``>= minimum``
    (``minimum`` is itself a multiple, as DeconvNet's ``input_size`` is)."""
    return max(minimum, side + (-side) % multiple)


@dataclass(frozen=True)
class SizeRule:
    """The input sizes a model takes: sides that are multiples of ``multiple``, at least ``minimum``
    (the default: every size)."""

    multiple: int = 1
    minimum: int = 0

    @property
    def any_size(self) -> bool:
        """True when every size is valid."""
        return self.multiple == 1 and self.minimum <= 1

    def valid_size(self, height: int, width: int) -> tuple[int, int]:
        """Return the smallest valid ``(height, width)`` that holds ``height x width``."""
        return (pad_to_multiple(height, self.multiple, self.minimum),
                pad_to_multiple(width, self.multiple, self.minimum))

    def is_valid(self, height: int, width: int) -> bool:
        """Return True when ``height x width`` is a valid size itself."""
        return (height, width) == self.valid_size(height, width)

    def check(self, height: int, width: int, subject: str, advice: str) -> None:
        """Return None when ``height x width`` is valid; else raise the one-line
        :class:`PixelwiseError` every caller shares, naming ``subject`` and ending in ``advice``."""
        if self.is_valid(height, width):
            return
        raise PixelwiseError(
            f"{subject} needs input sides that are multiples of {self.multiple} and >= {self.minimum}, "
            f"got {height}x{width}; {advice}"
        )

    def to_text(self) -> str | None:
        """Return the rule as an exported graph's ``input_sizes`` text: ``any`` or
        ``multiple_of_32_min_<minimum>``; None when no such text says it (a multiple other than 32:
        the graph is then exported at one fixed size, :func:`fixed_size_text`)."""
        if self.any_size:
            return _ANY_TEXT
        return f"{_MULTIPLE_OF_32_TEXT}{self.minimum}" if self.multiple == 32 else None

    @classmethod
    def from_text(cls, text: str) -> "SizeRule | None":
        """Return the rule an ``input_sizes`` text of :meth:`to_text` names; None for any other text
        (``fixed:HxW``, a graph of one size: see :func:`fixed_size_from_text`)."""
        if text == _ANY_TEXT:
            return cls()
        if text.startswith(_MULTIPLE_OF_32_TEXT):
            return cls(32, int(text[len(_MULTIPLE_OF_32_TEXT):]))
        return None


ANY_SIZE = SizeRule()
"""The rule of models that take every size (FCN, EDeconvNet)."""


def fixed_size_text(height: int, width: int) -> str:
    """Return the ``input_sizes`` text of a graph exported for ``height x width`` only: ``fixed:HxW``."""
    return f"{_FIXED_TEXT}{height}x{width}"


def fixed_size_from_text(text: str) -> tuple[int, int] | None:
    """Return ``(height, width)`` of a ``fixed:HxW`` text (:func:`fixed_size_text`), None for any other."""
    if not text.startswith(_FIXED_TEXT):
        return None
    height, width = text[len(_FIXED_TEXT):].split("x")
    return int(height), int(width)


@dataclass(frozen=True)
class ModelCard:
    """What a checkpoint records about a model besides its weights.

    ``spec``: :func:`pixelwise.create_model`'s name and arguments (None for a model built
    directly); ``input_convention``: how images are normalised for it (None: not known);
    ``class_names``: one name per class, or None; ``class_colors``: one ``[r, g, b]`` per class
    (the dataset's own colours, e.g. CamVid's), or None for the VOC colours; ``input_scale``: the
    factor images are resized by before the network sees them (the resolution the model was
    trained at, e.g. 0.5 for CamVid halved to 180x240); inference resizes its scores back, so
    outputs always have the input image's size. ``weights``: the name of the published weights it
    carries (``voc-fcn8s``, see :mod:`pixelwise.models.pretrained`), None for any other.
    """

    spec: dict | None = None
    input_convention: InputConvention | None = CAFFE_BGR
    class_names: list[str] | None = None
    class_colors: list[list[int]] | None = None
    input_scale: float = 1.0
    weights: str | None = None


def check_input_scale(scale: float) -> float:
    """Return ``scale`` as a float; a one-line :class:`PixelwiseError` unless ``0 < scale <= 4``."""
    value = float(scale)
    if not 0.0 < value <= 4.0:
        raise PixelwiseError(f"input scale must be in (0, 4], got {scale!r}")
    return value


def colors_list(colors) -> list[list[int]] | None:
    """Return class colours (an ``(n, 3)`` array or nested list) as ``[[r, g, b], ...]`` ints, or None."""
    if colors is None:
        return None
    return [[int(c) for c in row] for row in colors]


def model_family(model: object) -> Family:
    """Return the family of ``model``: its own (a pixelwise model, engine or exported graph), or
    :attr:`Family.GENERIC` for any other object."""
    return model.family if isinstance(model, ModelInterface) else Family.GENERIC


class ModelInterface:
    """What callers may ask of any model: built, prepared for inference, an exported graph or a
    wrapped foreign module (:func:`as_model`).

    Subclasses set ``family``, ``card`` and ``num_classes``, and override :attr:`size_rule` when
    they do not take every size. The card's fields read and write as ``pixelwise_spec``,
    ``input_convention``, ``class_names``, ``class_colors`` and ``input_scale``. ``input_size``
    and ``proposal_pad`` are DeconvNet's (None for models that take no proposals, or do not say).
    """

    family: Family
    card: ModelCard
    num_classes: int | None
    input_size: int | None = None
    """The side proposal crops are resized to (DeconvNet's fc6 sees all of pool5 at it); None: not said."""
    proposal_pad: str | None = None
    """The colour proposal crops are padded with outside the image (``mean`` or ``black``); None: not said."""

    @property
    def dynamic_trace(self) -> bool:
        """True when one trace of :meth:`forward` (an ONNX export) serves every valid input size;
        False when ``forward`` branches on the input size in Python."""
        return True

    @property
    def pixelwise_spec(self) -> dict | None:
        """The card's spec: ``create_model``'s name and arguments (None if built directly)."""
        return self.card.spec

    @pixelwise_spec.setter
    def pixelwise_spec(self, spec: dict | None) -> None:
        self.card = replace(self.card, spec=spec)

    @property
    def input_convention(self) -> InputConvention | None:
        """The card's input convention (how images are normalised)."""
        return self.card.input_convention

    @input_convention.setter
    def input_convention(self, convention: InputConvention | None) -> None:
        self.card = replace(self.card, input_convention=convention)

    @property
    def class_names(self) -> list[str] | None:
        """The card's class names (None when not known)."""
        return self.card.class_names

    @class_names.setter
    def class_names(self, names: list[str] | None) -> None:
        self.card = replace(self.card, class_names=names)

    @property
    def class_colors(self) -> list[list[int]] | None:
        """The card's class colours (``[r, g, b]`` per class; None: the VOC colours)."""
        return self.card.class_colors

    @class_colors.setter
    def class_colors(self, colors: list[list[int]] | None) -> None:
        self.card = replace(self.card, class_colors=colors_list(colors))

    @property
    def input_scale(self) -> float:
        """The card's input scale: images are resized by it before the network runs."""
        return self.card.input_scale

    @input_scale.setter
    def input_scale(self, scale: float) -> None:
        self.card = replace(self.card, input_scale=check_input_scale(scale))

    @property
    def size_rule(self) -> SizeRule:
        """The input sizes :meth:`forward` takes (default: every size)."""
        return ANY_SIZE

    def valid_size(self, height: int, width: int) -> tuple[int, int]:
        """Return the smallest valid input ``(height, width)`` that holds ``height x width``."""
        return self.size_rule.valid_size(height, width)

    def is_valid_size(self, height: int, width: int) -> bool:
        """Return True when :meth:`forward` takes a ``height x width`` input as it is."""
        return self.size_rule.is_valid(height, width)

    def check_input_size(self, height: int, width: int) -> None:
        """Return None when ``height x width`` is a valid size, else raise :class:`PixelwiseError`
        (one line, :meth:`SizeRule.check`)."""
        rule = self.size_rule
        rule.check(height, width, self._size_subject,
                   f"resize proposals to {rule.minimum}x{rule.minimum} or use forward_any_size()")

    @property
    def _size_subject(self) -> str:
        # who check_input_size's message names
        return type(self).__name__

    def forward_any_size(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``(N, C, H, W)`` scores for ``(N, 3, H, W)`` input of any ``H, W``: padded
        bottom/right with zeros (the mean colour) to :meth:`valid_size`, run, cropped back."""
        if self.size_rule.any_size:
            return self(x)
        height, width = x.shape[-2:]
        valid_h, valid_w = self.valid_size(height, width)
        out = self.forward(F.pad(x, (0, valid_w - width, 0, valid_h - height)))
        return out[..., :height, :width]


class SegmentationModel(ModelInterface, nn.Module):
    """Base class of the built models: ``forward`` maps ``(N, 3, H, W)`` images of a valid size
    to ``(N, num_classes, H, W)`` logits.

    Besides :class:`ModelInterface`, a model declares the layer names other code relies on, all
    qualified from the model itself (``model.get_submodule(name)``):

    - :meth:`conv_bn_pairs`: each convolution whose output goes straight into a batch norm, with
      that batch norm (:func:`pixelwise.fast.fold.fold_batchnorm`);
    - :attr:`fc_layers`: the fc6-like layers that become GEMMs (:func:`pixelwise.fast.fc.use_fc_matmul`);
    - :attr:`score_layers`: the 1x1 convolutions that produce the class scores;
    - :attr:`backbone_prefix`: the module path of the VGG16 backbone (None in an ensemble, whose
      members have theirs).
    """

    family: ClassVar[Family]
    backbone_prefix: ClassVar[str | None] = "backbone"

    def __init__(self) -> None:
        super().__init__()
        self.card = ModelCard()

    def conv_bn_pairs(self) -> list[tuple[str, str]]:
        """Return ``[(conv name, batch norm name), ...]``: every conv feeding a batch norm directly."""
        raise NotImplementedError

    @property
    def fc_layers(self) -> tuple[str, ...]:
        """The names of the fc6-like layers (a large kernel over a small map)."""
        raise NotImplementedError

    @property
    def score_layers(self) -> tuple[str, ...]:
        """The names of the 1x1 class-score convolutions that feed the output."""
        raise NotImplementedError


def prefixed(prefix: str, names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """Return ``names`` qualified as submodules of ``prefix`` (``"backbone"`` + ``"fc6"`` ->
    ``"backbone.fc6"``)."""
    return tuple(f"{prefix}.{name}" for name in names)


_FOREIGN_ATTRIBUTES = ("pixelwise_spec", "input_convention", "class_names", "class_colors", "input_scale",
                       "num_classes")
"""What a foreign module may say about itself, read once by :class:`ForeignModel`."""


class ForeignModel(ModelInterface, nn.Module):
    """Any other module mapping ``(N, 3, H, W)`` images to ``(N, C, H, W)`` scores at any size,
    behind the model interface: family :attr:`Family.GENERIC`, every size, no proposals. Its card
    and ``num_classes`` are read once from the module's attributes of those names where it has
    them (the paper's Caffe BGR input otherwise); one trace is not known to serve every size."""

    family = Family.GENERIC

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module
        # the one place a foreign module's attributes are probed: it may have any of them, or none
        found = {name: getattr(module, name, None) for name in _FOREIGN_ATTRIBUTES}
        self.card = ModelCard(found["pixelwise_spec"], found["input_convention"] or CAFFE_BGR,
                              found["class_names"], colors_list(found["class_colors"]),
                              float(1.0 if found["input_scale"] is None else found["input_scale"]))
        self.num_classes = found["num_classes"]

    @property
    def dynamic_trace(self) -> bool:
        """False: a foreign ``forward`` may branch on the input size (its graphs are exported at one size)."""
        return False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the module's scores for ``x``."""
        return self.module(x)


def as_model(model: nn.Module) -> ModelInterface:
    """Return ``model`` when it answers the model interface (a pixelwise model, engine or exported
    graph), else a :class:`ForeignModel` wrapping it: call it once where a module enters."""
    return model if isinstance(model, ModelInterface) else ForeignModel(model)
