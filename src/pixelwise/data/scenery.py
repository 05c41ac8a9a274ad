"""Backgrounds of the built-in ``scenes`` world: outdoor and indoor scenes with their own statistics.

A photograph's background is a place, not object material: sky over grass or a road, a wall
over a floor. These backgrounds are drawn from a distribution of their own, unlike the objects'
(:mod:`pixelwise.data.scene_objects`): muted colours (saturation at most 0.4 where objects start
at 0.55), large smooth regions split by a horizon or a skirting line, fine low-contrast textures
(grass speckle, wood planks, floor tiles, wallpaper stripes) and a smooth lighting field over the
whole image. Clutter is rare: with probability :data:`P_CLUTTER` one rock or bush, a blob in a
darker shade of the ground, labelled background.
"""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from pixelwise.data.appearance import hsv_colour

P_OUTDOOR = 0.5
P_CLUTTER = 0.2
MAX_BACKGROUND_SATURATION = 0.4

GROUNDS = {  # hue centre (degrees), saturation range, value range
    "grass": (95.0, (0.25, 0.4), (0.3, 0.55)),
    "sand": (38.0, (0.15, 0.35), (0.55, 0.8)),
    "road": (30.0, (0.0, 0.08), (0.3, 0.5)),
}
FLOORS = {
    "wood": (28.0, (0.3, 0.4), (0.3, 0.55)),
    "tiles": (30.0, (0.0, 0.12), (0.45, 0.8)),
}


def _muted(rng: np.random.Generator, hue: float, sat: tuple[float, float], val: tuple[float, float]) -> np.ndarray:
    """Return an RGB colour (3,) near ``hue`` (+-8 degrees) with saturation and value in the ranges."""
    return hsv_colour(rng.normal(hue, 8.0), rng.uniform(*sat), rng.uniform(*val))


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Return ``(h, w)`` float32 smooth noise in 0..1: a ``cells`` x ``cells`` grid, bilinear."""
    coarse = rng.uniform(0, 255, size=(cells, cells)).astype(np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((w, h), Image.BILINEAR), dtype=np.float32) / 255.0


def _split_line(rng: np.random.Generator, h: int, w: int, low: float, high: float) -> np.ndarray:
    """Return the ``(h, w)`` bool map below a slightly tilted line at ``low``..``high`` of the height."""
    yy = np.arange(h, dtype=np.float32)[:, None]
    xx = np.arange(w, dtype=np.float32)[None, :]
    level = h * rng.uniform(low, high) + (xx - w / 2) * math.tan(math.radians(rng.normal(0.0, 4.0)))
    return yy >= level


def _outdoor(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sky over ground; returns ``(canvas (h, w, 3), ground mask (h, w), ground colour (3,))``."""
    yy = np.arange(h, dtype=np.float32)[:, None, None] / h
    top = _muted(rng, rng.uniform(195, 225), (0.2, MAX_BACKGROUND_SATURATION), (0.6, 0.8))
    bottom = _muted(rng, rng.uniform(195, 225), (0.05, 0.2), (0.8, 0.97))
    canvas = top * (1 - yy) + bottom * yy  # lighter towards the horizon
    ground = _split_line(rng, h, w, 0.3, 0.65)
    hue, sat, val = GROUNDS[list(GROUNDS)[int(rng.integers(len(GROUNDS)))]]
    colour = _muted(rng, hue, sat, val)
    speckle = rng.uniform(-1, 1, size=(h, w, 1)).astype(np.float32) * rng.uniform(6, 16)
    patches = (_smooth_noise(rng, h, w, 6)[:, :, None] - 0.5) * rng.uniform(20, 45)
    canvas = np.where(ground[:, :, None], colour + speckle + patches, canvas)
    return canvas.astype(np.float32), ground, colour


