"""The files a batch run writes per image: ``NAME.png`` (palette mask), ``NAME_overlay.png``,
``NAME_probs.npy`` (optional) and ``NAME.json`` (the record of :mod:`pixelwise.inference.summary`),
each write failing with one line that names the file."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from pixelwise.data.io import write_image, write_mask
from pixelwise.data.palette import overlay, voc_palette
from pixelwise.fileio import writing


def output_stems(paths: list[Path]) -> list[str]:
    """Return one output name per input: the file's stem, with ``_2``, ``_3``, ... when stems repeat."""
    used: dict[str, int] = {}
    stems = []
    for p in paths:
        n = used.get(p.stem, 0) + 1
        used[p.stem] = n
        stems.append(p.stem if n == 1 else f"{p.stem}_{n}")
    return stems


def write_outputs(out_dir: Path, stem: str, image: np.ndarray, mask: np.ndarray, probs: np.ndarray, *,
                  alpha: float, save_probs: bool, palette: np.ndarray | None = None) -> None:
    """Write ``STEM.png`` (palette mask: ``palette``'s colours, default VOC's), ``STEM_overlay.png``
    (opacity ``alpha``) and, with ``save_probs``, ``STEM_probs.npy`` (float16 ``(C, H, W)``) into
    ``out_dir``."""
    palette = voc_palette(256) if palette is None else palette
    with writing(out_dir / f"{stem}.png"):  # e.g. a full disk: one line naming the file
        write_mask(out_dir / f"{stem}.png", mask, palette)
        write_image(out_dir / f"{stem}_overlay.png", overlay(image, mask, alpha, palette))
        if save_probs:
            np.save(out_dir / f"{stem}_probs.npy", probs.astype(np.float16))


def write_summary(out_dir: Path, stem: str, summary: dict) -> Path:
    """Write ``summary`` to ``out_dir/STEM.json`` (:func:`compact_json`); return the file's path."""
    path = out_dir / f"{stem}.json"
    with writing(path):
        path.write_text(compact_json(summary) + "\n", encoding="utf-8")
    return path


def compact_json(data) -> str:
    """Return ``data`` as JSON with one key per line but short number lists (boxes, scales) kept
    on one line."""
    text = json.dumps(data, indent=1)
    return re.sub(r"\[\s+([-+\d.eE,\s]+?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)
