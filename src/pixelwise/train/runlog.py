"""The run log: one JSON object per line (``log.jsonl``) in the output folder.

Records have a ``type``: ``train`` (step, epoch, loss, lr, images_per_s, seconds), ``val``
(step, pixel_acc, mean_acc, mean_iu, fw_iu), or ``event`` (start, resume, interrupt, finish, ...).
Only rank 0 writes. On resume, records after the resumed step are dropped first, so the log of an
interrupted and resumed run reads like the log of one uninterrupted run.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path


def _clean(value):
    """JSON has no NaN: write undefined metrics as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def to_json(obj, **kwargs) -> str:
    """Return ``json.dumps`` of ``obj`` with NaN/inf written as null."""
    return json.dumps(_clean(obj), **kwargs)


class RunLog:
    """Appends records to ``path`` (only when ``enabled``, i.e. on rank 0)."""

    def __init__(self, path: str | os.PathLike, *, enabled: bool = True) -> None:
        self.path = Path(path)
        self.enabled = enabled

    def start_fresh(self) -> None:
        """Empty the log (a new run in this folder)."""
        if self.enabled:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text("", encoding="utf-8")

    def truncate_after(self, step: int) -> None:
        """Drop records with ``step`` greater than ``step`` (resume)."""
        if not self.enabled or not self.path.is_file():
            return
        keep = [r for r in read_log(self.path) if int(r.get("step", 0)) <= step]
        self.path.write_text("".join(to_json(r) + "\n" for r in keep), encoding="utf-8")

    def write(self, record: dict) -> None:
        """Append one record."""
        if not self.enabled:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(to_json(record) + "\n")


def read_log(path: str | os.PathLike) -> list[dict]:
    """Return the records of a ``log.jsonl`` (a torn last line is skipped)."""
    records = []
    path = Path(path)
    if not path.is_file():
        return records
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line:
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records
