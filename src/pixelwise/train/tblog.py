"""TensorBoard logging of a training run (``--tensorboard``, needs the extra ``pixelwise[tb]``).

:class:`TensorBoardRunLog` is a :class:`pixelwise.train.runlog.RunLog` that also writes TensorBoard
event files into ``OUT/tensorboard``:

- every ``train`` record of ``log.jsonl`` as scalars ``train/<key>`` (loss, lr, images_per_s, epoch
  and whatever else the record holds);
- every ``val`` record as scalars ``val/<key>`` (pixel_acc, mean_acc, mean_iu, fw_iu,
  ``val/size_buckets/<bucket>``);
- per validation (:meth:`TensorBoardRunLog.validation_details`): per-class IU as scalars
  ``iu/<class name>``, the share of pixels predicted as the most predicted class
  (``val/top_class_share``, near 1 = collapsed), the metrics and per-class IU as a markdown table
  (text ``val/per_class_iu``, which TensorBoard lists as ``val/per_class_iu/text_summary``) and a
  few fixed validation images as ``predictions/<i>``: image | truth | prediction, colourised with
  the VOC palette.

Only the process that writes ``log.jsonl`` (rank 0) writes events. A fresh run in a folder removes
the old event files (as it empties ``log.jsonl``); a resumed run appends a new event file whose
first event tells TensorBoard to drop the old events after the resumed step
(``SummaryWriter(purge_step=...)``), so the curves read like one uninterrupted run. The writer is
flushed after every write and closed when the run logs its ``finish``, ``interrupt`` or
``diverged`` event.
"""

from __future__ import annotations

import math
import os
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from pixelwise.errors import PixelwiseError
from pixelwise.metrics import fallback_class_names
from pixelwise.train.loop import EvalSettings, whole_image_forward
from pixelwise.train.runlog import RunLog

INSTALL_HINT = "pip install 'pixelwise[tb]'"
PREDICTION_IMAGES = 3
"""Validation images shown with their prediction at every validation (the first ones, always the same)."""
MAX_SIDE = 320
"""Larger images are subsampled (nearest) to at most this side before they go into the event file."""
_CLOSING_EVENTS = ("finish", "interrupt", "diverged")


def require_tensorboard() -> None:
    """Raise a one-line :class:`PixelwiseError` when the tensorboard package is missing."""
    try:
        import tensorboard  # noqa: F401
        from torch.utils.tensorboard import SummaryWriter  # noqa: F401
    except ImportError:
        raise PixelwiseError(f"--tensorboard needs the tensorboard package: {INSTALL_HINT}") from None


def _scalars(prefix: str, record: dict) -> list[tuple[str, float]]:
    """The finite numbers of a log record as ``(tag, value)`` pairs (nested dicts one level deep)."""
    out = []
    for key, value in record.items():
        if key in ("type", "step"):
            continue
        if isinstance(value, dict):
            out += _scalars(f"{prefix}/{key}", value)
        elif isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            out.append((f"{prefix}/{key}", float(value)))
    return out


def _pct(value: float | None) -> str:
    return "-" if value is None or not math.isfinite(value) else f"{100 * value:.1f}"


