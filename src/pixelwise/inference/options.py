"""The options of :func:`pixelwise.inference.segment`, one frozen object per stage of the work.

- :class:`DenseOptions`: the dense (whole-image) forward passes and the test-time views: tiling,
  TTA scales and flips, precision.
- :class:`ProposalOptions`: DeconvNet's proposal pipeline: where the boxes come from, the box
  rules, how the crops are run and aggregated, what fills the pixels no box covers.
- :class:`PostOptions`: what is done with the models' scores: EDeconvNet's combination of its two
  members and the dense CRF.

The defaults are those of ``pixelwise predict`` (the paper's where it says). The objects are
frozen: derive a changed one with :func:`dataclasses.replace`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Mapping, Sequence

import numpy as np

from pixelwise.convention import PAD_COLOURS
from pixelwise.errors import PixelwiseError
from pixelwise.inference.aggregate import AGGREGATIONS
from pixelwise.inference.boxes import ENLARGE, MIN_BOX, TOP_K
from pixelwise.inference.crf import CRF_DEFAULTS, DEFAULT_CRF_PRESET

UNCOVERED = ("whole", "background", "fcn", "zero")
"""What fills the pixels no proposal covers (:attr:`ProposalOptions.uncovered`)."""


def _require_choice(flag: str, value: str, valid: Sequence[str]) -> None:
    """Return None when ``value`` is one of ``valid``, else raise a one-line :class:`PixelwiseError`."""
    if value not in valid:
        raise PixelwiseError(f"unknown {flag} {value!r}; valid: {', '.join(valid)}")


@dataclass(frozen=True)
class DenseOptions:
    """How the dense passes run (every FCN pass, DeconvNet's whole-image passes and fills) and
    which test-time views are averaged."""

    tile: int | tuple[int, int] | None = None
    """Sliding-window tile side in pixels (or ``(height, width)``); None: the whole image at once."""
    overlap: float = 0.33
    """Fraction of a tile shared with its neighbour."""
    window: str = "linear"
    """Tile blending weights: ``linear`` (a ramp over the overlap) or ``uniform`` (plain average)."""
    context: int = 0
    """Extra image pixels fed around each tile and discarded (>= 224 makes FCN tiling exact)."""
    tta: str | None = None
    """``flip``: also run every view mirrored; None (or ``none``): no mirrored views."""
    scales: Sequence[float] | None = None
    """Scales of the test-time views, e.g. ``(0.75, 1.0, 1.25)``; None: scale 1 only."""
    precision: str = "fp32"
    """Forward-pass precision: ``fp32``, ``bf16`` or ``fp16`` (CUDA)."""

    def __post_init__(self) -> None:
        if self.scales is not None:  # a tuple, so that the options stay immutable and hashable
            object.__setattr__(self, "scales", tuple(self.scales))

    @property
    def views(self) -> int:
        """Return the number of test-time views: scales times 2 with ``flip``."""
        return len(self.scales or (1.0,)) * (2 if self.tta == "flip" else 1)

    def dense_kwargs(self, progress: bool = False) -> dict:
        """Return the keyword arguments of :func:`pixelwise.inference.predict.dense_logits`."""
        return dict(tile=self.tile, overlap=self.overlap, window=self.window, context=self.context,
                    precision=self.precision, progress=progress)


@dataclass(frozen=True)
class ProposalOptions:
    """DeconvNet's (and EDeconvNet's) proposal pipeline. With neither ``method`` nor ``boxes`` the
    DeconvNet runs once on the whole image; FCNs take no proposals."""

    method: str | None = None
    """Where the boxes come from: ``selective-search``, ``edge-boxes``, ``sliding``, ``file`` or
    ``gt`` (see :func:`pixelwise.inference.proposals.generate_proposals`)."""
    boxes: np.ndarray | tuple[np.ndarray, np.ndarray] | None = None
    """Given boxes instead of a ``method``: ``(K, 4)``, ``(K, 5)`` (last column the score) or
    ``(boxes, scores)``, in image pixels, x1/y1 exclusive."""
    method_options: Mapping[str, Any] = field(default_factory=dict)
    """Keyword arguments of the method, e.g. ``{"model_path": ...}`` for ``edge-boxes``,
    ``{"table": ..., "name": ...}`` for ``file``, ``{"sample": ...}`` for ``gt``."""
    top_k: int | None = TOP_K
    """Keep the best K boxes (None: all)."""
    min_box: float = MIN_BOX
    """Skip boxes with a side under this many pixels after enlarging (the paper's 112)."""
    min_box_frac: float | None = None
    """Also scale the minimum with the image: ``min(min_box, min_box_frac x shorter side)``."""
    enlarge: float = ENLARGE
    """Scale each box side around its centre by this factor."""
    square: bool = False
    """Extend boxes to squares before enlarging."""
    size: int | None = None
    """Side the crops are resized to (None: the DeconvNet's ``input_size``, 224 for the paper's)."""
    batch: int = 8
    """Crops per forward pass."""
    aggregate: str = "max"
    """Combination of overlapping boxes: ``max`` (the paper), ``max0`` (the release), ``sum``, ``mean``."""
    uncovered: str = "whole"
    """Pixels no box covers: ``whole``, ``background``, ``fcn`` (EDeconvNet) or ``zero`` (see
    :mod:`pixelwise.inference.pipeline`)."""
    pad: str | None = None
    """Colour of crops past the image: ``mean`` or ``black`` (None: the DeconvNet's ``proposal_pad``)."""

    def __post_init__(self) -> None:
        # what does not depend on the model is checked here; pipeline.check_options checks the rest
        _require_choice("--aggregate", self.aggregate, AGGREGATIONS)
        _require_choice("--uncovered", self.uncovered, UNCOVERED)
        if self.pad is not None:
            _require_choice("--pad", self.pad, PAD_COLOURS)
        if self.method is not None and self.boxes is not None:
            raise PixelwiseError("give proposal boxes or a proposal method, not both")

    @property
    def enabled(self) -> bool:
        """Return True when DeconvNet runs on boxes (a ``method`` or given ``boxes``)."""
        return self.method is not None or self.boxes is not None

    def for_image(self, *, image_name: str = "", sample: dict | None = None) -> "ProposalOptions":
        """Return these options for one image: a box file's boxes are looked up by ``image_name``;
        ``gt`` takes the boxes of the dataset ``sample`` (a one-line error without one)."""
        if self.method == "file":
            return replace(self, method_options={**self.method_options, "name": image_name})
        if self.method is not None and self.method.replace("-", "_") == "gt":
            if sample is None:
                raise PixelwiseError("--proposals gt needs ground-truth boxes: use `pixelwise compare --dataset`")
            return replace(self, method_options={**self.method_options, "sample": sample})
        return self

    def box_rules(self) -> dict:
        """Return the box rules as keyword arguments of :func:`pixelwise.inference.boxes.prepare_boxes`."""
        return dict(enlarge=self.enlarge, square=self.square, min_box=self.min_box,
                    min_box_frac=self.min_box_frac, top_k=self.top_k)


@dataclass(frozen=True)
class PostOptions:
    """What is done with the models' scores: EDeconvNet's combination of its members' scores (in
    every view) and the dense CRF on the averaged probabilities."""

    ensemble_mode: str | None = None
    """EDeconvNet's combination: ``mean`` (the paper) or ``product`` (the release); None: the model's own."""
    crf: bool = False
    """Refine the probabilities with a dense CRF (needs ``pixelwise[crf]``)."""
    crf_preset: str = DEFAULT_CRF_PRESET
    """How the CRF library is driven: ``release`` or ``pydensecrf`` (see :mod:`pixelwise.inference.crf`)."""
    crf_params: Mapping[str, float] = field(default_factory=dict)
    """Overrides of the CRF's kernel settings in :data:`pixelwise.inference.crf.CRF_DEFAULTS`
    (``iterations``, ``gaussian_sxy``, ...)."""

    def crf_settings(self) -> dict:
        """Return the keyword arguments of :func:`pixelwise.inference.crf.dense_crf`."""
        return {**CRF_DEFAULTS, "preset": self.crf_preset, **self.crf_params}
