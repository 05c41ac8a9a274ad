"""Name a collapsed model: one that predicts a single class on (nearly) every pixel.

A segmentation network whose training went wrong often settles on the majority class (background)
everywhere. Its metrics table looks unremarkable at a glance (pixel accuracy = the background's
share, mean IU = that share over the number of classes), so :func:`collapse_message` turns the
confusion matrix into one line that says what happened and what usually causes it. Used after
validation in ``pixelwise train``, by ``pixelwise eval``, ``pixelwise demo`` and ``pixelwise reproduce``.

Convention: ``matrix[i, j]`` = pixels of true class ``i`` predicted as ``j``
(:class:`pixelwise.metrics.ConfusionMatrix`), ignored pixels not counted.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pixelwise.metrics import fallback_class_names

COLLAPSE_SHARE = 0.99
"""A model is collapsed when at least this share of its predicted pixels falls in one class."""

PRETRAINED_HINT = "no pretrained backbone (--backbone-weights / pixelwise pretrain)"


@dataclass(frozen=True)
class Collapse:
    """The class a collapsed model predicts, its share of the predicted pixels and of the truth."""

    label: int
    share: float
    truth_share: float


def find_collapse(matrix: Sequence[Sequence[int]] | np.ndarray | torch.Tensor,
                  threshold: float = COLLAPSE_SHARE) -> Collapse | None:
    """Return the :class:`Collapse` of a ``(C, C)`` confusion matrix (rows truth, columns
    prediction), or None.

    Collapsed means: at least ``threshold`` of the counted pixels are predicted as one class, while
    the truth has more than one class and is not itself (nearly) all that class (its share of it is
    below ``threshold``: an image set that really is 99.5 % background does not make a model that
    predicts background there collapsed). An empty matrix is not collapsed.
    """
    if isinstance(matrix, torch.Tensor):
        matrix = matrix.detach().cpu().numpy()
    m = np.asarray(matrix, dtype=np.float64)
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"confusion matrix must be (C, C), got {m.shape}")
    total = m.sum()
    if total <= 0:
        return None
    predicted = m.sum(axis=0) / total
    truth = m.sum(axis=1) / total
    label = int(predicted.argmax())
    if predicted[label] < threshold or np.count_nonzero(truth) < 2 or truth[label] >= threshold:
        return None
    return Collapse(label, float(predicted[label]), float(truth[label]))


def collapse_message(matrix: Sequence[Sequence[int]] | np.ndarray | torch.Tensor,
                     class_names: Sequence[str] | None = None, *, model: str = "the model",
                     where: str = "validation", threshold: float = COLLAPSE_SHARE,
                     lr_warning: bool = False) -> str | None:
    """Return one line naming a collapsed model and the likely causes, or None when it is not
    collapsed (see :func:`find_collapse`).

    ``model``: its display name; ``where``: what was evaluated (the line starts with it);
    ``lr_warning``: the run printed the lr vs loss-normalisation warning (the line then points at it).
    Example: ``validation: FCN-8s predicts 'background' on 99.6 % of pixels (truth: 71.2 %):
    collapsed; likely causes: ...``.
    """
    found = find_collapse(matrix, threshold)
    if found is None:
        return None
    name = fallback_class_names(class_names, found.label + 1)[found.label]
    lr = "an lr that does not fit the loss normalisation" + (" (see the warning at the start)" if lr_warning else "")
    return (f"{where}: {model} predicts {name!r} on {100 * found.share:.1f} % of pixels (truth: "
            f"{100 * found.truth_share:.1f} %): collapsed; likely causes: {lr}, {PRETRAINED_HINT}, or too few steps")


def display_name(model: str) -> str:
    """Return the paper name of a registered model (``fcn8s`` -> ``FCN-8s``), else ``model``."""
    from pixelwise.models.registry import get_entry

    try:
        description = get_entry(model).description
    except Exception:  # an unknown name is shown as it is
        return model
    head, sep, _ = description.partition(":")
    return head.strip() if sep else model


def _warned(log_path: str | os.PathLike | None) -> bool:
    """True when the run log holds a ``warning`` event (the lr vs loss-normalisation check)."""
    if log_path is None:
        return False
    from pixelwise.train.runlog import read_log

    return any(r.get("type") == "event" and r.get("event") == "warning" for r in read_log(Path(log_path)))


def validation_note(results: dict, model: str, class_names: Sequence[str], *, step: int,
                    log_path: str | os.PathLike | None = None) -> str | None:
    """Return the collapse line of a validation during training (``results`` from
    :func:`pixelwise.train.loop.evaluate`), or None. ``log_path``: the run's ``log.jsonl``, read only
    when the model collapsed, to point at an lr warning the run printed."""
    matrix = results.get("confusion")
    if matrix is None or find_collapse(matrix) is None:
        return None
    return collapse_message(matrix, class_names, model=display_name(model), where=f"validation at step {step}",
                            lr_warning=_warned(log_path))


def collapse_notes(models: Mapping[str, dict], class_names: Sequence[str], *,
                   display: Callable[[str], str] | None = None, where: str = "validation") -> dict[str, str]:
    """Return ``{key: collapse line}`` for the collapsed models of ``models`` (key -> results with a
    ``confusion`` matrix), shown by ``display(key)``. A ``<key>+crf`` entry is left out when ``<key>``
    itself collapsed (the CRF of a collapsed model is no news)."""
    notes: dict[str, str] = {}
    for key, results in models.items():
        if results.get("confusion") is None or (key.endswith("+crf") and key[:-4] in notes):
            continue
        note = collapse_message(results["confusion"], class_names, model=display(key) if display else key,
                                where=where)
        if note:
            notes[key] = note
    return notes