def _indoor(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A wall over a floor; returns ``(canvas (h, w, 3), floor mask (h, w), floor colour (3,))``."""
    xx = np.arange(w, dtype=np.float32)[None, :]
    yy = np.arange(h, dtype=np.float32)[:, None]
    wall = _muted(rng, rng.uniform(0, 360), (0.03, 0.3), (0.55, 0.9))
    canvas = np.broadcast_to(wall, (h, w, 3)).astype(np.float32)
    if rng.uniform() < 0.5:  # wallpaper: faint vertical stripes
        period = rng.uniform(5, 14)
        canvas = canvas + (np.sin(2 * math.pi * xx / period)[:, :, None] > 0) * rng.uniform(6, 14)
    floor = _split_line(rng, h, w, 0.55, 0.8)
    kind = list(FLOORS)[int(rng.integers(len(FLOORS)))]
    colour = _muted(rng, *FLOORS[kind])
    if kind == "wood":  # planks: horizontal bands of slightly different shades, thin dark seams
        plank = rng.uniform(4, 8)
        shade = rng.uniform(-12, 12, size=h + 1)[(yy[:, 0] // plank).astype(np.int64)]
        seams = (np.mod(yy, plank) < 1.0) * -25.0
        pattern = (shade[:, None] + seams)[:, :, None] + np.zeros((1, w, 1), np.float32)
    else:  # tiles: a low-contrast checker with grout lines
        cell = rng.uniform(8, 16)
        checker = ((yy // cell + xx // cell) % 2) * rng.uniform(8, 18)
        grout = ((np.mod(yy, cell) < 1) | (np.mod(xx, cell) < 1)) * -20.0
        pattern = (checker + grout)[:, :, None]
    canvas = np.where(floor[:, :, None], colour + pattern, canvas)
    return canvas.astype(np.float32), floor, colour


def _lighting(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Return an ``(h, w, 1)`` illumination factor: a gentle linear ramp and a vignette."""
    yy = np.arange(h, dtype=np.float32)[:, None] / h - 0.5
    xx = np.arange(w, dtype=np.float32)[None, :] / w - 0.5
    a = rng.uniform(0, 2 * math.pi)
    ramp = 1.0 + rng.uniform(0.0, 0.25) * (xx * math.cos(a) + yy * math.sin(a)) * 2
    vignette = 1.0 - rng.uniform(0.0, 0.25) * (xx * xx + yy * yy) * 2
    return (ramp * vignette)[:, :, None].astype(np.float32)


def _clutter(rng: np.random.Generator, canvas: np.ndarray, ground: np.ndarray, colour: np.ndarray) -> None:
    """Paint one rock or bush on the ground in place: a blob in a darker shade of the ground."""
    h, w = ground.shape
    ys, xs = np.nonzero(ground)
    if len(ys) == 0:
        return
    k = int(rng.integers(len(ys)))
    r = min(h, w) * rng.uniform(0.04, 0.12)
    yy = (np.arange(h, dtype=np.float32)[:, None] - ys[k]) / r
    xx = (np.arange(w, dtype=np.float32)[None, :] - xs[k]) / (r * rng.uniform(1.0, 1.8))
    blob = (yy * yy + xx * xx) <= 0.6 + 0.5 * _smooth_noise(rng, h, w, 5)
    canvas[blob] = colour * rng.uniform(0.55, 0.8) + rng.uniform(-8, 8, size=(int(blob.sum()), 1))


def draw_scenery(rng: np.random.Generator, h: int, w: int) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(canvas, lighting)``: an ``(h, w, 3)`` float32 scene (0..255 before lighting), outdoor
    or indoor, with rare clutter, and the ``(h, w, 1)`` lighting factor the caller applies to the
    whole picture once the objects are painted (objects stand in the same light)."""
    if rng.uniform() < P_OUTDOOR:
        canvas, ground, colour = _outdoor(rng, h, w)
    else:
        canvas, ground, colour = _indoor(rng, h, w)
    canvas = np.array(canvas, dtype=np.float32)
    if rng.uniform() < P_CLUTTER:
        _clutter(rng, canvas, ground, colour)
    return canvas, _lighting(rng, h, w)


__all__ = ["MAX_BACKGROUND_SATURATION", "P_CLUTTER", "draw_scenery"]
