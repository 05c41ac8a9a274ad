"""Inference: whole image, sliding window, TTA, DeconvNet's proposal pipeline, EDeconvNet, dense CRF.

The entry point is :func:`segment` (``(H, W, 3)`` uint8 RGB image -> ``(C, H, W)`` float32 class
probabilities), which picks the path for the model type; its options are :class:`DenseOptions`,
:class:`ProposalOptions` and :class:`PostOptions` (``options``). The pieces live in their own
modules: ``predict`` (whole image, batches), ``sliding``, ``tta``, ``proposals``, ``boxes``,
``aggregate``, ``crf``. Batch runs (``predict``, ``compare``, ``serve``) add ``loading`` (the model a
run names, as an engine), ``inputs`` (image paths), ``outputs`` (the files per image) and
``summary`` (class names and the per-image record).
"""

from pixelwise.inference.aggregate import deconvnet_on_boxes
from pixelwise.inference.boxes import prepare_boxes, read_box_file, write_box_file
from pixelwise.inference.options import DenseOptions, PostOptions, ProposalOptions
from pixelwise.inference.pipeline import segment
from pixelwise.inference.predict import dense_logits, predict_batch
from pixelwise.inference.proposals import generate_proposals
from pixelwise.inference.sliding import sliding_window

__all__ = [
    "DenseOptions",
    "PostOptions",
    "ProposalOptions",
    "deconvnet_on_boxes",
    "dense_logits",
    "generate_proposals",
    "predict_batch",
    "prepare_boxes",
    "read_box_file",
    "segment",
    "sliding_window",
    "write_box_file",
]
