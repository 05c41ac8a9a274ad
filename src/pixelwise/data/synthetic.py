"""The built-in world: procedurally generated segmentation scenes for demos, tests and pretraining.

Every sample is generated on the fly from ``(seed, split, index)`` alone, so the dataset needs no
download and two runs see the same pixels. Two worlds share the geometry below and differ in
appearance (``world=``):

- ``objects`` (the default, standing in for PASCAL VOC): every class has characteristic but
  overlapping colour, texture and part statistics (:mod:`pixelwise.data.appearance`), child
  objects prefer a partner class (context), and the background carries clutter patches that
  look like object material but have no object shape, labelled background.
- ``shapes`` (the first version, a harder test): class = shape only. The background and every
  object draw their appearance from one distribution (flat, gradient, stripes, checker, blotches
  or noisy; colours uniform in RGB), whatever the class, so only the global shape tells classes
  apart.

Shared geometry:

- **Class = shape.** Background plus ``num_classes - 1`` shape classes, in this order: disc,
  square, triangle, ring, cross, star, ellipse, hexagon, crescent, bar, L-shape (so 2..12 classes;
  the default 8 uses the first seven). Shapes are randomly rotated and scaled, never stretched.
  An object's colours are redrawn (up to 4 times) when their mean is too close to the pixels it
  covers, so that shapes stay visible. Gaussian pixel noise is added at the end.
- **Sizes from a few pixels to most of the image.** 2 to 5 main objects have a radius
  log-uniform between 2% and 55% of the image side; 1 to 4 extra small objects have a radius of
  1.5% to 6% of the side (2 to 8 px at 128x128).
- **Nesting.** A main object with radius >= 15% of the side holds, with probability 0.75, 1 to 3
  children of another class with 12% to 35% of its radius, centred inside it.
- **Occlusion.** Objects are painted back to front (main objects roughly largest first, each
  followed by its children); later objects hide earlier ones, so masks and instance maps show the
  visible parts only. Objects that end up fully hidden are dropped.
- **Size buckets.** ``size_map`` marks each object pixel small (1), medium (2) or large (3) from the
  object's *full shape area* within the image frame, before occlusion (a big disc with a small
  object on it stays large): small below 2% of the image area, large from 15% up, medium between.
  Background pixels are 0; ignore pixels are 255.
- **Ignore border.** ``ignore_border=k`` (default 0 = off) sets a band of ``k`` pixels on each side
  of every class boundary to 255 in ``mask`` and ``size_map``, like VOC's boundary band
  (instances are left whole).

Splits use independent random streams (train, val, test, and ``pretrain``: the scenes whose
object crops :mod:`pixelwise.pretrain` classifies), so they never share a scene. Default
lengths: train 2000, val 200, test 200, pretrain 4000.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from pixelwise.data.appearance import CLASS_STYLES, choose_part, contrasting, part_region, styled_texture
from pixelwise.data.instances import (
    LARGE_FRACTION,
    SIZE_BUCKETS,
    SMALL_FRACTION,
    boxes_from_instances,
    bucket_of_area,
    relabel_instances,
    size_map_from_instances,
)
from pixelwise.data.palette import IGNORE_INDEX
from pixelwise.data.scene_objects import (
    EXTENT,
    draw_tilt,
    scene_palette,
    scene_shape_inside,
    scene_texture,
    thin_half_width,
)
from pixelwise.data.scenery import draw_scenery
from pixelwise.data.shapes import SHAPES, shape_inside
from pixelwise.errors import DataError
from pixelwise.metrics import boundary_band


SPLIT_STREAMS = {"train": 0, "val": 1, "test": 2, "pretrain": 3}
DEFAULT_LENGTHS = {"train": 2000, "val": 200, "test": 200, "pretrain": 4000}
WORLDS = ("scenes", "objects", "shapes")
DEFAULT_WORLD = WORLDS[0]
"""The world ``synthetic`` data, the demo and ``reproduce`` use unless told otherwise."""
P_PARTNER_CHILD = 0.6
"""``objects`` world: probability that a child object is of its parent's partner class (context)."""
SCENE_EXTRA_OBJECTS = 1.2
"""``scenes`` world: mean number of objects besides the main subject (Poisson, at most 4)."""
SCENE_SUBJECT_RADIUS = (0.22, 0.5)
SCENE_OTHER_RADIUS = (0.05, 0.32)
"""``scenes`` world: radius range (fraction of the side, log-uniform) of the subject and of the others."""
P_SCENE_NESTED = 0.3
"""``scenes`` world: probability that an object with radius >= 20 % of the side holds a smaller one."""
BACKGROUND_TEXTURE_SCALE = 12.0
"""``objects`` world: pattern size (pixels) of background and clutter textures; objects use their radius."""

