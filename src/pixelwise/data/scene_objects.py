"""Objects of the built-in ``scenes`` world: upright shapes with thin parts and a look of their own.

Every class is recognisable the way a VOC category is to an ImageNet network: it has one hue
(:data:`SCENE_LOOKS`, +-10 degrees; taken with probability :data:`P_CLASS_LOOK`, any hue
otherwise), strong saturation (0.55-0.95, where backgrounds stay under 0.4), one texture of its
own in shades of that hue, and its shape. What makes the world hard is localisation: thin parts a
few pixels wide that belong to the object (a disc's string, a square's legs, a triangle's trunk,
a ring's spokes and rim, a thin cross, a thin-rayed star, an ellipse's antennae), so that output
stride, unpooling and the CRF show at the boundaries. Objects stand upright (tilted by a few
degrees) so that the parts hang where a person expects them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from pixelwise.data.appearance import hsv_colour
from pixelwise.data.shapes import SHAPES, shape_inside


@dataclass(frozen=True)
class SceneLook:
    """The look of one ``scenes`` class: hue (degrees) and texture (``flat``, ``stripes``,
    ``dots``, ``checker``, ``speckle`` or ``bands``)."""

    hue: float
    texture: str


SCENE_LOOKS: tuple[SceneLook, ...] = (
    SceneLook(0.0, "flat"),  # disc: red
    SceneLook(225.0, "stripes"),  # square: blue
    SceneLook(120.0, "dots"),  # triangle: green
    SceneLook(30.0, "flat"),  # ring: orange
    SceneLook(280.0, "checker"),  # cross: purple
    SceneLook(55.0, "speckle"),  # star: yellow
    SceneLook(180.0, "bands"),  # ellipse: cyan
    SceneLook(320.0, "dots"),  # hexagon: magenta
    SceneLook(15.0, "stripes"),  # crescent: red-orange
    SceneLook(250.0, "flat"),  # bar: indigo
    SceneLook(90.0, "checker"),  # l_shape: lime
)
"""Look of class ``k`` (k >= 1) is ``SCENE_LOOKS[k - 1]``, in the order of :data:`SHAPES`."""

P_CLASS_LOOK = 0.95
HUE_SPREAD = 10.0
TILT_DEGREES = 10.0
"""Standard deviation of an object's tilt from upright."""
EXTENT = 1.9
"""How far (in radii) a ``scenes`` object reaches from its centre, thin parts included."""
THIN_PX = 1.2
"""Half-width of thin parts in pixels (at least; they grow to 4 % of the radius on large objects)."""


def scene_palette(num_classes: int) -> np.ndarray:
    """Return the ``(num_classes, 3)`` uint8 class colours of the ``scenes`` world for figures and
    masks: black background, then each class in its own hue (a red disc is drawn red)."""
    colours = [np.zeros(3, np.float32)] + [hsv_colour(look.hue, 0.75, 0.85) for look in SCENE_LOOKS[: num_classes - 1]]
    return np.rint(np.stack(colours)).astype(np.uint8)


def _segment(u: np.ndarray, v: np.ndarray, p: tuple[float, float], q: tuple[float, float], half: float) -> np.ndarray:
    """Return the bool map of points within ``half`` of the segment ``p``-``q`` (shape coordinates)."""
    du, dv = q[0] - p[0], q[1] - p[1]
    t = np.clip(((u - p[0]) * du + (v - p[1]) * dv) / (du * du + dv * dv), 0.0, 1.0)
    eu, ev = u - (p[0] + t * du), v - (p[1] + t * dv)
    return eu * eu + ev * ev <= half * half


