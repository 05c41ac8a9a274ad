"""Helpers shared by the on-disk datasets: text and id lists, sample validation, messages."""

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

    def __getitem__(self, index: int) -> dict:
        """Return sample ``index`` (a dict of numpy arrays, keys in :mod:`pixelwise.data`)."""
        ...


def parse_id_list(text: str) -> list[str]:
    """Return the ids of an id list's text: the first word of each line; blank lines and
    ``#`` comments are skipped."""
    ids = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            ids.append(line.split()[0])
    return ids


def read_text(path: Path, what: str) -> str:
    """Return the UTF-8 text of the file ``path``; a missing or unreadable file is a one-line
    DataError naming it and ``what`` it is."""
    if not path.is_file():
        raise DataError(f"{path}: {what} not found")
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: unreadable {what} ({exc})") from None


def read_id_list(path: str | Path) -> list[str]:
    """Return the ids of a list file (see :func:`parse_id_list`); DataError naming it if missing."""
    return parse_id_list(read_text(Path(path), "id list"))


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


def require_same_size(
    path: object, what: str, shape: tuple[int, ...], mask_path: object, mask_shape: tuple[int, ...]
) -> None:
    """Raise :class:`DataError` if an instance map (``what`` at ``path``) and its class mask differ
    in size."""
    if shape != mask_shape:
        raise DataError(
            f"{path}: {what} is {shape[1]}x{shape[0]} but {mask_path} is "
            f"{mask_shape[1]}x{mask_shape[0]}"
        )


def strip_path(message: str, path: object) -> str:
    """Return a DataError ``message`` without its leading ``"<path>: "`` (for reports that print
    the path beside it)."""
    prefix = f"{path}: "
    return message[len(prefix) :] if message.startswith(prefix) else message


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

