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
from PIL import Image, ImageEnhance

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


def window_sample(
    sample: dict,
    top: int,
    left: int,
    size_hw: tuple[int, int],
    image_fill: Sequence[int] = CAFFE_MEAN_RGB,
    mask_fill: int = IGNORE_INDEX,
) -> dict:
    """Return a copy showing rows ``top:top+H`` and columns ``left:left+W``; the window may reach
    outside the image, where the image gets ``image_fill``, the mask ``mask_fill`` and the other
    label keys their :data:`FILL` value."""
    h, w = int(size_hw[0]), int(size_hw[1])
    h0, w0 = _hw(sample)
    # overlap of the window with the image, in image and in window coordinates
    y0, x0 = max(top, 0), max(left, 0)
    y1, x1 = min(top + h, h0), min(left + w, w0)
    out = dict(sample)

    def take(arr: np.ndarray, fill) -> np.ndarray:
        res = np.empty((h, w) + arr.shape[2:], dtype=arr.dtype)
        res[...] = np.asarray(fill, dtype=arr.dtype)
        if y1 > y0 and x1 > x0:
            res[y0 - top : y1 - top, x0 - left : x1 - left] = arr[y0:y1, x0:x1]
        return res

    out["image"] = take(sample["image"], image_fill)
    for key in PIXEL_KEYS:
        if key in sample:
            out[key] = take(np.asarray(sample[key]), mask_fill if key == "mask" else FILL[key])
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


class Resize:
    """Resize to ``(H, W)`` if given a pair; given an int, scale the shorter side to it."""

    def __init__(self, size: int | Sequence[int]) -> None:
        self.size = size

    def __call__(self, sample: dict, rng: np.random.Generator | None = None) -> dict:
        """Return the resized sample (``rng`` is unused)."""
        if isinstance(self.size, int):
            h, w = _hw(sample)
            s = self.size / min(h, w)
            target = (max(1, round(h * s)), max(1, round(w * s)))
        else:
            target = _as_hw(self.size)
        return resize_sample(sample, target)

    def __repr__(self) -> str:
        return f"Resize({self.size!r})"


class RandomScale:
    """Resize by a factor drawn uniformly from ``[min_scale, max_scale]`` (aspect kept)."""

    def __init__(self, min_scale: float = 0.5, max_scale: float = 2.0) -> None:
        if not 0 < min_scale <= max_scale:
            raise ValueError(f"need 0 < min_scale <= max_scale, got {min_scale}, {max_scale}")
        self.min_scale, self.max_scale = float(min_scale), float(max_scale)

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        """Return the rescaled sample."""
        s = rng.uniform(self.min_scale, self.max_scale)
        h, w = _hw(sample)
        return resize_sample(sample, (max(1, round(h * s)), max(1, round(w * s))))

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


class ObjectCrop:
    """DeconvNet stage-1 style crop: centre a square window on one random object box.

    The window's side is ``max(box width, box height)`` times a factor drawn from
    ``enlarge`` (default 1.2 to 1.5), shifted by up to ``jitter`` of the side; parts outside the
    image are padded (image ``image_fill``, mask 255). The window is then resized to ``size``
    (default 250; follow with ``RandomCrop(224)`` and a flip as in the paper). Other objects inside
    the window keep their labels. A sample without boxes is resized whole (aspect not kept).
    """

    def __init__(
        self,
        size: int | Sequence[int] = 250,
        enlarge: tuple[float, float] = (1.2, 1.5),
        jitter: float = 0.1,
        image_fill: Sequence[int] = CAFFE_MEAN_RGB,
        min_box: float = 1.0,
    ) -> None:
        if not 0 < enlarge[0] <= enlarge[1]:
            raise ValueError(f"enlarge must be (low, high) with 0 < low <= high, got {enlarge}")
        self.size = _as_hw(size)
        self.enlarge = (float(enlarge[0]), float(enlarge[1]))
        self.jitter = float(jitter)
        self.image_fill = tuple(int(v) for v in image_fill)
        self.min_box = float(min_box)

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        """Return the object-centred crop, resized to ``size``."""
        boxes = np.asarray(sample.get("boxes", np.zeros((0, 4))), dtype=np.float32).reshape(-1, 4)
        sides = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
        usable = np.flatnonzero(sides >= self.min_box)
        if len(usable) == 0:
            return resize_sample(sample, self.size)
        x0, y0, x1, y1 = boxes[int(usable[rng.integers(len(usable))])]
        side = max(x1 - x0, y1 - y0) * rng.uniform(*self.enlarge)
        cx = (x0 + x1) / 2 + rng.uniform(-self.jitter, self.jitter) * side
        cy = (y0 + y1) / 2 + rng.uniform(-self.jitter, self.jitter) * side
        side_px = max(1, int(round(side)))
        top = int(round(cy - side_px / 2))
        left = int(round(cx - side_px / 2))
        window = window_sample(sample, top, left, (side_px, side_px), self.image_fill)
        return resize_sample(window, self.size)

    def __repr__(self) -> str:
        return f"ObjectCrop(size={self.size}, enlarge={self.enlarge}, jitter={self.jitter})"


