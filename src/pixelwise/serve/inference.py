"""What the ``pixelwise serve`` page does, as plain functions (no gradio, no browser).

One request: :func:`load_upload` (the uploaded file -> RGB image, or a one-line
:class:`~pixelwise.errors.PixelwiseError` for anything that is not a usable image),
:func:`segment_image` (image + options -> :class:`Segmentation`: mask, proposal boxes, time), then
the views: :func:`colour_mask`, :func:`render_overlay` (with the boxes), :func:`legend_rows` /
:func:`legend_html`, :func:`summary_markdown`, and :func:`save_mask_png` (the index PNG to download).
Colours, overlay, class shares and inference are those of ``pixelwise predict``.
"""

from __future__ import annotations

import html
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pixelwise.errors import DataError, PixelwiseError, first_line
from pixelwise.inference.options import DenseOptions, PostOptions, ProposalOptions
from pixelwise.metrics import fallback_class_names
from pixelwise.serve.models import ServedModel

MAX_MEGAPIXELS = 25.0
"""Largest image accepted, in millions of pixels."""

MAX_MEGABYTES = 50.0
"""Largest upload accepted, in MB (10^6 bytes)."""

TTA_CHOICES = {
    "none": (None, None),
    "flip": ("flip", None),
    "scales 0.75 / 1 / 1.25": (None, (0.75, 1.0, 1.25)),
    "flip + scales": ("flip", (0.75, 1.0, 1.25)),
}
"""Test-time augmentation choices of the page: label -> (``tta``, ``scales``) of :class:`DenseOptions`."""

PROPOSAL_CHOICES = ("selective-search", "sliding", "none")
"""Proposal sources the page offers for DeconvNet/EDeconvNet (``none``: one whole-image pass)."""

BOX_COLOUR = (255, 221, 0)
"""Colour of the proposal boxes drawn on the overlay."""

KEPT_MASKS = 200
"""Masks to download kept on disk (the newest); older ones are deleted as new ones are written."""


@dataclass(frozen=True)
class ServeOptions:
    """Inference options of one request (the page's controls).

    ``tile``: sliding-window tile side in pixels (None: whole image); ``tile_context``: extra image
    around each tile (224 makes FCN tiling exact); ``tta``: a key of :data:`TTA_CHOICES`;
    ``proposals``: one of :data:`PROPOSAL_CHOICES` (used by DeconvNet and EDeconvNet only);
    ``top_k`` / ``min_box_frac``: proposal rules (None: the model's defaults); ``crf``: dense CRF.
    """

    tile: int | None = None
    tile_context: int = 0
    tta: str = "none"
    proposals: str = "selective-search"
    top_k: int | None = None
    min_box_frac: float | None = None
    crf: bool = False


@dataclass
class Segmentation:
    """The result of :func:`segment_image`: the image, its ``(H, W)`` uint8 label mask, the class
    names, the proposal boxes used (``(K, 4)`` ``[x0, y0, x1, y1]``, x1/y1 exclusive, may reach past
    the image; None for whole-image inference), seconds spent in :func:`segment`, and its ``info``."""

    image: np.ndarray
    mask: np.ndarray
    class_names: list[str]
    boxes: np.ndarray | None
    seconds: float
    info: dict = field(default_factory=dict)
    palette: np.ndarray | None = None  # (256, 3) uint8 label colours: the model's classes' (None: VOC)


# -- the upload -----------------------------------------------------------------------------------


def upload_name(path: str | Path) -> str:
    """Return the name to show for an uploaded file (its base name)."""
    return Path(path).name


