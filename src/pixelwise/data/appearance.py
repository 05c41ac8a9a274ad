"""How objects of the built-in ``objects`` world look: per-class colour, texture and parts.

The ``objects`` world (:class:`pixelwise.data.synthetic.SyntheticShapes`, the default) gives every
class characteristic but overlapping appearance statistics on top of its shape, as real
categories have, so that local evidence informs and shape and context disambiguate:

- **Colour family.** Each class has a hue centre; hue families are *shared by two or three
  classes* (disc and triangle are both reddish), so colour narrows the class down without naming
  it. An object takes its class hue (Gaussian spread) with probability 0.8 and any hue otherwise,
  with a random saturation and brightness (greyish objects carry no hue at all).
- **Texture family.** Each class has a preferred texture (stripes, checker, dots, blotches,
  gradient, speckle), again *shared with other classes* (disc and square both striped). It is used
  with probability 0.8, any texture otherwise; its pattern scales with the object (periods are a
  fraction of its radius) and its angle and phase vary per object.
- **Parts.** Each class has one characteristic part drawn inside the object, in the object's own
  rotated frame: a rim along the outline, two "eyes", or a central core, of a contrasting colour
  (probability 0.8; any other part with probability 0.1). Parts are evidence at the scale of the
  object, and vanish on tiny objects as details do in real photographs.

Each class is unique only in the *combination* of its colour family, texture and part (see
:data:`CLASS_STYLES`); every single cue is shared with another class. The background and the
clutter patches of :mod:`pixelwise.data.synthetic` use the same cues without the classes' shapes,
so no cue alone decides "object". Why each property is there is written down in
``docs/data.md`` (the built-in world).
"""

from __future__ import annotations

import colorsys
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

TEXTURE_FAMILIES = ("stripes", "checker", "dots", "blotches", "gradient", "speckle")
PARTS = ("rim", "eyes", "core")

HUES = {"red": 0.0, "yellow": 55.0, "green": 130.0, "blue": 220.0, "purple": 285.0}


@dataclass(frozen=True)
class ClassStyle:
    """The appearance statistics of one object class."""

    hue: float  # degrees
    texture: str
    part: str


CLASS_STYLES: tuple[ClassStyle, ...] = (
    ClassStyle(HUES["red"], "stripes", "rim"),  # disc
    ClassStyle(HUES["blue"], "stripes", "eyes"),  # square
    ClassStyle(HUES["red"], "checker", "core"),  # triangle
    ClassStyle(HUES["green"], "dots", "rim"),  # ring
    ClassStyle(HUES["blue"], "blotches", "core"),  # cross
    ClassStyle(HUES["yellow"], "checker", "eyes"),  # star
    ClassStyle(HUES["green"], "gradient", "core"),  # ellipse
    ClassStyle(HUES["yellow"], "dots", "rim"),  # hexagon
    ClassStyle(HUES["purple"], "stripes", "core"),  # crescent
    ClassStyle(HUES["purple"], "blotches", "eyes"),  # bar
    ClassStyle(HUES["red"], "speckle", "eyes"),  # l_shape
)
"""Style of class ``k`` (k >= 1) is ``CLASS_STYLES[k - 1]``, in the order of the shapes."""

P_CLASS_HUE = 0.8
HUE_SPREAD = 20.0  # degrees, standard deviation around the class hue
P_CLASS_TEXTURE = 0.8
P_CLASS_PART = 0.8
P_OTHER_PART = 0.1


def hsv_colour(hue_deg: float, saturation: float, value: float) -> np.ndarray:
    """Return an RGB colour (3,) float32 in 0..255 from hue in degrees, saturation and value in 0..1."""
    r, g, b = colorsys.hsv_to_rgb((hue_deg % 360.0) / 360.0, saturation, value)
    return np.array([r, g, b], dtype=np.float32) * 255.0


def draw_colour(rng: np.random.Generator, hue: float | None) -> np.ndarray:
    """Return a colour of hue family ``hue`` (or any hue when None), random saturation/brightness."""
    h = rng.uniform(0, 360) if hue is None else rng.normal(hue, HUE_SPREAD)
    return hsv_colour(h, rng.uniform(0.25, 0.95), rng.uniform(0.35, 0.95))


def contrasting(rng: np.random.Generator, colour: np.ndarray) -> np.ndarray:
    """Return a colour clearly different from ``colour`` (for texture second colours and parts)."""
    d = rng.normal(size=3)
    d *= rng.uniform(70, 140) / (np.linalg.norm(d) + 1e-6)
    out = colour + d
    # reflect off the borders so that saturated colours still get a contrast
    out = np.where(out > 255, 2 * colour - out, out)
    out = np.where(out < 0, 2 * colour - out, out)
    return np.clip(out, 0, 255).astype(np.float32)