def markdown_table(results: dict, class_names: Sequence[str], note: str | None = None) -> str:
    """Return the four metrics and the per-class IU of ``results`` as markdown tables (percent)."""
    lines = ["| pixel acc. | mean acc. | mean IU | f.w. IU |", "|---:|---:|---:|---:|",
             "| " + " | ".join(_pct(results.get(k)) for k in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu")) + " |",
             "", "| id | class | IU |", "|---:|:---|---:|"]
    per_class = results.get("per_class_iu", [])
    names = fallback_class_names(class_names, len(per_class))
    for i, iu in enumerate(per_class):
        lines.append(f"| {i} | {names[i]} | {_pct(iu)} |")
    if note:
        lines += ["", f"**{note}**"]
    return "\n".join(lines)


def top_class_share(confusion: Sequence[Sequence[int]]) -> float | None:
    """Share of the counted pixels predicted as the most predicted class (None without pixels)."""
    m = np.asarray(confusion, dtype=np.float64)
    total = m.sum()
    return float(m.sum(axis=0).max() / total) if total > 0 else None


def _shrink(array: np.ndarray) -> np.ndarray:
    step = math.ceil(max(array.shape[:2]) / MAX_SIDE)
    return array[::step, ::step] if step > 1 else array


@torch.no_grad()
def prediction_panels(model: nn.Module, dataset: Any, count: int = PREDICTION_IMAGES, *,
                      device: torch.device | str = "cpu", precision: str = "fp32",
                      resize: int | None = None) -> list[np.ndarray]:
    """Return ``(H, 3W + 8, 3)`` uint8 images, image | truth | prediction (VOC colours), of the first
    ``count`` samples of ``dataset`` (a :class:`pixelwise.data.dataset.SegmentationDataset`),
    predicted with the whole-image forward pass of :func:`pixelwise.train.loop.whole_image_forward`."""
    from pixelwise.data.palette import colorize
    from pixelwise.data.transforms import normalize_image
    from pixelwise.runtime import autocast

    device = torch.device(device)
    was_training = model.training
    model.eval()
    panels = []
    try:
        for i in range(min(count, len(dataset))):
            sample = dataset.sample(i)
            image = np.asarray(sample["image"], dtype=np.uint8)
            x = normalize_image(image, dataset.convention)[None].to(device)
            with autocast(device, precision):
                logits = whole_image_forward(model, x, resize)
            pred = logits.argmax(1)[0].cpu().numpy().astype(np.uint8)
            truth = np.asarray(sample["mask"]).astype(np.uint8)
            gap = np.full((image.shape[0], 4, 3), 255, dtype=np.uint8)
            panels.append(_shrink(np.concatenate([image, gap, colorize(truth), gap, colorize(pred)], axis=1)))
    finally:
        if was_training:
            model.train()
    return panels


class TensorBoardRunLog(RunLog):
    """A :class:`RunLog` that mirrors its records into TensorBoard event files when ``tensorboard``
    is True (see the module docstring); with ``tensorboard=False`` it is a plain :class:`RunLog`.

    ``path`` is the ``log.jsonl``; the events go to ``<its folder>/tensorboard``. ``enabled``: this
    process writes (rank 0). The writer is opened at the first record that has something to show.
    """

    def __init__(self, path: str | os.PathLike, *, enabled: bool = True, tensorboard: bool = False) -> None:
        super().__init__(path, enabled=enabled)
        self.tensorboard = bool(tensorboard) and enabled
        self.log_dir = self.path.parent / "tensorboard"
        self._writer = None
        self._purge_step: int | None = None
        if self.tensorboard:
            require_tensorboard()

    # RunLog interface -------------------------------------------------------------------------

    def start_fresh(self) -> None:
        """Empty the log and remove the event files of an earlier run in this folder."""
        super().start_fresh()
        if self.tensorboard and self.log_dir.is_dir():
            for old in self.log_dir.glob("events.out.tfevents.*"):
                old.unlink(missing_ok=True)

    def truncate_after(self, step: int) -> None:
        """Drop log records after ``step``; TensorBoard drops events from ``step + 1`` on (resume)."""
        super().truncate_after(step)
        self._purge_step = int(step) + 1

    def write(self, record: dict) -> None:
        """Append one record to ``log.jsonl``; ``train``/``val`` records also become scalars."""
        super().write(record)
        if not self.tensorboard:
            return
        kind = record.get("type")
        if kind in ("train", "val"):
            scalars = _scalars(kind, record)
            if scalars:
                writer = self._open()
                for tag, value in scalars:
                    writer.add_scalar(tag, value, int(record["step"]))
                writer.flush()
        elif kind == "event" and record.get("event") in _CLOSING_EVENTS:
            self.close()

    # TensorBoard only -------------------------------------------------------------------------

    def validation_details(self, step: int, results: dict, class_names: Sequence[str], *,
                           model: nn.Module | None = None, dataset: Any = None,
                           settings: EvalSettings | None = None, note: str | None = None) -> None:
        """Write per-class IU scalars, the markdown table (with ``note``, e.g. a collapse line) and,
        given ``model`` and ``dataset``, the prediction images of one validation, run as the
        validation's ``settings`` say (device, precision, resize; None: the defaults). Returns None;
        a no-op unless TensorBoard logging is on (and this is the writing process)."""
        if not self.tensorboard:
            return
        writer = self._open()
        per_class = results.get("per_class_iu", [])
        names = fallback_class_names(class_names, len(per_class))
        for i, iu in enumerate(per_class):
            if iu is not None and math.isfinite(iu):
                writer.add_scalar(f"iu/{names[i]}", float(iu), step)
        share = top_class_share(results["confusion"]) if "confusion" in results else None
        if share is not None:
            writer.add_scalar("val/top_class_share", share, step)
        writer.add_text("val/per_class_iu", markdown_table(results, class_names, note), step)
        if model is not None and dataset is not None:
            settings = settings or EvalSettings()
            panels = prediction_panels(model, dataset, device=settings.device, precision=settings.precision,
                                       resize=settings.resize)
            for i, panel in enumerate(panels):
                writer.add_image(f"predictions/{i}", panel, step, dataformats="HWC")
        writer.flush()

    def close(self) -> None:
        """Flush and close the event file (a later record opens a new one)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def _open(self):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.log_dir.mkdir(parents=True, exist_ok=True)
            self._writer = SummaryWriter(str(self.log_dir), purge_step=self._purge_step)
            self._purge_step = None
            weakref.finalize(self, self._writer.close)
        return self._writer
