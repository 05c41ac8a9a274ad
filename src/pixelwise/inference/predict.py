"""Whole-image (and tiled) dense inference, and batched prediction over lists of images."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import nn

from pixelwise.convention import CAFFE_BGR, InputConvention
from pixelwise.data.transforms import normalize_image
from pixelwise.errors import PixelwiseError
from pixelwise.inference.sliding import sliding_window
from pixelwise.models.base import ModelInterface, as_model
from pixelwise.runtime import autocast, model_device


def input_convention(model: ModelInterface) -> InputConvention:
    """Return the model's input convention (the paper's Caffe BGR when it does not say)."""
    return model.input_convention or CAFFE_BGR


def model_palette(model: ModelInterface) -> np.ndarray:
    """Return the ``(256, 3)`` uint8 colour of every label for ``model``: its classes' own colours
    (the card's ``class_colors``, a CamVid checkpoint's, say), VOC colours for the other labels."""
    from pixelwise.data.palette import palette_table

    return palette_table(model.class_colors)


def check_image(image: np.ndarray, what: str = "image") -> np.ndarray:
    """Return ``image`` as an ``(H, W, 3)`` uint8 RGB array or raise a clear :class:`PixelwiseError`."""
    arr = np.asarray(image)
    if arr.ndim != 3 or arr.shape[2] != 3 or arr.dtype != np.uint8:
        raise PixelwiseError(f"{what} must be an (H, W, 3) uint8 RGB array, got {arr.shape} {arr.dtype}")
    if arr.shape[0] < 1 or arr.shape[1] < 1:
        raise PixelwiseError(f"{what} is empty ({arr.shape[0]}x{arr.shape[1]})")
    return arr


def image_tensor(image: np.ndarray, model: ModelInterface) -> torch.Tensor:
    """Return the ``(3, H, W)`` network input for an RGB uint8 image, on the model's device,
    normalised with the model's ``input_convention``."""
    return normalize_image(check_image(image), input_convention(model)).to(model_device(model))


def full_size(scores: torch.Tensor, size: tuple[int, int], mode: str = "bilinear") -> torch.Tensor:
    """Return ``(C, h, w)`` or ``(N, C, h, w)`` scores resized to ``size`` (float32; the input
    itself when it already has that size): a model run at an input scale below 1 is judged and
    drawn at the image's own size."""
    if tuple(scores.shape[-2:]) == tuple(size):
        return scores
    batch = scores if scores.dim() == 4 else scores[None]
    kwargs = {"align_corners": False} if mode == "bilinear" else {}
    out = torch.nn.functional.interpolate(batch.float(), size=tuple(size), mode=mode, **kwargs)
    return out if scores.dim() == 4 else out[0]


def dense_logits(
    model: nn.Module,
    x: torch.Tensor,
    *,
    tile: int | tuple[int, int] | None = None,
    overlap: float = 0.33,
    window: str = "linear",
    context: int = 0,
    precision: str = "fp32",
    progress: bool = False,
) -> torch.Tensor:
    """Return ``(N, C, H, W)`` float32 scores for ``(N, 3, H, W)`` input: whole image, or tiled.

    ``tile=None`` runs the whole image at once; otherwise :func:`sliding_window` with ``tile``,
    ``overlap``, ``window`` and ``context``. The model runs through ``forward_any_size`` (DeconvNet
    padded to a valid size and cropped back; a foreign module, taken to accept any size, as it is).
    """
    fwd = as_model(model).forward_any_size

    def run(t: torch.Tensor) -> torch.Tensor:
        with autocast(t.device, precision):
            return fwd(t).float()

    with torch.inference_mode():
        if tile is None:
            return run(x)
        return sliding_window(run, x, tile=tile, overlap=overlap, window=window, context=context, progress=progress)


def predict_batch(
    model: nn.Module,
    images: Sequence[np.ndarray],
    *,
    batch: int = 4,
    precision: str = "fp32",
) -> list[np.ndarray]:
    """Whole-image class probabilities for a list of RGB uint8 images.

    Images of the same size are stacked into batches of up to ``batch``. Returns one ``(C, H, W)``
    float32 array per image, in input order. For tiling, TTA or proposals use
    :func:`pixelwise.inference.segment` per image.
    """
    if batch < 1:
        raise PixelwiseError(f"--batch must be >= 1, got {batch}")
    model = as_model(model)  # a foreign module answers the model interface from here on
    out: list[np.ndarray | None] = [None] * len(images)
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, img in enumerate(images):
        by_size.setdefault(check_image(img, f"image {i}").shape[:2], []).append(i)
    for idx in by_size.values():
        for start in range(0, len(idx), batch):
            chunk = idx[start : start + batch]
            x = torch.stack([image_tensor(images[i], model) for i in chunk])
            probs = dense_logits(model, x, precision=precision).softmax(1).cpu().numpy()
            for i, p in zip(chunk, probs):
                out[i] = p.astype(np.float32)
    return out  # type: ignore[return-value]
