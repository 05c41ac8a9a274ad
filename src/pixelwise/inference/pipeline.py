"""One entry point, :func:`segment`, choosing the right inference path for each model type.

- FCN (and any other any-size model): whole image, or sliding window with ``tile``.
- DeconvNet: proposals -> instance-wise inference aggregated in image space
  (:mod:`pixelwise.inference.aggregate`); without proposals, one whole-image pass
  (``forward_any_size``).
- EDeconvNet: the FCN-8s member as above, the DeconvNet member as above, combined by
  :func:`pixelwise.models.ensemble.combine_scores` (``mean``, the paper, or ``product``, the
  release).

Then optional TTA (flip / scales, probabilities averaged) and dense CRF.

The options come in three frozen objects (:mod:`pixelwise.inference.options`):
:class:`DenseOptions` (tiling, test-time views, precision), :class:`ProposalOptions` (boxes, box
rules, aggregation, uncovered pixels, padding) and :class:`PostOptions` (EDeconvNet's combination,
dense CRF).

Pixels no proposal covers (``ProposalOptions.uncovered``):

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
(``mean`` or ``black``, the release's) unless ``ProposalOptions.pad`` says otherwise.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from pixelwise.data.transforms import rescale_image
from pixelwise.errors import PixelwiseError
from pixelwise.inference.aggregate import deconvnet_on_boxes, pad_fill
from pixelwise.inference.boxes import as_boxes, prepare_boxes
from pixelwise.inference.options import DenseOptions, PostOptions, ProposalOptions
from pixelwise.inference.predict import check_image, dense_logits, full_size, image_tensor, input_convention
from pixelwise.inference.proposals import generate_proposals
from pixelwise.inference.tta import augmented_probs
from pixelwise.models.base import Family, ModelInterface, as_model
from pixelwise.models.ensemble import ENSEMBLE_MODES, combine_scores
from pixelwise.runtime import autocast

BACKGROUND_MARGIN = 30.0
"""Score gap that makes a filled-in background pixel certain (softmax ~ 1 - 1e-13 per class)."""


def proposal_size(deconv: ModelInterface) -> int:
    """Return the side a DeconvNet (or a prepared one) takes its proposals at: its ``input_size``
    (the paper's 224 when it does not say)."""
    from pixelwise.models.deconvnet import PROPOSAL_SIZE

    return int(deconv.input_size or PROPOSAL_SIZE)


def proposal_pad(deconv: ModelInterface) -> str:
    """Return the colour a DeconvNet (or a prepared one) wants its proposal crops padded with:
    ``mean`` or ``black`` (its ``proposal_pad``; ``mean`` when it does not say)."""
    return deconv.proposal_pad or "mean"


def _background_scores(num_classes: int, height: int, width: int, device) -> torch.Tensor:
    fill = torch.full((num_classes, height, width), -BACKGROUND_MARGIN, device=device)
    fill[0] = 0.0
    return fill


def deconvnet_scores(
    deconv: ModelInterface,
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


def check_options(kind: Family, proposals: ProposalOptions, post: PostOptions) -> None:
    """Return None when the options can work with a model of ``kind``, else raise a one-line
    :class:`PixelwiseError` (proposals for an FCN, ``uncovered="fcn"`` without an FCN, an unknown
    ensemble mode). :class:`ProposalOptions` checks its own names when it is built."""
    if proposals.uncovered == "fcn" and kind != Family.ENSEMBLE:
        raise PixelwiseError("--uncovered fcn needs an EDeconvNet (an FCN-8s to fall back on); use whole or background")
    if post.ensemble_mode is not None and post.ensemble_mode not in ENSEMBLE_MODES:
        raise PixelwiseError(f"unknown ensemble --mode {post.ensemble_mode!r}; valid: {', '.join(ENSEMBLE_MODES)}")
    if proposals.enabled and kind in (Family.FCN, Family.GENERIC):
        raise PixelwiseError(
            "proposals apply to DeconvNet and EDeconvNet only; FCN segments the whole image (use --tile for large images)"
        )


def _generator_options(options: ProposalOptions) -> dict:
    """The keyword arguments of the proposal method (:func:`generate_proposals`)."""
    kwargs = dict(options.method_options)
    if options.method.replace("-", "_").lower() == "edge_boxes":
        # EdgeBoxes asks for more candidates until top_k boxes pass the same box rules
        for key, value in (("want", options.top_k), ("min_box", options.min_box),
                           ("min_box_frac", options.min_box_frac), ("enlarge", options.enlarge),
                           ("square", options.square)):
            kwargs.setdefault(key, value)
    return kwargs


def proposal_boxes(image: np.ndarray, options: ProposalOptions,
                   scale: float = 1.0) -> tuple[np.ndarray | None, str | None]:
    """Return the boxes DeconvNet runs on for ``image`` (``(H, W, 3)`` uint8): ``(K, 4)`` int64,
    best first, after the box rules; and their source (the method, or ``given``). ``(None, None)``
    when the options ask for no proposals. ``image`` is the picture at the model's input
    ``scale``: given boxes (in the original image's pixels) are scaled to it."""
    if not options.enabled:
        return None, None
    if options.method is not None:
        raw = generate_proposals(image, options.method, **_generator_options(options))
    else:
        raw = as_boxes(*options.boxes) if isinstance(options.boxes, tuple) else as_boxes(options.boxes)
        if scale != 1.0:
            raw = (raw[0] * np.float32(scale), raw[1])
    boxes, _ = prepare_boxes(*raw, image_hw=image.shape[:2], **options.box_rules())
    return boxes, options.method if options.method is not None else "given"


@dataclass
class ViewScorer:
    """The class probabilities of one test-time view for the model's kind (the ``view_fn`` of
    :func:`pixelwise.inference.tta.augmented_probs`); remembers each view's proposal coverage."""

    model: ModelInterface
    kind: Family
    dense_kw: dict
    proposals: ProposalOptions
    post: PostOptions
    coverage: list[float] = field(default_factory=list)

    def deconvnet(self, deconv: ModelInterface, x: torch.Tensor,
                  boxes: np.ndarray | None) -> tuple[torch.Tensor, torch.Tensor | None]:
        """DeconvNet's scores ``(C, h, w)`` and coverage (see :func:`deconvnet_scores`)."""
        p = self.proposals
        scores, cov = deconvnet_scores(deconv, x, boxes, size=p.size, batch=p.batch, aggregate=p.aggregate,
                                       uncovered=p.uncovered, pad=p.pad, **self.dense_kw)
        if cov is not None:
            self.coverage.append(float(cov.float().mean()))
        return scores, cov

    def ensemble(self, x: torch.Tensor, boxes: np.ndarray | None) -> torch.Tensor:
        """EDeconvNet's combined scores ``(C, h, w)``; FCN-8s's alone where no box is with
        ``uncovered="fcn"``."""
        fcn_scores = dense_logits(self.model.fcn, x[None], **self.dense_kw)[0]
        dec_scores, cov = self.deconvnet(self.model.deconvnet, x, boxes)
        mode = self.post.ensemble_mode or self.model.mode
        combined = combine_scores(fcn_scores[None], dec_scores[None], mode)[0]
        if cov is not None and self.proposals.uncovered == "fcn":
            combined = torch.where(cov, combined, fcn_scores)
        return combined

    def __call__(self, x: torch.Tensor, boxes: np.ndarray | None) -> torch.Tensor:
        """Return the view's probabilities ``(C, h, w)`` for its normalised image ``x`` ``(3, h, w)``."""
        if self.kind == Family.DECONVNET:
            scores, _ = self.deconvnet(self.model, x, boxes)
        elif self.kind in (Family.FCN, Family.GENERIC):
            scores = dense_logits(self.model, x[None], **self.dense_kw)[0]
        else:
            scores = self.ensemble(x, boxes)
        return scores.float().softmax(0)


def _given(value, cls: type, name: str):
    """``value``, or ``cls()`` for None; a clear error for the keyword arguments of old."""
    if value is None:
        return cls()
    if not isinstance(value, cls):
        raise TypeError(f"segment({name}=...) takes a {cls.__name__}, got {type(value).__name__}")
    return value


def segment(
    model: nn.Module,
    image: np.ndarray,
    *,
    dense: DenseOptions | None = None,
    proposals: ProposalOptions | None = None,
    post: PostOptions | None = None,
    progress: bool = False,
    info: dict | None = None,
) -> np.ndarray:
    """Segment one image; returns class probabilities ``(C, H, W)`` float32 (numpy).

    Args:
        model: an FCN, DeconvNet, EDeconvNet (or any module mapping ``(N, 3, H, W)`` to
            ``(N, C, H, W)`` scores at any size), in eval mode, on the device to use. The image is
            normalised with ``model.input_convention``.
        image: ``(H, W, 3)`` uint8 RGB.
        dense: tiling, test-time views and precision (:class:`DenseOptions`; None: the defaults,
            whole image, one view, fp32).
        proposals: DeconvNet/EDeconvNet's boxes and box rules (:class:`ProposalOptions`; None: no
            proposals, one whole-image pass).
        post: EDeconvNet's combination and the dense CRF (:class:`PostOptions`; None: the model's
            own combination, no CRF).
        progress: progress bars for tiles and proposal crops.
        info: if a dict is given, it is filled with what was done (boxes used, coverage, views,
            seconds).
    """
    start = time.perf_counter()
    dense = _given(dense, DenseOptions, "dense")
    proposals = _given(proposals, ProposalOptions, "proposals")
    post = _given(post, PostOptions, "post")
    image = check_image(image)
    model = as_model(model)  # a foreign module answers the model interface from here on
    kind = model.family
    check_options(kind, proposals, post)
    scale = float(model.input_scale)
    work = rescale_image(image, scale)  # the resolution the model was trained at
    x = image_tensor(work, model)
    boxes, method = proposal_boxes(work, proposals, scale)
    scorer = ViewScorer(model, kind, dense.dense_kwargs(progress), proposals, post)
    probs = augmented_probs(scorer, x, boxes, scales=dense.scales, tta=dense.tta)
    probs = full_size(probs, image.shape[:2])
    result = probs.float().cpu().numpy()
    if post.crf:
        from pixelwise.inference.crf import dense_crf

        result = dense_crf(image, result, **post.crf_settings())
    if info is not None:
        info.update(
            {
                "model_kind": kind,
                "proposals": method,
                "boxes": None if boxes is None else int(len(boxes)),
                "box_list": None if boxes is None else (boxes / scale).tolist(),  # in image pixels
                "coverage": None if not scorer.coverage else float(np.mean(scorer.coverage)),
                "views": dense.views,
                "crf": bool(post.crf),
                "seconds": time.perf_counter() - start,
            }
        )
    return np.ascontiguousarray(result, dtype=np.float32)
