"""Comparison grids like the papers' qualitative figures: image | truth | model 1 | model 2 | ...

Drawn with :class:`matplotlib.figure.Figure` directly (no pyplot, no display), so it works in
headless runs and threads; save with ``fig.savefig(path)``.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from pixelwise.data.palette import IGNORE_COLOR, IGNORE_INDEX, colorize, voc_palette
from pixelwise.metrics import fallback_class_names


def comparison_grid(
    images: Sequence[np.ndarray],
    columns: Mapping[str, Sequence[np.ndarray | None]],
    class_names: Sequence[str],
    palette: np.ndarray | None = None,
    *,
    row_titles: Sequence[str] | None = None,
    cell_size: float = 2.0,
    legend: bool = True,
) -> Figure:
    """Return a matplotlib Figure: one row per image, first column the image, then one column per
    entry of ``columns`` (title -> one ``(H, W)`` label mask per image, or None for a blank cell),
    in the mapping's order; a legend of the classes that appear, in ``palette`` colours (VOC
    colours by default; label 255 drawn as "void").
    """
    n = len(images)
    if n == 0:
        raise ValueError("comparison_grid needs at least one image")
    for title, masks in columns.items():
        if len(masks) != n:
            raise ValueError(f"column {title!r} has {len(masks)} masks for {n} images")
    pal = voc_palette(256) if palette is None else np.asarray(palette, dtype=np.uint8).reshape(-1, 3)
    ncols = 1 + len(columns)
    fig = Figure(figsize=(cell_size * ncols, cell_size * n + (0.6 if legend else 0.0)), dpi=100)
    axes = fig.subplots(n, ncols, squeeze=False)
    present: set[int] = set()
    for r, image in enumerate(images):
        cells = [("image", np.asarray(image))]
        for title, masks in columns.items():
            mask = masks[r]
            if mask is None:
                cells.append((title, None))
                continue
            mask = np.asarray(mask)
            present.update(int(v) for v in np.unique(mask))
            cells.append((title, colorize(mask, pal)))
        for c, (title, pixels) in enumerate(cells):
            ax = axes[r, c]
            ax.set_xticks([])
            ax.set_yticks([])
            if pixels is None:
                ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes, color="0.5")
                for spine in ax.spines.values():
                    spine.set_color("0.8")
            else:
                ax.imshow(pixels, interpolation="nearest")
            if r == 0:
                ax.set_title(title, fontsize=9)
        if row_titles is not None:
            axes[r, 0].set_ylabel(str(row_titles[r]), fontsize=8)
    if legend and present:
        handles = []
        names = fallback_class_names(class_names, max(present) + 1)
        for label in sorted(present):
            if label == IGNORE_INDEX:
                colour, name = np.asarray(IGNORE_COLOR), "void"
            else:
                colour = pal[label] if label < len(pal) else voc_palette(256)[label]
                name = names[label]
            handles.append(Patch(facecolor=np.asarray(colour) / 255.0, edgecolor="0.3", label=name))
        fig.legend(handles=handles, loc="lower center", ncol=min(len(handles), 8), fontsize=8, frameon=False)
    height = fig.get_figheight()
    bottom = (0.6 / height + 0.01) if legend and present else 0.01
    left = 0.04 if row_titles is not None else 0.01
    fig.subplots_adjust(left=left, right=0.99, bottom=bottom, top=1 - 0.3 / height, wspace=0.04, hspace=0.04)
    return fig
