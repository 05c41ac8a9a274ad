"""Reading and writing images and label masks, with one clear error per bad file.

Images always come back as ``(H, W, 3)`` uint8 RGB, whatever the file holds:

- grayscale (1-bit, 8-bit, 16-bit) is repeated over the three channels; 16-bit and 32-bit integer
  samples are scaled to 0..255 (``v * 255 / 65535``, rounded);
- palette images are expanded through their palette;
- an alpha channel (RGBA, LA, palette transparency) is composited **on white**, so transparent
  areas look like they do in a browser instead of turning black;
- CMYK, YCbCr, LAB and HSV are converted to RGB;
- the EXIF orientation tag is applied (the pixels come back upright, as viewers show them);
- multi-frame files (GIF, TIFF) give their first frame.

Masks come back as ``(H, W)`` uint8 class indices (255 = ignore):

- palette PNGs (VOC style) give their palette indices, not their colours;
- grayscale PNGs give their values (16-bit masks must hold values <= 255);
- RGB(A) masks: with the class colours of a coloured classes file (``color_map``, see
  :mod:`pixelwise.data.classes`) each colour is mapped to its class, void colours to 255, and a
  colour in no class is an error naming the file and the colour (or 255 on request). Without class
  colours: if every pixel is gray (R = G = B) the gray value is the label; otherwise every colour
  must be a VOC colour map entry and is mapped back to its index ((224, 224, 192) -> 255). Any other
  colour is refused with the file name and the colour, since a colour mask without its palette
  cannot be decoded reliably.

A missing, unreadable or truncated file raises :class:`~pixelwise.errors.DataError` naming it.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from pixelwise.data.classes import ColorMap, check_unknown_policy, format_color, pack, unpack
from pixelwise.data.palette import IGNORE_COLOR, IGNORE_INDEX, label_mask, palette_table, voc_palette
from pixelwise.errors import DataError

PathLike = str | os.PathLike

_COMMON_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp")

# Formats Pillow registers an opener for but that give no pixels here: stubs needing a handler
# (BUFR, GRIB, HDF5, WMF), MPEG (reads only the size of a video), IPTC (metadata records).
_UNUSABLE_FORMATS = ("MPEG", "IPTC")


def readable_image_extensions() -> tuple[str, ...]:
    """Return the lower-case extensions of every format this Pillow can read pixels from.

    Derived from ``PIL.Image.registered_extensions()``, keeping formats with an opener
    (``Image.OPEN``) that are not stubs; EPS/PS only when Ghostscript is installed. The common
    ``.jpg .jpeg .png .bmp`` come first, the rest sorted (``.tif .tiff .webp .gif .ppm ...``).
    """
    from PIL import EpsImagePlugin, ImageFile

    found = set()
    for ext, fmt in Image.registered_extensions().items():
        opener = Image.OPEN.get(fmt)
        if opener is None or fmt in _UNUSABLE_FORMATS:
            continue
        factory = opener[0]
        if isinstance(factory, type) and issubclass(factory, ImageFile.StubImageFile):
            continue
        if fmt == "EPS" and not EpsImagePlugin.has_ghostscript():
            continue
        found.add(ext.lower())
    rest = sorted(found - set(_COMMON_EXTENSIONS))
    return tuple(e for e in _COMMON_EXTENSIONS if e in found) + tuple(rest)


IMAGE_EXTENSIONS = readable_image_extensions()
"""File extensions treated as images by the folder dataset (case-insensitive): every format the
installed Pillow reads (see :func:`readable_image_extensions`)."""


def _open(path: PathLike, what: str) -> Image.Image:
    """Open and fully decode ``path`` (so truncation is found now); DataError on failure."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: {what} file not found")
    try:
        img = Image.open(path)
        img.load()
    except UnidentifiedImageError:
        raise DataError(
            f"{path}: unreadable {what} (not an image file Pillow recognises)"
        ) from None
    except (OSError, ValueError, SyntaxError) as exc:  # truncated or corrupt data
        raise DataError(f"{path}: unreadable {what} ({exc})") from None
    except Image.DecompressionBombError as exc:
        raise DataError(f"{path}: {what} too large to decode ({exc})") from None
    return img


def _upright(img: Image.Image, path: PathLike, what: str) -> Image.Image:
    """Apply the EXIF orientation tag (a no-op without one)."""
    try:
        out = ImageOps.exif_transpose(img)
    except Exception as exc:  # malformed EXIF block
        raise DataError(f"{path}: unreadable EXIF orientation in {what} ({exc})") from None
    return img if out is None else out


def _integer_to_uint8(arr: np.ndarray) -> np.ndarray:
    """Scale 16/32-bit integer samples (0..65535) to uint8 0..255."""
    arr = np.clip(arr.astype(np.float64), 0, 65535)
    return np.rint(arr * (255.0 / 65535.0)).astype(np.uint8)


def read_image(path: PathLike) -> np.ndarray:
    """Read an image file; return ``(H, W, 3)`` uint8 RGB (see the module docstring for the rules)."""
    img = _open(path, "image")
    img = _upright(img, path, "image")
    mode = img.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        gray = _integer_to_uint8(np.asarray(img))
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    if mode == "F":
        gray = np.asarray(img, dtype=np.float64)
        if gray.size and np.nanmax(gray) <= 1.0:  # float images are usually 0..1
            gray = gray * 255.0
        gray = np.clip(np.nan_to_num(np.rint(gray)), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2))
    has_alpha = mode in ("RGBA", "LA", "PA", "RGBa", "La") or (
        mode in ("P", "L", "RGB") and "transparency" in img.info
    )
    if has_alpha:
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba).convert("RGB")
    elif mode != "RGB":
        img = img.convert("RGB")
    arr = np.array(img, dtype=np.uint8)  # a writable copy
    if arr.ndim != 3 or arr.shape[2] != 3:  # pragma: no cover - defensive
        raise DataError(f"{path}: could not convert image of mode {mode} to RGB")
    return np.ascontiguousarray(arr)


