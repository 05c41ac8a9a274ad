"""The built-in world's class shapes and their inside tests (shared by every world)."""

from __future__ import annotations

import math

import numpy as np

SHAPES = (
    "disc",
    "square",
    "triangle",
    "ring",
    "cross",
    "star",
    "ellipse",
    "hexagon",
    "crescent",
    "bar",
    "l_shape",
)
"""Shape of each object class, class ``k`` (k >= 1) being ``SHAPES[k - 1]``."""

_STAR_OUTER = 1.0
_STAR_INNER = 0.42


def shape_inside(shape: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Inside test in shape coordinates (unit circumradius, already rotated); bool array."""
    rr = u * u + v * v
    if shape == "disc":
        return rr <= 1.0
    if shape == "square":
        return np.maximum(np.abs(u), np.abs(v)) <= 0.70
    if shape == "triangle":
        inside = np.ones(u.shape, dtype=bool)
        for k in range(3):
            a = math.pi / 2 + k * 2 * math.pi / 3
            inside &= -(u * math.cos(a) + v * math.sin(a)) <= 0.5
        return inside
    if shape == "ring":
        return (rr <= 1.0) & (rr >= 0.55**2)
    if shape == "cross":
        au, av = np.abs(u), np.abs(v)
        return ((au <= 0.28) & (av <= 0.95)) | ((av <= 0.28) & (au <= 0.95))
    if shape == "star":
        phi = np.mod(np.arctan2(v, u), 2 * math.pi / 5)
        beta = np.minimum(phi, 2 * math.pi / 5 - phi)  # 0 at a tip, 36 degrees at a notch
        rho = np.sqrt(rr)
        x, y = rho * np.cos(beta), rho * np.sin(beta)
        px, py = _STAR_OUTER, 0.0
        qx, qy = _STAR_INNER * math.cos(math.pi / 5), _STAR_INNER * math.sin(math.pi / 5)
        # origin side of the edge tip -> notch
        return (qx - px) * (y - py) - (qy - py) * (x - px) >= 0
    if shape == "ellipse":
        return u * u + (v / 0.45) ** 2 <= 1.0
    if shape == "hexagon":
        inside = np.ones(u.shape, dtype=bool)
        for k in range(3):
            a = k * math.pi / 3
            inside &= np.abs(u * math.cos(a) + v * math.sin(a)) <= 0.866
        return inside
    if shape == "crescent":
        return (rr <= 1.0) & ((u - 0.5) ** 2 + v * v >= 0.75**2)
    if shape == "bar":
        return (np.abs(u) <= 0.97) & (np.abs(v) <= 0.22)
    if shape == "l_shape":
        a = (u >= -0.7) & (u <= 0.7) & (v >= 0.25) & (v <= 0.7)
        b = (u >= -0.7) & (u <= -0.25) & (v >= -0.7) & (v <= 0.7)
        return a | b
    raise ValueError(f"unknown shape {shape!r}")  # pragma: no cover


__all__ = ["SHAPES", "shape_inside"]
