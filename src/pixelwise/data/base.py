"""Helpers shared by the on-disk datasets: id lists and sample validation."""

from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from pixelwise.data.palette import IGNORE_INDEX
from pixelwise.errors import DataError


@runtime_checkable
class SegmentationSource(Protocol):
    """What every pixelwise dataset provides (raw numpy samples, see :mod:`pixelwise.data`)."""

    num_classes: int
    class_names: list[str]
    names: list[str]

    def __len__(self) -> int: ...

    def __getitem__(self, index: int) -> dict: ...


def read_id_list(path: str | Path) -> list[str]:
    """Return the ids of a list file (one per line; extra columns and blank lines are skipped)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: id list not found")
    ids = []
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable id list ({exc})") from None
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            ids.append(line.split()[0])
    return ids


def dedupe(ids: list[str]) -> list[str]:
    """Return ``ids`` with repeats removed, first occurrence kept (order preserved)."""
    return list(dict.fromkeys(ids))


def bad_labels(mask: np.ndarray, num_classes: int) -> np.ndarray:
    """Return the sorted label values in ``mask`` outside ``0..num_classes-1`` and 255, as int64."""
    counts = np.bincount(np.asarray(mask, dtype=np.uint8).ravel(), minlength=256)
    present = np.flatnonzero(counts)
    return present[(present >= num_classes) & (present != IGNORE_INDEX)].astype(np.int64)


def validate_pair(
    image: np.ndarray, mask: np.ndarray, num_classes: int, image_path: object, mask_path: object
) -> None:
    """Raise :class:`DataError` if the mask's size differs from the image's or a label is invalid."""
    if image.shape[:2] != mask.shape:
        raise DataError(
            f"{mask_path}: mask is {mask.shape[1]}x{mask.shape[0]} but image {image_path} is "
            f"{image.shape[1]}x{image.shape[0]} (width x height)"
        )
    bad = bad_labels(mask, num_classes)
    if len(bad):
        raise DataError(
            f"{mask_path}: labels {bad.tolist()} outside 0..{num_classes - 1} and 255 (ignore)"
        )


def format_ids(ids: list[str], limit: int = 5) -> str:
    """Return ``"a, b, c (+N more)"`` for error messages."""
    shown = ", ".join(ids[:limit])
    return shown + (f" (+{len(ids) - limit} more)" if len(ids) > limit else "")


def require_dirs(kind: str, *dirs: Path) -> None:
    """Raise a one-line DataError naming the first of ``dirs`` that is not a directory."""
    for d in dirs:
        if not d.is_dir():
            raise DataError(f"{d}: {kind} directory not found")


def instances_wanted(kind: str, with_instances: bool | None, instance_dir: Path) -> bool:
    """Decide whether instances are loaded: ``None`` means "when ``instance_dir`` exists"; asking
    for them without the directory is a one-line DataError."""
    if with_instances is None:
        return instance_dir.is_dir()
    if with_instances and not instance_dir.is_dir():
        raise DataError(
            f"{instance_dir}: {kind} directory not found (pass with_instances=False to load "
            "without instances)"
        )
    return bool(with_instances)