class RandomHorizontalFlip:
    """Mirror left-right with probability ``p``."""

    def __init__(self, p: float = 0.5) -> None:
        self.p = float(p)

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        """Return the sample, mirrored or not."""
        return hflip_sample(sample) if rng.uniform() < self.p else dict(sample)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"


class ColorJitter:
    """Random brightness, contrast, saturation (factors in ``[1 - x, 1 + x]``) and hue shift
    (fraction of the colour circle in ``[-hue, hue]``), applied in random order to the image only."""

    def __init__(
        self,
        brightness: float = 0.2,
        contrast: float = 0.2,
        saturation: float = 0.2,
        hue: float = 0.0,
    ) -> None:
        if min(brightness, contrast, saturation, hue) < 0 or hue > 0.5:
            raise ValueError("jitter amounts must be >= 0 and hue <= 0.5")
        self.brightness, self.contrast, self.saturation, self.hue = (
            brightness,
            contrast,
            saturation,
            hue,
        )

    def __call__(self, sample: dict, rng: np.random.Generator) -> dict:
        """Return the sample with a jittered image."""
        img = Image.fromarray(sample["image"])
        ops = []
        if self.brightness:
            ops.append(("b", rng.uniform(1 - self.brightness, 1 + self.brightness)))
        if self.contrast:
            ops.append(("c", rng.uniform(1 - self.contrast, 1 + self.contrast)))
        if self.saturation:
            ops.append(("s", rng.uniform(1 - self.saturation, 1 + self.saturation)))
        if self.hue:
            ops.append(("h", rng.uniform(-self.hue, self.hue)))
        for k in rng.permutation(len(ops)):
            kind, f = ops[int(k)]
            if kind == "b":
                img = ImageEnhance.Brightness(img).enhance(f)
            elif kind == "c":
                img = ImageEnhance.Contrast(img).enhance(f)
            elif kind == "s":
                img = ImageEnhance.Color(img).enhance(f)
            else:
                hsv = np.array(img.convert("HSV"))
                hsv[:, :, 0] = (hsv[:, :, 0].astype(np.int16) + int(round(f * 255))) % 256
                img = Image.fromarray(hsv, "HSV").convert("RGB")
        out = dict(sample)
        out["image"] = np.array(img, dtype=np.uint8)
        return out

    def __repr__(self) -> str:
        return (
            f"ColorJitter(brightness={self.brightness}, contrast={self.contrast}, "
            f"saturation={self.saturation}, hue={self.hue})"
        )


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


def denormalize(
    tensor: torch.Tensor, convention: InputConvention | str | dict = CAFFE_BGR
) -> np.ndarray:
    """Undo :func:`normalize_image`: ``(3, H, W)`` -> ``(H, W, 3)`` uint8 RGB, or
    ``(N, 3, H, W)`` -> ``(N, H, W, 3)`` (rounded, clipped to 0..255)."""
    conv = get_convention(convention)
    x = tensor.detach().to("cpu", torch.float32)
    if x.ndim not in (3, 4) or x.shape[-3] != 3:
        raise ValueError(f"denormalize expects (3, H, W) or (N, 3, H, W), got {tuple(x.shape)}")
    shape = (3, 1, 1)
    mean = torch.tensor(conv.mean, dtype=torch.float32).view(shape)
    std = torch.tensor(conv.std, dtype=torch.float32).view(shape)
    x = (x * std + mean) / conv.scale
    if conv.channel_order.upper() == "BGR":
        x = x.flip(-3)
    x = x.round().clamp(0, 255).to(torch.uint8)
    return np.ascontiguousarray(x.movedim(-3, -1).numpy())
