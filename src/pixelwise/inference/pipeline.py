"""One entry point, :func:`segment`, choosing the right inference path for each model type.

- FCN (and any other any-size model): whole image, or sliding window with ``tile``.
- DeconvNet: proposals -> instance-wise inference aggregated in image space
  (:mod:`pixelwise.inference.aggregate`); without proposals, one whole-image pass
  (``forward_any_size``).
- EDeconvNet: the FCN-8s member as above, the DeconvNet member as above, combined by
  :func:`pixelwise.models.ensemble.combine_scores` (``mean``, the paper, or ``product``, the
  release).

Then optional TTA (flip / scales, probabilities averaged) and dense CRF.

Pixels no proposal covers (``uncovered``):

- ``whole`` (default): DeconvNet's scores from a whole-image pass fill them. A proposal pipeline
  that misses an object (or a small image where every proposal is under ``min_box``) then degrades
  to whole-image DeconvNet instead of declaring the object background; it costs one extra forward
  pass, done only when some pixel is uncovered.
- ``background``: they are labelled background (class 0), for data where the proposals are
  trusted to cover every object.
- ``fcn`` (EDeconvNet only): the ensemble output there is FCN-8s's alone.
- ``zero``: DeconvNet's scores there are 0 for every class, as in the release (uniform after
  softmax; with the release's ``product`` ensemble the ensemble is 0 too, and the CRF decides).

Proposal crops reaching past the image are padded with the model's ``proposal_pad`` colour
(``mean`` or ``black``, the release's) unless ``pad`` says otherwise.
"""

from __future__ import annotations

import time
from typing import Sequence

import numpy as np
import torch
from torch import nn

from pixelwise.errors import PixelwiseError
from pixelwise.inference.aggregate import AGGREGATIONS, PAD_COLOURS, deconvnet_on_boxes, pad_fill
from pixelwise.inference.boxes import ENLARGE, MIN_BOX, TOP_K, as_boxes, prepare_boxes
from pixelwise.inference.predict import check_image, dense_logits, image_tensor, input_convention, model_kind
from pixelwise.inference.proposals import generate_proposals
from pixelwise.inference.tta import augmented_probs
from pixelwise.models.ensemble import ENSEMBLE_MODES, combine_scores
from pixelwise.runtime import autocast

UNCOVERED = ("whole", "background", "fcn", "zero")
BACKGROUND_MARGIN = 30.0
"""Score gap that makes a filled-in background pixel certain (softmax ~ 1 - 1e-13 per class)."""


def proposal_size(deconv: nn.Module) -> int:
    """Return the side a DeconvNet (or a prepared one) takes its proposals at: its ``input_size``."""
    from pixelwise.models.deconvnet import PROPOSAL_SIZE

    return int(getattr(deconv, "input_size", None) or PROPOSAL_SIZE)


def proposal_pad(deconv: nn.Module) -> str:
    """Return the colour a DeconvNet (or a prepared one) wants its proposal crops padded with:
    ``mean`` or ``black`` (its ``proposal_pad``; ``mean`` when it does not say)."""
    pad = getattr(deconv, "proposal_pad", None)
    if pad is None:
        pad = (getattr(deconv, "pixelwise_spec", None) or {}).get("proposal_pad")
    return pad or "mean"


def _background_scores(num_classes: int, height: int, width: int, device) -> torch.Tensor:
    fill = torch.full((num_classes, height, width), -BACKGROUND_MARGIN, device=device)
    fill[0] = 0.0
    return fill


