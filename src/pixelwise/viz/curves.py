"""Training curves from a run log: loss and learning rate per step, validation mean IU per step.

Drawn with :class:`matplotlib.figure.Figure` and the Agg canvas (no pyplot, no display).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    """Return a trailing moving average (same length)."""
    if window <= 1 or len(values) < 2:
        return values
    c = np.cumsum(np.insert(values, 0, 0.0))
    out = np.empty_like(values)
    for i in range(len(values)):
        lo = max(0, i + 1 - window)
        out[i] = (c[i + 1] - c[lo]) / (i + 1 - lo)
    return out


def curves_figure(runs: Mapping[str, Sequence[dict]], *, title: str | None = None) -> Figure:
    """Return a Figure with the training loss and learning rate of one or more runs, each given as its
    list of log records (see :mod:`pixelwise.train.runlog`), and a third panel with the validation
    mean IU when any run validated (an empty panel would only puzzle the reader)."""
    train = {name: [r for r in records if r.get("type") == "train" and r.get("loss") is not None]
             for name, records in runs.items()}
    val = {name: [r for r in records if r.get("type") == "val" and r.get("mean_iu") is not None]
           for name, records in runs.items()}
    with_val = any(val.values())
    fig = Figure(figsize=(12 if with_val else 8.5, 3.6), dpi=100)
    axes = fig.subplots(1, 3 if with_val else 2)
    ax_loss, ax_lr = axes[0], axes[1]
    for name in runs:
        label = name or None
        color = None
        if train[name]:
            steps = np.array([r["step"] for r in train[name]], dtype=float)
            loss = np.array([r["loss"] for r in train[name]], dtype=float)
            line = ax_loss.plot(steps, loss, alpha=0.3, lw=0.8)[0]
            color = line.get_color()
            ax_loss.plot(steps, _smooth(loss, max(1, len(loss) // 20)), color=color, lw=1.5, label=label)
            ax_lr.plot(steps, [r["lr"] for r in train[name]], color=color, label=label)
        if val[name]:
            axes[2].plot([r["step"] for r in val[name]], [100 * r["mean_iu"] for r in val[name]], marker="o",
                         ms=3, color=color, label=label)
    ax_loss.set(title="training loss", xlabel="step")
    ax_lr.set(title="learning rate", xlabel="step")
    if any(line.get_ydata().size and np.nanmin(line.get_ydata()) > 0 for line in ax_lr.get_lines()):
        ax_lr.set_yscale("log")
    if with_val:
        axes[2].set(title="validation mean IU (%)", xlabel="step")
    for ax in axes:
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    handles, labels = ax_loss.get_legend_handles_labels()
    right = 1.0
    if len(runs) > 1 and handles:
        # one legend for all panels (a run has one colour everywhere), beside them so it hides no curve
        fig.set_figwidth(fig.get_figwidth() + 3.6)
        fig.legend(handles, labels, loc="center right", fontsize=8, frameon=False)
        right = 1 - 3.6 / fig.get_figwidth()
    fig.tight_layout(rect=(0, 0, right, 1))
    return fig


def save_figure(fig: Figure, path: str | os.PathLike) -> Path:
    """Render ``fig`` with Agg and write it as PNG; returns the path."""
    from pixelwise.fileio import ensure_writable_file, writing

    path = ensure_writable_file(path)
    FigureCanvasAgg(fig)
    with writing(path):
        fig.savefig(path, format="png")
    return path


def plot_curves(records: Sequence[dict] | Mapping[str, Sequence[dict]], path: str | os.PathLike, *,
                title: str | None = None) -> Path:
    """Write the curves PNG of one run's log records (or ``{name: records}`` for several); returns
    the path."""
    runs = records if isinstance(records, Mapping) else {"": records}
    return save_figure(curves_figure(runs, title=title), path)
