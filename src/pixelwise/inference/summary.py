"""What a segmentation found, as plain records: class names, the classes in a mask and their
shares, and the per-image record ``pixelwise predict`` writes as ``NAME.json`` (the ``serve``
page's legend uses the same class summary)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pixelwise.data.palette import VOC_CLASSES
from pixelwise.inference.options import DenseOptions, PostOptions, ProposalOptions
from pixelwise.metrics import fallback_class_names
from pixelwise.models.base import ModelInterface


def class_names_of(model: ModelInterface, num_classes: int) -> list[str]:
    """Return the checkpoint's class names; VOC's for 21 classes without names; else class_0,
    class_1, ..."""
    names = model.class_names
    if names and len(names) == num_classes:
        return list(names)
    if num_classes == len(VOC_CLASSES):
        return list(VOC_CLASSES)
    return fallback_class_names(None, num_classes)


def model_name(model: ModelInterface) -> str:
    """Return the model's registry name (its spec's ``name``), else its class name."""
    return dict(model.pixelwise_spec or {}).get("name", type(model).__name__)


def class_summary(mask: np.ndarray, class_names: list[str]) -> list[dict]:
    """Return the classes present in ``mask``, largest first: index, name, pixels, share (0..1)."""
    counts = np.bincount(mask.ravel(), minlength=len(class_names))
    total = mask.size
    order = np.argsort(-counts, kind="stable")
    return [
        {"index": int(i), "name": class_names[i], "pixels": int(counts[i]), "share": round(float(counts[i]) / total, 6)}
        for i in order
        if counts[i] > 0
    ]


def image_summary(path: Path, stem: str, image: np.ndarray, mask: np.ndarray, names: list[str], model: str,
                  info: dict, *, save_probs: bool, dense: DenseOptions, proposals: ProposalOptions,
                  post: PostOptions) -> dict:
    """Return the ``STEM.json`` record of one image: size, ``model`` (its name), classes found,
    outputs (``STEM_probs.npy`` with ``save_probs``) and how the inference ran (``info`` of
    :func:`pixelwise.inference.segment`)."""
    return {
        "image": str(path),
        "height": int(image.shape[0]),
        "width": int(image.shape[1]),
        "model": model,
        "classes": class_summary(mask, names),
        "outputs": {
            "mask": f"{stem}.png",
            "overlay": f"{stem}_overlay.png",
            "probs": f"{stem}_probs.npy" if save_probs else None,
        },
        "inference": _inference_record(info, dense, proposals, post),
    }


def _inference_record(info: dict, dense: DenseOptions, proposals: ProposalOptions, post: PostOptions) -> dict:
    """Return how the inference of one image ran: the options used and what ``info`` reported."""
    return {
        "tile": dense.tile,
        "tta": dense.tta or "none",
        "scales": list(dense.scales) if dense.scales else None,
        "proposals": info.get("proposals"),
        "boxes": info.get("box_list"),
        "coverage": info.get("coverage"),
        "aggregate": proposals.aggregate if info.get("proposals") else None,
        "crf": post.crf,
        "crf_preset": post.crf_preset if post.crf else None,
        "seconds": round(info.get("seconds", 0.0), 4),
    }