def scene_shape_inside(shape: str, u: np.ndarray, v: np.ndarray, thin: float) -> np.ndarray:
    """Return the bool inside map of a ``scenes`` object in shape coordinates (unit radius for the
    body, ``v`` pointing down when upright); ``thin`` is the thin parts' half-width in radii."""
    if shape == "disc":  # a balloon on its string
        return shape_inside("disc", u, v) | _segment(u, v, (0.0, 0.9), (0.1, 1.85), thin)
    if shape == "square":  # a table: top and two legs
        body = np.maximum(np.abs(u), np.abs(v + 0.2)) <= 0.7
        legs = _segment(u, v, (-0.55, 0.4), (-0.6, 1.6), thin) | _segment(u, v, (0.55, 0.4), (0.6, 1.6), thin)
        return body | legs
    if shape == "triangle":  # a tree: apex up, a trunk below
        return shape_inside("triangle", u, -v) | _segment(u, v, (0.0, 0.4), (0.0, 1.4), 1.6 * thin)
    if shape == "ring":  # a wheel: thin rim, spokes, hub
        rr = u * u + v * v
        rim = (rr <= 1.0) & (rr >= (1.0 - 2.5 * thin) ** 2)
        spokes = np.zeros(u.shape, dtype=bool)
        for k in range(3):
            a = k * math.pi / 3
            spokes |= _segment(u, v, (-math.cos(a), -math.sin(a)), (math.cos(a), math.sin(a)), thin)
        return rim | spokes | (rr <= 0.2**2)
    if shape == "cross":  # thin arms
        au, av = np.abs(u), np.abs(v)
        arm = max(0.12, 1.6 * thin)
        return ((au <= arm) & (av <= 1.0)) | ((av <= arm) & (au <= 1.0))
    if shape == "star":  # a star of thin rays around a small core
        phi = np.mod(np.arctan2(v, u) + math.pi / 2, 2 * math.pi / 5)
        beta = np.minimum(phi, 2 * math.pi / 5 - phi)
        rho = np.sqrt(u * u + v * v)
        return (rho <= 0.3) | ((rho <= 1.0) & (rho * np.sin(beta) <= np.maximum(thin * 1.5, 0.12 * (1.0 - rho))))
    if shape == "ellipse":  # a beetle with two antennae
        body = u * u + ((v - 0.2) / 0.6) ** 2 <= 1.0
        return body | _segment(u, v, (-0.25, -0.3), (-0.6, -1.1), thin) | _segment(u, v, (0.25, -0.3), (0.6, -1.1), thin)
    return shape_inside(shape, u, v)


def thin_half_width(radius: float) -> float:
    """Return the thin parts' half-width in radii for an object of ``radius`` pixels."""
    return max(THIN_PX, 0.04 * radius) / max(radius, 1e-6)


def draw_tilt(rng: np.random.Generator) -> float:
    """Return an object's angle (radians): upright plus a small random tilt."""
    return math.radians(rng.normal(0.0, TILT_DEGREES))


def scene_texture(rng: np.random.Generator, cls: int, u: np.ndarray, v: np.ndarray, radius: float) -> np.ndarray:
    """Return the ``(h, w, 3)`` float32 look of a class-``cls`` object over its box (shape
    coordinates ``u``, ``v``), with light from above (its top up to 25 % brighter)."""
    look = SCENE_LOOKS[cls - 1]
    hue = rng.normal(look.hue, HUE_SPREAD) if rng.uniform() < P_CLASS_LOOK else rng.uniform(0, 360)
    saturation, value = rng.uniform(0.55, 0.95), rng.uniform(0.5, 0.9)
    base = hsv_colour(hue, saturation, value)
    shade = hsv_colour(hue, min(1.0, saturation + 0.05), value * rng.uniform(0.55, 0.7))
    t = _pattern(rng, look.texture, u * radius, v * radius, radius)[:, :, None]
    colour = base * (1.0 - t) + shade * t
    light = 1.0 + 0.12 * np.clip(-v, -1.5, 1.5)[:, :, None]
    return np.clip(colour * light, 0, 255).astype(np.float32)


def _pattern(rng: np.random.Generator, kind: str, x: np.ndarray, y: np.ndarray, radius: float) -> np.ndarray:
    """Return a ``(h, w)`` mixing weight in 0..1 of texture ``kind`` in the object's own frame
    (``x``, ``y`` in pixels from its centre), with periods that grow with the object."""
    period = max(3.0, radius * rng.uniform(0.35, 0.5))
    if kind == "flat":
        return np.zeros(x.shape, dtype=np.float32)
    if kind == "stripes":
        return (np.mod(y, period) < period / 2).astype(np.float32)
    if kind == "bands":
        return (np.mod(x, period) < period / 3).astype(np.float32)
    if kind == "checker":
        return ((np.floor(x / (period / 2)) + np.floor(y / (period / 2))) % 2).astype(np.float32)
    if kind == "dots":
        fx, fy = np.mod(x, period) - period / 2, np.mod(y, period) - period / 2
        return (fx * fx + fy * fy <= (0.28 * period) ** 2).astype(np.float32)
    if kind == "speckle":
        return (rng.uniform(0, 1, size=x.shape) < 0.3).astype(np.float32)
    raise ValueError(f"unknown texture {kind!r}")  # pragma: no cover - kinds come from SCENE_LOOKS


__all__ = ["EXTENT", "SCENE_LOOKS", "SHAPES", "SceneLook", "draw_tilt", "scene_palette", "scene_shape_inside",
           "scene_texture", "thin_half_width"]
