"""Paired transforms on sample dicts, and image normalisation.

A transform is called as ``t(sample, rng)`` with a :class:`numpy.random.Generator` and returns a
new sample dict (the input is not modified). Geometric transforms move every per-pixel key
together: ``image`` (bilinear), ``mask``, ``instances`` and ``size_map`` (always nearest, so no
new labels appear), and keep ``boxes`` in step: when ``instances`` is present the boxes and
``box_labels`` are recomputed from the transformed instance map (instances cut away disappear and
the rest are renumbered 1..K); otherwise the boxes are moved, clipped, and dropped when empty.
Other keys pass through unchanged. Resizing uses Pillow (pixel-centre aligned for both bilinear
and nearest).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import torch
from PIL import Image

from pixelwise.convention import CAFFE_BGR, InputConvention, get_convention
from pixelwise.data.instances import boxes_from_instances, relabel_instances
from pixelwise.data.palette import IGNORE_INDEX

PIXEL_KEYS = ("mask", "instances", "size_map")
"""Per-pixel label keys moved with the image (nearest interpolation)."""

FILL = {"mask": IGNORE_INDEX, "instances": 0, "size_map": IGNORE_INDEX}
"""Value given to padded pixels of each label key."""

CAFFE_MEAN_RGB = (123, 117, 104)
"""The Caffe VGG mean colour in RGB, rounded: padding with it normalises to about 0."""

Transform = Callable[[dict, np.random.Generator], dict]


def _hw(sample: dict) -> tuple[int, int]:
    return tuple(sample["image"].shape[:2])  # type: ignore[return-value]


def _resize_labels(arr: np.ndarray, size_hw: tuple[int, int]) -> np.ndarray:
    """Nearest-neighbour resize of an (H, W) uint8 or int32 array to ``size_hw``."""
    h, w = size_hw
    if arr.dtype == np.uint8:
        return np.array(Image.fromarray(arr).resize((w, h), Image.NEAREST))
    out = Image.fromarray(arr.astype(np.int32)).resize((w, h), Image.NEAREST)
    return np.array(out, dtype=np.int32).astype(arr.dtype, copy=False)


def _fix_boxes(out: dict, geometry: Callable[[np.ndarray], np.ndarray] | None) -> dict:
    """Recompute boxes from ``instances`` if present, else move them with ``geometry``."""
    h, w = _hw(out)
    if "instances" in out:
        inst, old_ids = relabel_instances(out["instances"])
        out["instances"] = inst
        if "boxes" in out or "box_labels" in out:
            out["boxes"] = boxes_from_instances(inst)
            if "box_labels" in out:
                out["box_labels"] = np.asarray(out["box_labels"])[old_ids - 1].astype(np.int64)
        return out
    if "boxes" in out and geometry is not None:
        boxes = geometry(np.asarray(out["boxes"], dtype=np.float32).reshape(-1, 4))
        boxes[:, [0, 2]] = np.clip(boxes[:, [0, 2]], 0, w)
        boxes[:, [1, 3]] = np.clip(boxes[:, [1, 3]], 0, h)
        keep = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        out["boxes"] = boxes[keep].astype(np.float32)
        if "box_labels" in out:
            out["box_labels"] = np.asarray(out["box_labels"], dtype=np.int64)[keep]
    return out


def resize_sample(sample: dict, size_hw: tuple[int, int]) -> dict:
    """Return a copy of ``sample`` resized to ``size_hw`` = (H, W) (image bilinear, labels nearest)."""
    h0, w0 = _hw(sample)
    h, w = int(size_hw[0]), int(size_hw[1])
    if h < 1 or w < 1:
        raise ValueError(f"resize target must be at least 1x1, got {size_hw}")
    out = dict(sample)
    if (h, w) == (h0, w0):
        return out
    out["image"] = np.array(Image.fromarray(sample["image"]).resize((w, h), Image.BILINEAR))
    for key in PIXEL_KEYS:
        if key in sample:
            out[key] = _resize_labels(np.asarray(sample[key]), (h, w))
    sx, sy = w / w0, h / h0
    return _fix_boxes(out, lambda b: b * np.array([sx, sy, sx, sy], dtype=np.float32))


def pad_sample(
    sample: dict,
    size_hw: tuple[int, int],
    image_fill: Sequence[int] = CAFFE_MEAN_RGB,
    mask_fill: int = IGNORE_INDEX,
) -> dict:
    """Return a copy padded at the bottom/right to at least ``size_hw`` = (H, W).

    The image is padded with ``image_fill`` (RGB), the mask with ``mask_fill``, the other label
    keys per :data:`FILL`.
    """
    h0, w0 = _hw(sample)
    h, w = max(h0, size_hw[0]), max(w0, size_hw[1])
    out = dict(sample)
    if (h, w) == (h0, w0):
        return out
    img = np.empty((h, w, 3), dtype=np.uint8)
    img[:] = np.asarray(image_fill, dtype=np.uint8)
    img[:h0, :w0] = sample["image"]
    out["image"] = img
    for key in PIXEL_KEYS:
        if key in sample:
            arr = np.asarray(sample[key])
            fill = mask_fill if key == "mask" else FILL[key]
            big = np.full((h, w), fill, dtype=arr.dtype)
            big[:h0, :w0] = arr
            out[key] = big
    return out


def crop_sample(sample: dict, top: int, left: int, size_hw: tuple[int, int]) -> dict:
    """Return a copy cropped to rows ``top:top+H`` and columns ``left:left+W`` (must fit)."""
    h, w = size_hw
    h0, w0 = _hw(sample)
    if top < 0 or left < 0 or top + h > h0 or left + w > w0:
        raise ValueError(f"crop {size_hw} at ({top}, {left}) does not fit in {(h0, w0)}")
    out = dict(sample)
    out["image"] = np.array(sample["image"][top : top + h, left : left + w])  # copies
    for key in PIXEL_KEYS:
        if key in sample:
            out[key] = np.array(np.asarray(sample[key])[top : top + h, left : left + w])
    shift = np.array([left, top, left, top], dtype=np.float32)
    return _fix_boxes(out, lambda b: b - shift)


def hflip_sample(sample: dict) -> dict:
    """Return a copy mirrored left-right."""
    _, w = _hw(sample)
    out = dict(sample)
    out["image"] = np.ascontiguousarray(sample["image"][:, ::-1])
    for key in PIXEL_KEYS:
        if key in sample:
            out[key] = np.ascontiguousarray(np.asarray(sample[key])[:, ::-1])

    def flip(b: np.ndarray) -> np.ndarray:
        return np.stack([w - b[:, 2], b[:, 1], w - b[:, 0], b[:, 3]], axis=1)

    return _fix_boxes(out, flip)


def _as_hw(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    if len(size) != 2:
        raise ValueError(f"size must be an int or (H, W), got {size!r}")
    return int(size[0]), int(size[1])


class Compose:
    """Apply transforms in order, all drawing from the same generator."""

    def __init__(self, transforms: Sequence[Transform]) -> None:
        self.transforms = list(transforms)

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        """Return the transformed sample."""
        for t in self.transforms:
            sample = t(sample, rng)
        return sample

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


def scaled_size(height: int, width: int, scale: float) -> tuple[int, int]:
    """Return ``(h, w)``: ``height x width`` multiplied by ``scale``, rounded, at least 1x1."""
    return max(1, round(height * scale)), max(1, round(width * scale))


def rescale_image(image: np.ndarray, scale: float) -> np.ndarray:
    """Return the ``(h, w, 3)`` uint8 image resized by ``scale`` the way training resizes it
    (Pillow bilinear); the image itself when ``scale`` is 1."""
    if scale == 1.0:
        return image
    return resize_sample({"image": image}, scaled_size(*image.shape[:2], scale))["image"]


class Rescale:
    """Resize by the fixed factor ``scale`` (a model's input scale); ``labels=False`` resizes only
    the image, so that evaluation scores the network's upsampled output on the full-size labels."""

    def __init__(self, scale: float, *, labels: bool = True) -> None:
        if not scale > 0:
            raise ValueError(f"need scale > 0, got {scale}")
        self.scale, self.labels = float(scale), bool(labels)

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        """Return the rescaled sample."""
        if not self.labels:
            return {**sample, "image": rescale_image(sample["image"], self.scale)}
        return resize_sample(sample, scaled_size(*_hw(sample), self.scale))

    def __repr__(self) -> str:
        return f"Rescale({self.scale}, labels={self.labels})"


class RandomScale:
    """Resize by a factor drawn uniformly from ``[min_scale, max_scale]`` (aspect kept)."""

    def __init__(self, min_scale: float = 0.5, max_scale: float = 2.0) -> None:
        if not 0 < min_scale <= max_scale:
            raise ValueError(f"need 0 < min_scale <= max_scale, got {min_scale}, {max_scale}")
        self.min_scale, self.max_scale = float(min_scale), float(max_scale)

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        """Return the rescaled sample."""
        s = rng.uniform(self.min_scale, self.max_scale)
        return resize_sample(sample, scaled_size(*_hw(sample), s))

    def __repr__(self) -> str:
        return f"RandomScale({self.min_scale}, {self.max_scale})"


class RandomCrop:
    """Crop a random ``size`` window; smaller samples are first padded at the bottom/right.

    Padding: ``image_fill`` (RGB; default the Caffe mean colour, which normalises to ~0), masks
    ``mask_fill`` (default 255 = ignore), instances 0, size_map 255.
    """

    def __init__(
        self,
        size: int | Sequence[int],
        mask_fill: int = IGNORE_INDEX,
        image_fill: Sequence[int] = CAFFE_MEAN_RGB,
    ) -> None:
        self.size = _as_hw(size)
        self.mask_fill = int(mask_fill)
        self.image_fill = tuple(int(v) for v in image_fill)

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        """Return the cropped sample of exactly ``size``."""
        h, w = self.size
        padded = pad_sample(sample, (h, w), self.image_fill, self.mask_fill)
        ph, pw = _hw(padded)
        top = int(rng.integers(0, ph - h + 1))
        left = int(rng.integers(0, pw - w + 1))
        return crop_sample(padded, top, left, (h, w))

    def __repr__(self) -> str:
        return f"RandomCrop({self.size}, mask_fill={self.mask_fill})"


class RandomHorizontalFlip:
    """Mirror left-right with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = float(p)

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        """Return the sample, mirrored or not."""
        return hflip_sample(sample) if rng.uniform() < self.p else dict(sample)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


def normalize_image(
    image: np.ndarray, convention: InputConvention | str | dict = CAFFE_BGR
) -> torch.Tensor:
    """Return the network input for an ``(H, W, 3)`` uint8 RGB image: ``(3, H, W)`` float32 tensor,
    channels in the convention's order, ``(x * scale - mean) / std``."""
    conv = get_convention(convention)
    image = np.asarray(image)
    if image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"normalize_image expects (H, W, 3) RGB, got shape {image.shape}")
    if not (image.flags.writeable and image.flags.c_contiguous):
        image = np.array(image, order="C")  # torch.from_numpy needs a writable array
    x = torch.from_numpy(image).permute(2, 0, 1).to(torch.float32)
    if conv.channel_order.upper() == "BGR":
        x = x.flip(0)
    mean = torch.tensor(conv.mean, dtype=torch.float32).view(3, 1, 1)
    std = torch.tensor(conv.std, dtype=torch.float32).view(3, 1, 1)
    return ((x * conv.scale - mean) / std).contiguous()