_TEXTURES = ("flat", "gradient", "stripes", "checker", "blotches", "noisy")

def _random_colour(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(0, 255, size=3).astype(np.float32)


def _second_colour(rng: np.random.Generator, c1: np.ndarray) -> np.ndarray:
    d = rng.normal(size=3)
    d *= rng.uniform(40, 120) / (np.linalg.norm(d) + 1e-6)
    return np.clip(c1 + d, 0, 255).astype(np.float32)


def _texture(
    rng: np.random.Generator, ys: np.ndarray, xs: np.ndarray, image_size: tuple[int, int]
) -> np.ndarray:
    """Return a (h, w, 3) float32 texture over the pixel grid ``ys`` (h,1), ``xs`` (1,w)."""
    kind = _TEXTURES[int(rng.integers(len(_TEXTURES)))]
    c1 = _random_colour(rng)
    h, w = ys.shape[0], xs.shape[1]
    if kind == "flat":
        return np.broadcast_to(c1, (h, w, 3)).astype(np.float32)
    c2 = _second_colour(rng, c1)
    if kind == "gradient":
        a = rng.uniform(0, 2 * math.pi)
        span = max(image_size) * rng.uniform(0.3, 1.0)
        t = ((xs * math.cos(a) + ys * math.sin(a)) / span) % 2.0
        t = np.abs(t - 1.0)  # triangle wave in 0..1
    elif kind == "stripes":
        a = rng.uniform(0, math.pi)
        period = rng.uniform(3, 16)
        phase = rng.uniform(0, 2 * math.pi)
        t = np.sin(2 * math.pi * (xs * math.cos(a) + ys * math.sin(a)) / period + phase) > 0
        t = t.astype(np.float32)
    elif kind == "checker":
        cell = int(rng.integers(3, 13))
        t = ((ys // cell + xs // cell) % 2).astype(np.float32)
    elif kind == "blotches":
        g = int(rng.integers(3, 9))
        coarse = rng.uniform(0, 255, size=(g, g)).astype(np.uint8)
        big = np.asarray(
            Image.fromarray(coarse).resize((image_size[1], image_size[0]), Image.BILINEAR),
            dtype=np.float32,
        )
        t = big[ys[:, 0].astype(np.int64)][:, xs[0].astype(np.int64)] / 255.0
    else:  # noisy
        t = rng.uniform(0, 1, size=(h, w)).astype(np.float32)
    t = np.broadcast_to(t, (h, w))[:, :, None]
    return (c1 * (1.0 - t) + c2 * t).astype(np.float32)


@dataclass(eq=False)
class PlannedObject:
    """One object of a scene's plan: its class, centre, radius (pixels) and angle; the object it
    sits in (None for a main object); ``key``, the painting order of main objects (larger first);
    ``instance``, its id in the painted instance map (1.., set by painting)."""

    cls: int
    cy: float
    cx: float
    r: float
    angle: float
    parent: "PlannedObject | None" = None
    key: float = 0.0
    instance: int = 0


def _blob(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """Return an ``(h, w)`` bool irregular blob (thresholded smooth noise inside an ellipse)."""
    side = min(h, w)
    r = side * rng.uniform(0.06, 0.25)
    cy, cx = rng.uniform(0, h), rng.uniform(0, w)
    ry, rx = r * rng.uniform(0.6, 1.4), r * rng.uniform(0.6, 1.4)
    g = int(rng.integers(3, 6))
    coarse = rng.uniform(0, 255, size=(g, g)).astype(np.uint8)
    y0, y1 = max(int(cy - ry), 0), min(int(cy + ry) + 1, h)
    x0, x1 = max(int(cx - rx), 0), min(int(cx + rx) + 1, w)
    out = np.zeros((h, w), dtype=bool)
    if y1 <= y0 or x1 <= x0:
        return out
    ys = (np.arange(y0, y1, dtype=np.float32)[:, None] + 0.5 - cy) / ry
    xs = (np.arange(x0, x1, dtype=np.float32)[None, :] + 0.5 - cx) / rx
    noise = np.asarray(Image.fromarray(coarse).resize((x1 - x0, y1 - y0), Image.BILINEAR), np.float32) / 255.0
    out[y0:y1, x0:x1] = (ys * ys + xs * xs) <= 0.55 + 0.6 * noise
    return out


def _visible_look(draw, inside: np.ndarray, below: np.ndarray) -> np.ndarray:
    """Return ``draw()``'s ``(h, w, 3)`` look, drawn again (up to 4 draws in all) while its mean over
    ``inside`` is within 60 of ``below`` (the colour it covers), so that objects stay visible."""
    for _attempt in range(4):
        tex = draw()
        if np.linalg.norm(tex[inside].mean(axis=0) - below) >= 60:
            break
    return tex


class SyntheticShapes:
    """Procedural shapes-on-texture scenes (design in the module docstring).

    Samples have ``image``, ``mask``, ``name``, ``instances``, ``boxes``, ``box_labels`` and
    ``size_map``. ``seed`` selects the whole dataset; ``split`` (train/val/test/pretrain) an
    independent stream within it; ``length`` overrides the default length of the split;
    ``world`` is ``objects`` (class appearance, the default) or ``shapes`` (shape only).
    """

    def __init__(
        self,
        split: str = "train",
        *,
        size: int | tuple[int, int] = 128,
        num_classes: int = 8,
        length: int | None = None,
        seed: int = 0,
        world: str = DEFAULT_WORLD,
        ignore_border: int = 0,
        small_fraction: float = SMALL_FRACTION,
        large_fraction: float = LARGE_FRACTION,
    ) -> None:
        if world not in WORLDS:
            raise DataError(f"synthetic world {world!r} unknown; valid: {', '.join(WORLDS)}")
        if split not in SPLIT_STREAMS:
            raise DataError(f"synthetic split {split!r} unknown; valid: {', '.join(SPLIT_STREAMS)}")
        if not 2 <= num_classes <= len(SHAPES) + 1:
            raise DataError(
                f"synthetic num_classes must be 2..{len(SHAPES) + 1} (background + shapes), "
                f"got {num_classes}"
            )
        hw = (size, size) if isinstance(size, int) else (int(size[0]), int(size[1]))
        if min(hw) < 8:
            raise DataError(f"synthetic size must be at least 8 pixels, got {size}")
        if length is None:
            length = DEFAULT_LENGTHS[split]
        if length < 0:
            raise DataError(f"synthetic length must be >= 0, got {length}")
        if ignore_border < 0:
            raise DataError(f"synthetic ignore_border must be >= 0, got {ignore_border}")
        self.split = split
        self.world = world
        self.size = hw
        self.num_classes = int(num_classes)
        self.class_names: list[str] = ["background"] + list(SHAPES[: num_classes - 1])
        self.palette: np.ndarray | None = scene_palette(self.num_classes) if world == "scenes" else None
        """``(num_classes, 3)`` uint8 class colours (``scenes``: each class in its hue); None: VOC's."""
        self.length = int(length)
        self.seed = int(seed)
        self.ignore_border = int(ignore_border)
        self.small_fraction = float(small_fraction)
        self.large_fraction = float(large_fraction)
        self.names: list[str] = [f"synthetic_{split}_{i:06d}" for i in range(self.length)]

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        """Return sample ``index`` (see the class docstring for the keys)."""
        return self.generate(index)[0]

    def objects(self, index: int) -> list[dict]:
        """Return the visible objects of sample ``index``, one dict each: ``instance_id`` (in the
        sample's instance map), ``class_id``, ``shape``, ``full_area`` (shape pixels in the frame),
        ``visible_area``, ``bucket`` (1..3), ``parent`` (instance id of the object it sits in, or
        None; the parent may be hidden, then -1)."""
        return self.generate(index)[1]

    # -- generation -------------------------------------------------------------------------
    def _rng(self, index: int) -> np.random.Generator:
        return np.random.default_rng([self.seed, SPLIT_STREAMS[self.split], int(index)])

    def _place(self, rng: np.random.Generator, r: float, *, sized: bool) -> PlannedObject:
        """Return a main object of radius ``r`` with its class, centre and angle drawn. ``key`` orders
        the painting: roughly by size (``sized``), or 0 so that the extra small objects come last."""
        h, w = self.size
        obj = PlannedObject(cls=int(rng.integers(1, self.num_classes)), cy=rng.uniform(0, h), cx=rng.uniform(0, w),
                            r=max(r, 1.5), angle=rng.uniform(0, 2 * math.pi))
        obj.key = r * rng.uniform(0.7, 1.3) if sized else 0.0
        return obj

    def _plan(self, rng: np.random.Generator) -> list[PlannedObject]:
        """Return the scene's objects (class, centre, radius, angle, parent) in painting order."""
        side = min(self.size)
        n_shapes = self.num_classes - 1
        mains = []
        for _ in range(int(rng.integers(2, 6))):
            r = side * math.exp(rng.uniform(math.log(0.02), math.log(0.55)))
            mains.append(self._place(rng, r, sized=True))
        for _ in range(int(rng.integers(1, 5))):
            mains.append(self._place(rng, side * rng.uniform(0.015, 0.06), sized=False))
        mains.sort(key=lambda o: -o.key)
        plan = []
        for obj in mains:
            plan.append(obj)
            if obj.r >= 0.15 * side and rng.uniform() < 0.75:
                for _ in range(int(rng.integers(1, 4))):
                    # another class, so the child shows in the class mask (one class: itself)
                    others = [c for c in range(1, n_shapes + 1) if c != obj.cls] or [obj.cls]
                    rc = obj.r * rng.uniform(0.12, 0.35)
                    dist = obj.r * 0.45 * math.sqrt(rng.uniform())
                    a = rng.uniform(0, 2 * math.pi)
                    plan.append(PlannedObject(
                        cls=self._child_class(rng, obj.cls, others), cy=obj.cy + dist * math.sin(a),
                        cx=obj.cx + dist * math.cos(a), r=max(rc, 1.5), angle=rng.uniform(0, 2 * math.pi),
                        parent=obj,
                    ))
        return plan

    def _plan_scene(self, rng: np.random.Generator) -> list[PlannedObject]:
        """Return a ``scenes`` plan (VOC-like): one main subject and a Poisson number of others
        (:data:`SCENE_EXTRA_OBJECTS` on average, at most 4), upright, larger ones painted first; a
        large object holds a smaller one of another class with probability :data:`P_SCENE_NESTED`."""
        h, w = self.size
        side = min(h, w)
        mains = []
        for j in range(1 + min(int(rng.poisson(SCENE_EXTRA_OBJECTS)), 4)):
            low, high = SCENE_SUBJECT_RADIUS if j == 0 else SCENE_OTHER_RADIUS
            r = side * math.exp(rng.uniform(math.log(low), math.log(high)))
            obj = PlannedObject(cls=int(rng.integers(1, self.num_classes)), cy=rng.uniform(0.15 * h, 0.85 * h),
                                cx=rng.uniform(0.1 * w, 0.9 * w), r=max(r, 1.5), angle=draw_tilt(rng))
            obj.key = r * rng.uniform(0.7, 1.3)
            mains.append(obj)
        mains.sort(key=lambda o: -o.key)
        plan = []
        for obj in mains:
            plan.append(obj)
            if obj.r >= 0.2 * side and rng.uniform() < P_SCENE_NESTED:
                others = [c for c in range(1, self.num_classes) if c != obj.cls] or [obj.cls]
                a, dist = rng.uniform(0, 2 * math.pi), obj.r * 0.3 * math.sqrt(rng.uniform())
                plan.append(PlannedObject(
                    cls=int(others[int(rng.integers(len(others)))]), cy=obj.cy + dist * math.sin(a),
                    cx=obj.cx + dist * math.cos(a), r=max(obj.r * rng.uniform(0.25, 0.4), 1.5),
                    angle=draw_tilt(rng), parent=obj))
        return plan

    def _child_class(self, rng: np.random.Generator, parent: int, others: list[int]) -> int:
        """Class of a child object: uniform among ``others`` (``shapes``), or the parent's partner
        class (two classes on in the cyclic order) with probability 0.6 (``objects``: context)."""
        if self.world == "objects":
            partner = (parent + 1) % (self.num_classes - 1) + 1
            if partner in others and rng.uniform() < P_PARTNER_CHILD:
                return partner
        return int(others[int(rng.integers(len(others)))])

    def _background(self, rng: np.random.Generator, yy: np.ndarray,
                    xx: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
        """Return ``(background (h, w, 3) float32, lighting (h, w, 1) or None)``: a scene and its light
        (``scenes``), or the objects' material with clutter patches (``objects``), or any texture."""
        h, w = self.size
        if self.world == "scenes":
            return draw_scenery(rng, h, w)
        if self.world == "shapes":
            canvas = _texture(rng, yy, xx, (h, w))
            return np.array(np.broadcast_to(canvas, (h, w, 3)), dtype=np.float32), None
        canvas = np.array(styled_texture(rng, yy, xx, BACKGROUND_TEXTURE_SCALE, None), dtype=np.float32)
        n_shapes = self.num_classes - 1
        for _ in range(int(rng.integers(0, 4))):
            # object material without an object's shape: an irregular blob, labelled background
            style = CLASS_STYLES[int(rng.integers(n_shapes))]
            blob = _blob(rng, h, w)
            canvas[blob] = styled_texture(rng, yy, xx, BACKGROUND_TEXTURE_SCALE, style)[blob]
        return canvas, None

    def _paint_object(self, rng: np.random.Generator, obj: PlannedObject, inside: np.ndarray, ys, xs, u, v,
                      below: np.ndarray) -> np.ndarray:
        """Return the ``(h, w, 3)`` appearance of ``obj`` over its box (the caller keeps ``inside``)."""
        h, w = self.size
        if self.world == "scenes":
            return _visible_look(lambda: scene_texture(rng, obj.cls, u, v, obj.r), inside, below)
        style = CLASS_STYLES[obj.cls - 1] if self.world == "objects" else None
        if style is None:
            draw = lambda: _texture(rng, ys, xs, (h, w))  # noqa: E731
        else:
            draw = lambda: styled_texture(rng, ys, xs, obj.r, style)  # noqa: E731
        tex = _visible_look(lambda: np.broadcast_to(draw(), inside.shape + (3,)), inside, below)
        if style is None:
            return tex
        part = choose_part(rng, style)
        if part is None:
            return tex
        shape = SHAPES[obj.cls - 1]
        region = part_region(part, u, v, lambda scale: shape_inside(shape, u / scale, v / scale)) & inside
        tex = np.array(tex)
        tex[region] = contrasting(rng, tex[inside].mean(axis=0))
        return tex

    def generate(self, index: int) -> tuple[dict, list[dict]]:
        """Return ``(sample, objects)`` for ``index`` (see :meth:`objects`)."""
        if not 0 <= index < self.length:
            raise IndexError(
                f"synthetic {self.split} index {index} out of range 0..{self.length - 1}"
            )
        # one generator for the whole scene: the order of the draws below is part of the data
        rng = self._rng(index)
        h, w = self.size
        yy = np.arange(h, dtype=np.float32)[:, None]
        xx = np.arange(w, dtype=np.float32)[None, :]
        canvas, light = self._background(rng, yy, xx)
        plan = self._plan_scene(rng) if self.world == "scenes" else self._plan(rng)
        mask, inst, full_area = self._paint(rng, plan, canvas, yy, xx)
        if light is not None:
            canvas *= light
        canvas += rng.normal(0.0, rng.uniform(2, 8), size=canvas.shape).astype(np.float32)
        image = np.clip(np.rint(canvas), 0, 255).astype(np.uint8)

        inst, old_ids = relabel_instances(inst)
        areas = full_area[old_ids]
        by_id = {o.instance: o for o in plan}
        size_map = size_map_from_instances(
            inst, mask, areas=areas, small=self.small_fraction, large=self.large_fraction
        )
        if self.ignore_border > 0:
            band = boundary_band(mask, self.ignore_border)
            mask[band] = IGNORE_INDEX
            size_map[band] = IGNORE_INDEX
        sample = {
            "image": image,
            "mask": mask,
            "name": self.names[index],
            "instances": inst,
            "boxes": boxes_from_instances(inst),
            "box_labels": np.array([by_id[int(i)].cls for i in old_ids], dtype=np.int64),
            "size_map": size_map,
        }
        return sample, self._describe(inst, old_ids, areas, by_id)

    def _paint(
        self, rng: np.random.Generator, plan: list[PlannedObject], canvas: np.ndarray, yy: np.ndarray,
        xx: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Paint ``plan`` onto ``canvas`` back to front; give each object its ``instance`` id (1..) and
        return ``(mask (H, W) uint8, instances (H, W) int32, full shape area of each id (K + 1,))``."""
        h, w = self.size
        mask = np.zeros((h, w), dtype=np.uint8)
        inst = np.zeros((h, w), dtype=np.int32)
        full_area = np.zeros(len(plan) + 1, dtype=np.int64)
        for k, obj in enumerate(plan, start=1):
            obj.instance = k
            r = obj.r
            reach = r * EXTENT if self.world == "scenes" else r  # thin parts reach beyond the radius
            y0, y1 = max(int(obj.cy - reach) - 1, 0), min(int(obj.cy + reach) + 2, h)
            x0, x1 = max(int(obj.cx - reach) - 1, 0), min(int(obj.cx + reach) + 2, w)
            if y0 >= y1 or x0 >= x1:
                continue
            ys, xs = yy[y0:y1], xx[:, x0:x1]
            dy = (ys + 0.5 - obj.cy) / r
            dx = (xs + 0.5 - obj.cx) / r
            ca, sa = math.cos(obj.angle), math.sin(obj.angle)
            u = ca * dx + sa * dy
            v = -sa * dx + ca * dy
            if self.world == "scenes":
                inside = scene_shape_inside(SHAPES[obj.cls - 1], u, v, thin_half_width(r))
            else:
                inside = shape_inside(SHAPES[obj.cls - 1], u, v)
            n_in = int(inside.sum())
            if n_in == 0:
                continue
            full_area[k] = n_in
            below = canvas[y0:y1, x0:x1][inside].mean(axis=0)
            tex = self._paint_object(rng, obj, inside, ys, xs, u, v, below)
            canvas[y0:y1, x0:x1][inside] = tex[inside]
            mask[y0:y1, x0:x1][inside] = obj.cls
            inst[y0:y1, x0:x1][inside] = k
        return mask, inst, full_area

    def _describe(
        self, inst: np.ndarray, old_ids: np.ndarray, areas: np.ndarray, by_id: dict[int, PlannedObject]
    ) -> list[dict]:
        """The visible objects of a painted scene, as :meth:`objects` describes them."""
        h, w = self.size
        new_id = {int(o): n for n, o in enumerate(old_ids, start=1)}
        visible = np.bincount(inst.ravel(), minlength=len(old_ids) + 1)
        buckets = bucket_of_area(areas, h * w, small=self.small_fraction, large=self.large_fraction)
        objects = []
        for n, old in enumerate(old_ids, start=1):
            o = by_id[int(old)]
            parent = o.parent
            objects.append(
                {
                    "instance_id": n,
                    "class_id": o.cls,
                    "shape": SHAPES[o.cls - 1],
                    "full_area": int(areas[n - 1]),
                    "visible_area": int(visible[n]),
                    "bucket": int(buckets[n - 1]),
                    "parent": None if parent is None else new_id.get(parent.instance, -1),
                }
            )
        return objects

    def __repr__(self) -> str:
        return (
            f"SyntheticShapes(split={self.split!r}, size={self.size}, num_classes={self.num_classes}, "
            f"length={self.length}, seed={self.seed}, world={self.world!r})"
        )


__all__ = ["SHAPES", "SIZE_BUCKETS", "SyntheticShapes", "WORLDS"]