def load_upload(path: str | Path | None, *, max_megapixels: float = MAX_MEGAPIXELS,
                max_megabytes: float = MAX_MEGABYTES) -> np.ndarray:
    """Read an uploaded file as an ``(H, W, 3)`` uint8 RGB image.

    Refuses, with a one-line :class:`PixelwiseError` naming the file (never a traceback): no file,
    a file over ``max_megabytes``, a file that is not an image, an image over ``max_megapixels``
    (checked from the header, before decoding), a truncated or corrupt image.
    """
    from PIL import Image, UnidentifiedImageError

    from pixelwise.data.io import read_image

    if path is None or str(path) == "":
        raise PixelwiseError("no image: upload one (PNG, JPEG, BMP, ...) or pick an example")
    path = Path(path)
    name = upload_name(path)
    if not path.is_file():
        raise PixelwiseError(f"{name}: the upload is gone; upload it again")
    size = path.stat().st_size
    if size == 0:
        raise PixelwiseError(f"{name}: the file is empty")
    if size > max_megabytes * 1e6:
        raise PixelwiseError(f"{name} is {size / 1e6:.1f} MB; the limit is {max_megabytes:g} MB")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as img:
                width, height = img.size
        except Image.DecompressionBombError:
            raise PixelwiseError(f"{name} is far too large (over {max_megapixels:g} megapixels)") from None
        except UnidentifiedImageError:
            raise PixelwiseError(f"{name} is not an image (PNG, JPEG, BMP, GIF, TIFF and WebP are)") from None
        except (OSError, ValueError, SyntaxError) as exc:
            raise PixelwiseError(f"{name}: unreadable image ({first_line(exc)})") from None
        if width * height > max_megapixels * 1e6:
            raise PixelwiseError(
                f"{name} is {width}x{height} ({width * height / 1e6:.1f} megapixels); the limit is "
                f"{max_megapixels:g} megapixels: downscale it first"
            )
        try:
            return read_image(path)
        except DataError as exc:
            raise PixelwiseError(str(exc).replace(str(path), name)) from None


# -- inference ------------------------------------------------------------------------------------


def segment_options(entry: ServedModel, options: ServeOptions) -> tuple[DenseOptions, ProposalOptions, PostOptions]:
    """Return the :func:`pixelwise.inference.segment` options of the page's choices for ``entry``
    (proposals only for DeconvNet/EDeconvNet; the model's proposal defaults where ``options`` say None)."""
    if options.tta not in TTA_CHOICES:
        raise PixelwiseError(f"unknown test-time augmentation {options.tta!r}; valid: {', '.join(TTA_CHOICES)}")
    if options.proposals not in PROPOSAL_CHOICES:
        raise PixelwiseError(f"unknown proposals {options.proposals!r}; valid: {', '.join(PROPOSAL_CHOICES)}")
    if options.tile is not None and options.tile < 32:
        raise PixelwiseError(f"tiles must be at least 32 pixels, got {options.tile}")
    tta, scales = TTA_CHOICES[options.tta]
    dense = DenseOptions(tile=options.tile, context=options.tile_context, tta=tta, scales=scales)
    proposals = ProposalOptions()
    if entry.uses_proposals and options.proposals != "none":
        top_k = options.top_k if options.top_k is not None else entry.proposal_defaults.get("top_k")
        frac = options.min_box_frac if options.min_box_frac is not None else entry.proposal_defaults.get("min_box_frac")
        proposals = ProposalOptions(method=options.proposals, top_k=top_k, min_box_frac=frac or None)
    return dense, proposals, PostOptions(crf=options.crf)


def segment_image(entry: ServedModel, image: np.ndarray, options: ServeOptions | None = None) -> Segmentation:
    """Segment ``image`` (``(H, W, 3)`` uint8 RGB) with ``entry``'s model through
    :func:`pixelwise.inference.segment`; returns the mask, the boxes used and the time taken."""
    from pixelwise.inference.pipeline import segment
    from pixelwise.inference.predict import model_palette

    options = options or ServeOptions()
    if options.crf:
        from pixelwise.inference.crf import crf_available

        if not crf_available():
            raise PixelwiseError("dense CRF needs the optional extra: pip install 'pixelwise[crf]'")
    info: dict = {}
    start = time.perf_counter()
    dense, proposals, post = segment_options(entry, options)
    probs = segment(entry.model, image, dense=dense, proposals=proposals, post=post, info=info)
    seconds = info.get("seconds", time.perf_counter() - start)
    mask = probs.argmax(0).astype(np.uint8)
    names = fallback_class_names(entry.class_names, probs.shape[0])
    boxes = None if info.get("box_list") is None else np.asarray(info["box_list"], dtype=np.int64).reshape(-1, 4)
    return Segmentation(image=image, mask=mask, class_names=names, boxes=boxes, seconds=float(seconds), info=info,
                        palette=model_palette(entry.model))