def _colour_lookup() -> dict[int, int]:
    """Map packed 0xRRGGBB VOC colours to their label (ignore colour -> 255)."""
    table = {int(c): i for i, c in enumerate(pack(voc_palette(256)))}
    table[int(pack(np.array(IGNORE_COLOR)))] = IGNORE_INDEX
    return table


def read_mask(
    path: PathLike, color_map: ColorMap | None = None, unknown_colors: str = "error"
) -> np.ndarray:
    """Read a label mask; return ``(H, W)`` uint8 class indices (255 = ignore).

    Palette and grayscale PNGs are read as indices. RGB masks are decoded by ``color_map`` (the
    class colours of a coloured classes file) when given, else as described in the module
    docstring. A colour in no class raises :class:`DataError` naming the file and the colour, or
    becomes 255 with ``unknown_colors="ignore"``. Anything else unreadable raises DataError.
    """
    if color_map is None:
        return _read_index_mask(path)
    check_unknown_policy(unknown_colors)
    mask, unknown = read_color_mask(path, color_map)
    if unknown and unknown_colors == "error":
        colour, count = unknown[0]
        more = f"; {len(unknown)} colours in no class in all" if len(unknown) > 1 else ""
        raise DataError(
            f"{path}: colour {format_color(colour)} ({count} px{more}) is in no class of "
            f"{color_map.source}; add it there (as a class, or as `void R G B` to ignore it) or "
            "load with unknown_colors='ignore'"
        )
    return mask


def read_color_mask(
    path: PathLike, color_map: ColorMap
) -> tuple[np.ndarray, list[tuple[tuple[int, int, int], int]]]:
    """Read a mask with class colours; return ``(mask, unknown)``.

    RGB(A) masks (alpha ignored) are mapped through ``color_map``: class colours to their index,
    void colours to 255; pixels of any other colour are 255 and listed in ``unknown`` as
    ``((r, g, b), pixels)``, most pixels first. Palette, grayscale and 16-bit masks are indices
    (``unknown`` empty).
    """
    img = _open(path, "mask")
    img = _upright(img, path, "mask")
    if img.mode not in ("RGB", "RGBA", "RGBX", "RGBa"):
        return _index_mask(img, path), []
    return color_map.decode(np.asarray(img)[:, :, :3])


def _read_index_mask(path: PathLike) -> np.ndarray:
    img = _open(path, "mask")
    img = _upright(img, path, "mask")
    return _index_mask(img, path)


def _index_mask(img: Image.Image, path: PathLike) -> np.ndarray:
    """Labels of an opened mask (the rules of the module docstring, without class colours)."""
    mode = img.mode
    if mode in ("P", "L", "1"):
        return np.array(img, dtype=np.uint8)  # a writable copy
    if mode == "PA":
        return np.ascontiguousarray(np.asarray(img)[:, :, 0].astype(np.uint8))
    if mode == "LA":
        return np.ascontiguousarray(np.asarray(img)[:, :, 0].astype(np.uint8))
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        arr = np.asarray(img)
        if arr.size and (arr.min() < 0 or arr.max() > 255):
            raise DataError(
                f"{path}: mask holds label {int(arr.max())}; labels must be 0..255 (255 = ignore)"
            )
        return arr.astype(np.uint8)
    if mode in ("RGB", "RGBA"):
        arr = np.asarray(img)[:, :, :3]
        if np.array_equal(arr[:, :, 0], arr[:, :, 1]) and np.array_equal(
            arr[:, :, 0], arr[:, :, 2]
        ):
            return np.array(arr[:, :, 0])
        colours, inverse = np.unique(pack(arr).ravel(), return_inverse=True)
        table = _colour_lookup()
        labels = np.empty(len(colours), dtype=np.uint8)
        for k, c in enumerate(colours):
            label = table.get(int(c))
            if label is None:
                raise DataError(
                    f"{path}: RGB colour mask with colour {unpack(c)}, which is not in the VOC "
                    "colour map; save masks as palette or grayscale PNGs holding class indices"
                )
            labels[k] = label
        return labels[inverse].reshape(arr.shape[:2])
    raise DataError(f"{path}: cannot read a label mask from an image of mode {mode}")


def write_mask(path: PathLike, mask: np.ndarray, palette: np.ndarray | None = None) -> None:
    """Write an ``(H, W)`` uint8 label mask as a palette PNG (VOC colours unless ``palette`` is given).

    Palette rows beyond those given are VOC colours; label 255 is drawn in the VOC ignore colour.
    Parent directories are created.
    """
    mask = label_mask(mask, "write_mask")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(np.ascontiguousarray(mask))
    img.putpalette(palette_table(palette).ravel().tolist())
    img.save(path, format="PNG")


def write_image(path: PathLike, rgb: np.ndarray, quality: int = 95) -> None:
    """Write an ``(H, W, 3)`` uint8 RGB image; the format follows the extension (JPEG quality 95)."""
    rgb = np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"write_image expects (H, W, 3) uint8 RGB, got {rgb.shape} {rgb.dtype}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(np.ascontiguousarray(rgb))
    if path.suffix.lower() in (".jpg", ".jpeg"):
        img.save(path, quality=quality)
    else:
        img.save(path)

