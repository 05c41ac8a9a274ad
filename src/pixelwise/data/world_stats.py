"""Statistics of the built-in world, measured: what docs/data.md compares with PASCAL VOC."""

from __future__ import annotations

import time

import numpy as np

from pixelwise.data.instances import SIZE_BUCKETS
from pixelwise.data.synthetic import SyntheticShapes


def world_statistics(ds: SyntheticShapes) -> dict:
    """Return the measured statistics of every scene of ``ds``: ``objects_per_image``,
    ``single_object_images`` (share), ``background_pixels`` (share), ``buckets`` (share of objects
    per size bucket), ``nested`` and ``occluded`` (share of objects), ``ms_per_scene``."""
    counts, buckets, nested, occluded, background = [], np.zeros(len(SIZE_BUCKETS) + 1), 0, 0, 0.0
    start = time.perf_counter()
    for i in range(len(ds)):
        sample, objects = ds.generate(i)
        counts.append(len(objects))
        for o in objects:
            buckets[o["bucket"]] += 1
            nested += o["parent"] not in (None, -1)
            occluded += o["visible_area"] < o["full_area"]
        background += float((sample["mask"] == 0).mean())
    seconds = time.perf_counter() - start
    n_objects = max(1, int(sum(counts)))
    return {
        "world": ds.world, "scenes": len(ds), "size": list(ds.size), "num_classes": ds.num_classes,
        "objects_per_image": float(np.mean(counts)), "single_object_images": float(np.mean(np.array(counts) == 1)),
        "background_pixels": background / max(1, len(ds)),
        "buckets": {name: float(buckets[k] / n_objects) for k, name in enumerate(SIZE_BUCKETS, start=1)},
        "nested": nested / n_objects, "occluded": occluded / n_objects,
        "ms_per_scene": 1000 * seconds / max(1, len(ds)),
    }


def statistics_row(stats: dict) -> str:
    """Return one markdown table row of :func:`world_statistics`' result (percentages)."""
    b = stats["buckets"]
    return (f"| {stats['world']} | {stats['num_classes']} | {stats['objects_per_image']:.2f} | "
            f"{100 * stats['single_object_images']:.0f} % | {100 * stats['background_pixels']:.1f} % | "
            f"{100 * b['small']:.0f} / {100 * b['medium']:.0f} / {100 * b['large']:.0f} % | "
            f"{100 * stats['nested']:.0f} % | {100 * stats['occluded']:.0f} % | {stats['ms_per_scene']:.1f} |")


STATISTICS_HEADER = ("| world | classes | objects / image | images with one object | background pixels | "
                     "small / medium / large objects | nested | occluded | ms / scene |\n|---|---|---|---|---|---|---|---|---|")


__all__ = ["STATISTICS_HEADER", "statistics_row", "world_statistics"]
