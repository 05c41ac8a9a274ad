"""Class colours: the PASCAL VOC colour map, colourised masks and overlays."""

from __future__ import annotations

import numpy as np

IGNORE_INDEX = 255
"""Label value meaning "not scored" (VOC object boundaries, padding)."""

IGNORE_COLOR = (224, 224, 192)
"""Colour of the ignore label; it is entry 255 of the VOC colour map."""

VOC_CLASSES: list[str] = [
    "background",
    "aeroplane",
    "bicycle",
    "bird",
    "boat",
    "bottle",
    "bus",
    "car",
    "cat",
    "chair",
    "cow",
    "diningtable",
    "dog",
    "horse",
    "motorbike",
    "person",
    "pottedplant",
    "sheep",
    "sofa",
    "train",
    "tvmonitor",
]


def voc_palette(n: int = 256) -> np.ndarray:
    """Return the VOC colour map: ``(n, 3)`` uint8 RGB, row ``i`` is the colour of label ``i``.

    The three lowest bits of the label go to the highest bits of R, G and B; the next three to the
    next bits, and so on (so label 1 is dark red, 255 is (224, 224, 192)).
    """
    if n < 1:
        raise ValueError(f"voc_palette needs n >= 1, got {n}")
    labels = np.arange(n, dtype=np.int64)
    out = np.zeros((n, 3), dtype=np.int64)
    for bit in range(8):
        for channel in range(3):
            # bit (3*bit + channel) of the label becomes bit (7 - bit) of the channel
            out[:, channel] |= ((labels >> (3 * bit + channel)) & 1) << (7 - bit)
    return out.astype(np.uint8)


def palette_table(palette: np.ndarray | None = None) -> np.ndarray:
    """Return the ``(256, 3)`` uint8 colour of every label: the rows of ``palette`` (``(n, 3)``)
    first, VOC colours after them, and :data:`IGNORE_COLOR` for 255."""
    table = voc_palette(256)
    if palette is not None:
        pal = np.asarray(palette, dtype=np.uint8).reshape(-1, 3)[:256]
        table[: len(pal)] = pal
    table[IGNORE_INDEX] = IGNORE_COLOR
    return table


def label_mask(mask: np.ndarray, caller: str) -> np.ndarray:
    """Return ``mask`` as an ``(H, W)`` uint8 array; ValueError (naming ``caller``) if it is not
    2-D or holds labels outside 0..255."""
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"{caller} expects an (H, W) mask, got shape {mask.shape}")
    if mask.dtype != np.uint8:
        if mask.size and (mask.min() < 0 or mask.max() > 255):
            raise ValueError(f"{caller} expects labels in 0..255")
        mask = mask.astype(np.uint8)
    return mask


def colorize(mask: np.ndarray, palette: np.ndarray | None = None) -> np.ndarray:
    """Return the ``(H, W, 3)`` uint8 RGB colour image of an ``(H, W)`` label mask.

    ``palette`` is an ``(n, 3)`` array of class colours (default: VOC). Labels without a row get
    their VOC colour; label 255 (ignore) is always drawn in :data:`IGNORE_COLOR`.
    """
    return palette_table(palette)[label_mask(mask, "colorize")]


def overlay(
    image: np.ndarray,
    mask: np.ndarray,
    alpha: float = 0.5,
    palette: np.ndarray | None = None,
) -> np.ndarray:
    """Return ``(H, W, 3)`` uint8 RGB: the image with its labelled pixels tinted by class colour.

    Pixels labelled 0 (background) are left as they are; every other pixel (ignore included) is
    ``(1 - alpha) * image + alpha * colour``.
    """
    image = np.asarray(image)
    mask = np.asarray(mask)
    if image.ndim != 3 or image.shape[2] != 3 or image.shape[:2] != mask.shape:
        raise ValueError(
            f"overlay expects an (H, W, 3) image and an (H, W) mask, got {image.shape} and {mask.shape}"
        )
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in 0..1, got {alpha}")
    colour = colorize(mask, palette).astype(np.float32)
    out = image.astype(np.float32)
    tint = mask != 0
    out[tint] = (1.0 - alpha) * out[tint] + alpha * colour[tint]
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)
