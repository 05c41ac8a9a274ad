"""The confusion-matrix figure written by ``pixelwise eval``."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from pixelwise.viz.curves import save_figure


def confusion_figure(matrix: np.ndarray | Sequence[Sequence[int]], class_names: Sequence[str] | None = None,
                     *, title: str | None = None) -> Figure:
    """Return a Figure of a ``(C, C)`` confusion matrix (rows truth, columns prediction), each row
    normalised to the fraction of that class's pixels (so the diagonal is per-class accuracy)."""
    m = np.asarray(matrix, dtype=np.float64)
    c = m.shape[0]
    names = list(class_names) if class_names is not None and len(class_names) == c else [str(i) for i in range(c)]
    rows = m.sum(axis=1, keepdims=True)
    frac = np.divide(m, rows, out=np.zeros_like(m), where=rows > 0)
    side = max(4.0, 0.45 * c + 2.0)
    fig = Figure(figsize=(side + 1.0, side), dpi=100)
    ax = fig.subplots()
    im = ax.imshow(frac, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(c), labels=names, rotation=60, ha="right", fontsize=8)
    ax.set_yticks(range(c), labels=names, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    if c <= 25:
        for i in range(c):
            for j in range(c):
                if frac[i, j] >= 0.005:
                    ax.text(j, i, f"{100 * frac[i, j]:.0f}", ha="center", va="center", fontsize=6,
                            color="white" if frac[i, j] > 0.5 else "black")
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="fraction of true pixels")
    ax.set_title(title or "confusion matrix (row-normalised, %)")
    fig.tight_layout()
    return fig


def plot_confusion(matrix, path: str | os.PathLike, class_names: Sequence[str] | None = None, *,
                   title: str | None = None) -> Path:
    """Write the confusion-matrix PNG; returns the path."""
    return save_figure(confusion_figure(matrix, class_names, title=title), path)