def deconvnet_scores(
    deconv: nn.Module,
    x: torch.Tensor,
    boxes: np.ndarray | None,
    *,
    size: int | None = None,
    batch: int = 8,
    aggregate: str = "max",
    uncovered: str = "whole",
    pad: str | None = None,
    **dense_kw,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """DeconvNet's raw scores ``(C, H, W)`` for one normalised image ``x`` ``(3, H, W)``.

    With ``boxes`` (prepared, ``(K, 4)``), instance-wise inference aggregated by ``aggregate``;
    pixels no box covers are filled as ``uncovered`` says (``whole``: a whole-image pass;
    ``background``; ``zero`` and ``fcn``: left at 0, ``fcn`` for the caller to fill); crops are
    padded with ``pad`` (None: the model's :func:`proposal_pad`). Without boxes, one
    whole-image pass. Returns the scores and the coverage mask ``(H, W)`` bool (None without boxes).
    ``dense_kw`` go to :func:`dense_logits` (tiling, precision). ``size``: the side proposals are
    resized to (None: the model's own ``input_size``, 224 for the paper's DeconvNet).
    """
    size = size or proposal_size(deconv)
    if boxes is None:
        return dense_logits(deconv, x[None], **dense_kw)[0], None
    precision, progress = dense_kw.get("precision", "fp32"), dense_kw.get("progress", False)
    fill = pad_fill(pad or proposal_pad(deconv), input_convention(deconv))
    if fill is not None:
        fill = fill.to(x.device)
    with torch.inference_mode(), autocast(x.device, precision):
        scores, cov = deconvnet_on_boxes(deconv, x, boxes, size=size, batch=batch, mode=aggregate, fill=fill,
                                         progress=progress)
    if bool(cov.all()) or uncovered in ("fcn", "zero"):
        return scores, cov
    if uncovered == "whole":
        fill = dense_logits(deconv, x[None], **dense_kw)[0]
    else:
        fill = _background_scores(scores.shape[0], *scores.shape[-2:], scores.device)
    return torch.where(cov, scores, fill), cov


def segment(
    model: nn.Module,
    image: np.ndarray,
    *,
    tta: str | None = None,
    scales: Sequence[float] | None = None,
    tile: int | tuple[int, int] | None = None,
    overlap: float = 0.33,
    window: str = "linear",
    context: int = 0,
    proposals: str | np.ndarray | tuple | None = None,
    proposal_options: dict | None = None,
    aggregate: str = "max",
    size: int | None = None,
    batch: int = 8,
    enlarge: float = ENLARGE,
    square: bool = False,
    min_box: float = MIN_BOX,
    min_box_frac: float | None = None,
    top_k: int | None = TOP_K,
    uncovered: str = "whole",
    pad: str | None = None,
    mode: str | None = None,
    crf: bool = False,
    crf_options: dict | None = None,
    precision: str = "fp32",
    progress: bool = False,
    info: dict | None = None,
) -> np.ndarray:
    """Segment one image; returns class probabilities ``(C, H, W)`` float32 (numpy).

    Args:
        model: an FCN, DeconvNet, EDeconvNet (or any module mapping ``(N, 3, H, W)`` to
            ``(N, C, H, W)`` scores at any size), in eval mode, on the device to use. The image is
            normalised with ``model.input_convention``.
        image: ``(H, W, 3)`` uint8 RGB.
        tta: ``"flip"`` adds mirrored views; ``scales`` e.g. ``(0.75, 1, 1.25)``; probabilities of
            all views are averaged.
        tile, overlap, window, context: sliding-window inference for the dense (whole-image) passes
            (see :func:`pixelwise.inference.sliding.sliding_window`); None = whole image.
        proposals: DeconvNet/EDeconvNet only. None = whole-image DeconvNet; a method name
            (``selective-search``, ``edge-boxes``, ``sliding``, ``file``, ``gt``; options in
            ``proposal_options``, e.g. ``{"model_path": ...}`` for EdgeBoxes); or boxes ``(K, 4)``
            / ``(K, 5)`` / ``(boxes, scores)`` in image pixels, x1/y1 exclusive.
        aggregate: ``max`` (paper), ``max0`` (release: max started from 0), ``sum`` or ``mean``
            over the boxes covering a pixel.
        size, batch: proposal crops are resized to ``size`` (None: the DeconvNet's ``input_size``,
            224 for the paper's) and run ``batch`` at a time.
        enlarge, square, min_box, min_box_frac, top_k: box handling, see
            :func:`pixelwise.inference.boxes.prepare_boxes`.
        uncovered: ``whole``, ``background``, ``fcn`` or ``zero`` (see the module docstring).
        pad: colour of proposal crops outside the image, ``mean`` or ``black`` (None: the
            DeconvNet's own ``proposal_pad``).
        mode: EDeconvNet combination, ``mean`` (paper) or ``product`` (release; default: the
            model's own).
        crf: dense CRF on the final probabilities (needs ``pixelwise[crf]``); ``crf_options``
            override :data:`pixelwise.inference.crf.CRF_DEFAULTS`.
        precision: ``fp32``, ``bf16`` or ``fp16`` (CUDA) for the forward passes.
        info: if a dict is given, it is filled with what was done (boxes used, coverage, views,
            seconds).
    """
    start = time.perf_counter()
    image = check_image(image)
    kind = model_kind(model)
    if aggregate not in AGGREGATIONS:
        raise PixelwiseError(f"unknown --aggregate {aggregate!r}; valid: {', '.join(AGGREGATIONS)}")
    if uncovered not in UNCOVERED:
        raise PixelwiseError(f"unknown --uncovered {uncovered!r}; valid: {', '.join(UNCOVERED)}")
    if uncovered == "fcn" and kind != "ensemble":
        raise PixelwiseError("--uncovered fcn needs an EDeconvNet (an FCN-8s to fall back on); use whole or background")
    if pad is not None and pad not in PAD_COLOURS:
        raise PixelwiseError(f"unknown --pad {pad!r}; valid: {', '.join(PAD_COLOURS)}")
    if mode is not None and mode not in ENSEMBLE_MODES:
        raise PixelwiseError(f"unknown ensemble --mode {mode!r}; valid: {', '.join(ENSEMBLE_MODES)}")
    if proposals is not None and kind in ("fcn", "generic"):
        raise PixelwiseError(
            "proposals apply to DeconvNet and EDeconvNet only; FCN segments the whole image (use --tile for large images)"
        )
    x = image_tensor(image, model)
    height, width = image.shape[:2]
    dense_kw = dict(tile=tile, overlap=overlap, window=window, context=context, precision=precision, progress=progress)

    boxes = None
    method = None
    if proposals is not None:
        if isinstance(proposals, str):
            method = proposals
            options = dict(proposal_options or {})
            if proposals.replace("-", "_").lower() == "edge_boxes":
                # EdgeBoxes asks for more candidates until top_k boxes pass the same box rules
                for key, value in (("want", top_k), ("min_box", min_box), ("min_box_frac", min_box_frac),
                                   ("enlarge", enlarge), ("square", square)):
                    options.setdefault(key, value)
            raw = generate_proposals(image, proposals, **options)
        elif isinstance(proposals, tuple):
            method = "given"
            raw = as_boxes(*proposals)
        else:
            method = "given"
            raw = as_boxes(proposals)
        boxes, _ = prepare_boxes(
            *raw, image_hw=(height, width), enlarge=enlarge, square=square,
            min_box=min_box, min_box_frac=min_box_frac, top_k=top_k,
        )
    coverage_seen: list[float] = []

    def deconv_scores(deconv: nn.Module, xv: torch.Tensor, bv: np.ndarray | None):
        scores, cov = deconvnet_scores(
            deconv, xv, bv, size=size, batch=batch, aggregate=aggregate, uncovered=uncovered, pad=pad, **dense_kw
        )
        if cov is not None:
            coverage_seen.append(float(cov.float().mean()))
        return scores, cov

    def view_probs(xv: torch.Tensor, bv: np.ndarray | None) -> torch.Tensor:
        if kind in ("fcn", "generic", "deconvnet"):
            if kind == "deconvnet":
                scores, _ = deconv_scores(model, xv, bv)
            else:
                scores = dense_logits(model, xv[None], **dense_kw)[0]
            return scores.float().softmax(0)
        fcn_scores = dense_logits(model.fcn, xv[None], **dense_kw)[0]
        dec_scores, cov = deconv_scores(model.deconvnet, xv, bv)
        combined = combine_scores(fcn_scores[None], dec_scores[None], mode or model.mode)[0]
        if cov is not None and uncovered == "fcn":
            combined = torch.where(cov, combined, fcn_scores)
        return combined.float().softmax(0)

    probs = augmented_probs(view_probs, x, boxes, scales=scales, tta=tta)
    result = probs.float().cpu().numpy()
    if crf:
        from pixelwise.inference.crf import CRF_DEFAULTS, dense_crf

        result = dense_crf(image, result, **{**CRF_DEFAULTS, **(crf_options or {})})
    if info is not None:
        info.update(
            {
                "model_kind": kind,
                "proposals": method,
                "boxes": None if boxes is None else int(len(boxes)),
                "box_list": None if boxes is None else boxes.tolist(),
                "coverage": None if not coverage_seen else float(np.mean(coverage_seen)),
                "views": len(scales or (1.0,)) * (2 if tta == "flip" else 1),
                "crf": bool(crf),
                "seconds": time.perf_counter() - start,
            }
        )
    return np.ascontiguousarray(result, dtype=np.float32)