# -- views ----------------------------------------------------------------------------------------


DISPLAY_SIDE = 480
"""Small images are shown enlarged (whole pixel blocks) until their longer side nears this."""


def display_scale(shape: tuple[int, ...], side: int = DISPLAY_SIDE) -> int:
    """Return the whole factor small images are enlarged by for display (1 for images of ``side``
    pixels or more), so that a 96-px scene is not a thumbnail in the page."""
    longest = max(int(shape[0]), int(shape[1]), 1)
    return max(1, side // longest)


def _enlarge(array: np.ndarray, scale: int) -> np.ndarray:
    if scale == 1:
        return array
    return np.repeat(np.repeat(array, scale, axis=0), scale, axis=1)


def colour_mask(mask: np.ndarray, scale: int = 1, palette: np.ndarray | None = None) -> np.ndarray:
    """Return the ``(H, W, 3)`` colour image of a label mask (``palette`` colours, default VOC's, as
    ``pixelwise predict``), enlarged ``scale`` times (nearest neighbour)."""
    from pixelwise.data.palette import colorize

    return colorize(_enlarge(np.asarray(mask), scale), palette)


def render_overlay(image: np.ndarray, mask: np.ndarray, alpha: float = 0.5,
                   boxes: np.ndarray | None = None, scale: int = 1, palette: np.ndarray | None = None) -> np.ndarray:
    """Return the image with labelled pixels tinted by class colour at opacity ``alpha`` (0..1; the
    overlay of ``pixelwise predict``), enlarged ``scale`` times (nearest neighbour), with the proposal
    ``boxes`` (image pixels) outlined when given."""
    from PIL import Image, ImageDraw

    from pixelwise.data.palette import overlay

    alpha = min(max(float(alpha), 0.0), 1.0)
    out = overlay(_enlarge(np.asarray(image), scale), _enlarge(np.asarray(mask), scale), alpha, palette)
    if boxes is None or len(boxes) == 0:
        return out
    height, width = out.shape[:2]
    line = max(1, round(min(height, width) / 160))
    pil = Image.fromarray(out)
    draw = ImageDraw.Draw(pil)
    for x0, y0, x1, y1 in np.asarray(boxes, dtype=np.int64).reshape(-1, 4) * scale:
        # boxes may reach past the image (enlarged, not clipped): draw the part inside
        x0, y0 = max(int(x0), 0), max(int(y0), 0)
        x1, y1 = min(int(x1), width) - 1, min(int(y1), height) - 1
        if x1 > x0 and y1 > y0:
            draw.rectangle((x0, y0, x1, y1), outline=BOX_COLOUR, width=line)
    return np.asarray(pil)


def legend_rows(mask: np.ndarray, class_names: list[str], palette: np.ndarray | None = None) -> list[dict]:
    """Classes present in ``mask``, largest first: index, name, pixels, share (0..1) and colour
    (``#rrggbb``); the class summary of ``pixelwise predict``'s JSON plus the colour."""
    from pixelwise.data.palette import voc_palette
    from pixelwise.inference.summary import class_summary

    top = int(mask.max()) if mask.size else 0
    names = fallback_class_names(class_names, top + 1)
    palette = voc_palette(256) if palette is None else palette
    rows = class_summary(mask, names)
    for row in rows:
        r, g, b = (int(v) for v in palette[row["index"]])
        row["colour"] = f"#{r:02x}{g:02x}{b:02x}"
    return rows


def legend_html(rows: list[dict]) -> str:
    """Return the legend as an HTML table: colour swatch, class name, share of the image (%), pixels."""
    if not rows:
        return "<div class='pw-title'>Legend</div><p class='pw-muted'>Classes found and their share of the image.</p>"
    body = "".join(
        "<tr>"
        f"<td><span class='pw-swatch' style='background:{row['colour']}'></span></td>"
        f"<td class='pw-name'>{html.escape(str(row['name']))}</td>"
        f"<td class='pw-share'>{100 * row['share']:.1f}&nbsp;%</td>"
        f"<td class='pw-bar'><span style='width:{max(1.0, 100 * row['share']):.1f}%;background:{row['colour']}'>"
        "</span></td>"
        f"<td class='pw-pixels'>{row['pixels']:,} px</td>"
        "</tr>"
        for row in rows
    )
    head = "<thead><tr><th></th><th>class</th><th>share</th><th></th><th>pixels</th></tr></thead>"
    return f"<div class='pw-title'>Legend</div><table class='pw-legend' id='pw-legend'>{head}<tbody>{body}</tbody></table>"


def summary_markdown(entry: ServedModel, seg: Segmentation, total_seconds: float | None = None) -> str:
    """Return a short Markdown summary of one run: time taken, model, image size, what inference did."""
    height, width = seg.mask.shape
    parts = [f"**{seg.seconds:.2f} s** to segment"]
    if total_seconds is not None:
        parts[0] += f" ({total_seconds:.2f} s with reading and drawing)"
    parts.append(f"{width}x{height} px")
    parts.append(entry.label.split(" · ")[0])
    info = seg.info
    if info.get("proposals"):
        n = 0 if seg.boxes is None else len(seg.boxes)
        text = f"{n} {info['proposals']} box{'es' if n != 1 else ''}"
        if info.get("coverage") is not None:
            text += f" covering {100 * info['coverage']:.0f} %"
        if n == 0:
            text += " (none passed the box rules: whole-image pass)"
        parts.append(text)
    if info.get("views", 1) > 1:
        parts.append(f"{info['views']} TTA views")
    if info.get("crf"):
        parts.append("dense CRF")
    return " · ".join(parts)


def safe_stem(name: str) -> str:
    """Return a file-name-safe stem for an upload name (letters, digits, ``-``, ``_``, ``.``)."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", Path(name).stem).strip("._") or "image"
    return stem[:80]


def save_mask_png(mask: np.ndarray, folder: str | Path, name: str = "image",
                  palette: np.ndarray | None = None) -> Path:
    """Write ``mask`` as an index PNG (palette PNG, pixel value = class index, ``palette`` colours,
    default VOC's) named
    ``<stem>_mask.png`` into a new sub-folder of ``folder``, atomically; return its path."""
    import tempfile

    from pixelwise.fileio import atomic_file
    from pixelwise.data.io import write_mask
    from pixelwise.data.palette import voc_palette

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    target = Path(tempfile.mkdtemp(prefix="mask-", dir=folder)) / f"{safe_stem(name)}_mask.png"
    with atomic_file(target) as tmp:
        write_mask(tmp, mask, voc_palette(256) if palette is None else palette)  # always PNG, whatever the temporary name
    prune_masks(folder, KEPT_MASKS)
    return target


def prune_masks(folder: Path, keep: int) -> int:
    """Delete all but the ``keep`` newest mask folders :func:`save_mask_png` made in ``folder``;
    return how many were deleted (one being removed by another request at the same time is fine)."""
    import shutil

    def age(path: Path) -> int:
        try:
            return path.stat().st_mtime_ns
        except OSError:  # removed meanwhile
            return 0

    made = sorted(folder.glob("mask-*"), key=age)
    old = made[: max(0, len(made) - keep)]
    for path in old:
        shutil.rmtree(path, ignore_errors=True)
    return len(old)