def texture_pattern(
    rng: np.random.Generator, kind: str, ys: np.ndarray, xs: np.ndarray, scale: float
) -> np.ndarray:
    """Return a ``(h, w)`` float32 mixing weight in 0..1 of texture ``kind`` over the pixel grid
    ``ys`` (h, 1), ``xs`` (1, w). ``scale`` (pixels) sets the pattern's size: periods are
    ``scale`` x 0.4-0.7 (at least 2.5 pixels), blotches ``scale``-sized, gradients span 2-4
    ``scale``. The background uses a fixed scale; an object its own radius, so that its texture
    grows with it, as a zebra's stripes do, and looks the same in every crop centred on it."""
    h, w = ys.shape[0], xs.shape[1]
    period = max(2.5, scale * rng.uniform(0.4, 0.7))
    if kind == "stripes":
        a = rng.uniform(0, math.pi)
        phase = rng.uniform(0, 2 * math.pi)
        t = np.sin(2 * math.pi * (xs * math.cos(a) + ys * math.sin(a)) / period + phase) > 0
    elif kind == "checker":
        cell = period / 2
        oy, ox = rng.uniform(0, period, size=2)
        t = (np.floor((ys + oy) / cell) + np.floor((xs + ox) / cell)) % 2
    elif kind == "dots":
        radius = period * rng.uniform(0.22, 0.32)
        oy, ox = rng.uniform(0, period, size=2)
        fy = np.mod(ys + oy, period) - period / 2
        fx = np.mod(xs + ox, period) - period / 2
        t = fy * fy + fx * fx <= radius * radius
    elif kind == "blotches":
        cell = max(3.0, scale * rng.uniform(0.5, 0.9))
        gh, gw = int(math.ceil(h / cell)) + 2, int(math.ceil(w / cell)) + 2
        coarse = rng.uniform(0, 255, size=(gh, gw)).astype(np.uint8)
        big = np.asarray(Image.fromarray(coarse).resize((gw * 8, gh * 8), Image.BILINEAR), dtype=np.float32)
        iy = np.clip(((ys[:, 0] - ys[0, 0]) / cell * 8).astype(np.int64), 0, gh * 8 - 1)
        ix = np.clip(((xs[0] - xs[0, 0]) / cell * 8).astype(np.int64), 0, gw * 8 - 1)
        t = big[iy][:, ix] / 255.0 > 0.5
    elif kind == "gradient":
        a = rng.uniform(0, 2 * math.pi)
        span = max(4.0, scale * rng.uniform(2.0, 4.0))
        t = np.abs(((xs * math.cos(a) + ys * math.sin(a)) / span) % 2.0 - 1.0)
    elif kind == "speckle":
        t = rng.uniform(0, 1, size=(h, w)) < rng.uniform(0.25, 0.5)
    else:  # pragma: no cover - kinds come from TEXTURE_FAMILIES
        raise ValueError(f"unknown texture {kind!r}")
    return np.broadcast_to(np.asarray(t, dtype=np.float32), (h, w))


def styled_texture(
    rng: np.random.Generator,
    ys: np.ndarray,
    xs: np.ndarray,
    scale: float,
    style: ClassStyle | None,
) -> np.ndarray:
    """Return a ``(h, w, 3)`` float32 texture over ``ys`` (h, 1), ``xs`` (1, w) drawn from
    ``style``'s statistics (None: the background's, which is any colour and any texture), at
    pattern size ``scale`` pixels (see :func:`texture_pattern`)."""
    hue = style.hue if style is not None and rng.uniform() < P_CLASS_HUE else None
    c1 = draw_colour(rng, hue)
    c2 = contrasting(rng, c1)
    if style is not None and rng.uniform() < P_CLASS_TEXTURE:
        kind = style.texture
    else:
        kind = TEXTURE_FAMILIES[int(rng.integers(len(TEXTURE_FAMILIES)))]
    t = texture_pattern(rng, kind, ys, xs, scale)[:, :, None]
    return (c1 * (1.0 - t) + c2 * t).astype(np.float32)


def choose_part(rng: np.random.Generator, style: ClassStyle) -> str | None:
    """Return the part an object of ``style`` shows, or None: its own with probability 0.8,
    else each other part in turn with 0.1."""
    if rng.uniform() < P_CLASS_PART:
        return style.part
    for part in PARTS:
        if part != style.part and rng.uniform() < P_OTHER_PART:
            return part
    return None


def part_region(
    part: str, u: np.ndarray, v: np.ndarray, inside_scaled: Callable[[float], np.ndarray]
) -> np.ndarray:
    """Return the bool map of ``part`` in shape coordinates ``u, v`` (unit circumradius, rotated
    with the object); ``inside_scaled(s)`` is the shape's inside test at scale ``s``."""
    if part == "rim":
        return ~inside_scaled(0.78)
    if part == "eyes":
        r2 = 0.13**2
        return ((u - 0.3) ** 2 + (v + 0.3) ** 2 <= r2) | ((u + 0.3) ** 2 + (v + 0.3) ** 2 <= r2)
    if part == "core":
        return u * u + v * v <= 0.3**2
    raise ValueError(f"unknown part {part!r}")  # pragma: no cover


__all__ = [
    "CLASS_STYLES",
    "ClassStyle",
    "PARTS",
    "TEXTURE_FAMILIES",
    "choose_part",
    "contrasting",
    "part_region",
    "styled_texture",
]
