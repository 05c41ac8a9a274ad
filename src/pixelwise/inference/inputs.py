"""The images a batch run segments: files, folders and glob patterns expanded into a list of paths."""

from __future__ import annotations

import glob
from pathlib import Path

from pixelwise.data.io import IMAGE_EXTENSIONS
from pixelwise.errors import PixelwiseError


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Return the image paths that files, folders (their images, sorted) and glob patterns name,
    each file once, in order; raises :class:`PixelwiseError` for an input that names nothing."""
    out: list[Path] = []
    for item in inputs:
        out += _paths_of(item)
    seen: set[Path] = set()
    unique = []
    for p in out:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def _paths_of(item: str) -> list[Path]:
    """Return the files one input names: a folder's images, the file itself, or a glob's matches."""
    p = Path(item)
    if p.is_dir():
        found = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_EXTENSIONS)
        if not found:
            raise PixelwiseError(f"{p}: folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        return found
    if p.is_file():
        return [p]
    matches = sorted(Path(m) for m in glob.glob(item, recursive=True) if Path(m).is_file())
    if not matches:
        raise PixelwiseError(f"{item}: no such file or folder, and no file matches it as a glob")
    return matches
