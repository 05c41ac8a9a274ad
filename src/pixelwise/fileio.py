"""Writing output files: one clear error line instead of a traceback when a path cannot be written.

Every command that writes checks its output path before the long work (loading weights, tracing,
training), and wraps the write itself, so that a bad ``--out``/``-o`` ends as one line::

    pixelwise export: error: cannot write /proc/x.onnx: No such file or directory
    pixelwise convert: error: cannot write out: it is a directory
    pixelwise predict: error: cannot write notes.txt/masks: notes.txt is not a directory

- :func:`ensure_writable_dir` creates a folder (with its parents) and proves that a file can be
  made in it; :func:`ensure_writable_file` does the same for a file's folder and refuses a path
  that is a folder.
- :func:`atomic_file` writes through a temporary file beside the target and renames it into place
  (a crash never leaves a half-written file under the real name).
- :func:`writing` turns any ``OSError`` raised in its block into :class:`PixelwiseError` naming
  the path.

All of them raise :class:`~pixelwise.errors.PixelwiseError` (``cannot write PATH: REASON``), which
the CLI prints as one line with exit code 2.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from pixelwise.errors import PixelwiseError


class WriteError(PixelwiseError):
    """An output file or folder cannot be written; the message names the path and the reason."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = str(path)
        self.reason = reason
        super().__init__(f"cannot write {self.path}: {reason}")


def _reason(exc: OSError) -> str:
    """The operating system's words for ``exc`` (``Permission denied``, ``No space left on device``)."""
    if isinstance(exc, IsADirectoryError):
        return "it is a directory"
    return exc.strerror or str(exc) or type(exc).__name__


def write_error(path: str | os.PathLike, exc: OSError) -> WriteError:
    """Return the :class:`WriteError` for ``exc`` raised while writing ``path``."""
    return WriteError(path, _reason(exc))


def _blocking_ancestor(folder: Path) -> Path | None:
    """The first existing ancestor of ``folder`` (or ``folder`` itself) that is not a directory."""
    for candidate in [folder, *folder.parents]:
        try:
            os.stat(candidate)
        except (FileNotFoundError, NotADirectoryError):
            continue  # not there (yet): look further up
        except OSError:
            return None  # cannot tell (e.g. no search permission): mkdir will say why
        return None if candidate.is_dir() else candidate
    return None


def _prepare_dir(folder: Path, target: Path, *, probe: bool = True) -> None:
    """Create ``folder`` and (with ``probe``) prove that a file can be made in it; errors name
    ``target``."""
    blocker = _blocking_ancestor(folder)
    if blocker is not None:
        raise WriteError(target, f"{blocker} is not a directory" if blocker != target else "it is not a directory")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        if not probe:
            return
        # os.access ignores read-only mounts, ACLs and root; making a file is the real test
        fd, probe_path = tempfile.mkstemp(prefix=".pixelwise-write-test.", dir=folder)
        os.close(fd)
        os.unlink(probe_path)
    except OSError as exc:
        raise write_error(target, exc) from None


def ensure_writable_dir(path: str | os.PathLike) -> Path:
    """Create the folder ``path`` (and its parents) if needed and check that files can be written
    in it; return it as a :class:`~pathlib.Path`. Raises :class:`WriteError` otherwise."""
    folder = Path(path)
    _prepare_dir(folder, folder)
    return folder


def ensure_writable_file(path: str | os.PathLike) -> Path:
    """Check that the file ``path`` can be written (its folder is created if needed): it must not
    be a folder, and its folder must take new files. Returns it as a :class:`~pathlib.Path`;
    raises :class:`WriteError` otherwise. An existing file is left as it is."""
    file = Path(path)
    if file.is_dir():
        raise WriteError(file, "it is a directory")
    _prepare_dir(file.parent, file)
    if file.exists() and not os.access(file, os.W_OK):
        raise WriteError(file, "Permission denied")
    return file


@contextlib.contextmanager
def writing(path: str | os.PathLike) -> Iterator[Path]:
    """Within this block an ``OSError`` becomes a :class:`WriteError` naming the file it is about
    (``exc.filename``, as ``open`` sets it), else ``path`` (a full disk names no file)."""
    try:
        yield Path(path)
    except OSError as exc:
        raise write_error(exc.filename if exc.filename is not None else path, exc) from None


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block succeeds, rename it onto ``path``
    (so a crash never leaves a half-written file under the real name); otherwise delete it.

    An ``OSError`` in creating the folder or the temporary file, in the renaming, or raised in the
    block about the temporary file (or with no file name, as a full disk gives) becomes a
    :class:`WriteError` naming ``path``; one about another file (a source read in the block)
    passes unchanged.
    """
    path = Path(path)
    if path.is_dir():
        raise WriteError(path, "it is a directory")
    _prepare_dir(path.parent, path, probe=False)  # making the temporary file is the probe
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
    except OSError as exc:
        raise write_error(path, exc) from None
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and exc.filename in (None, tmp, str(path)):
            raise write_error(path, exc) from None
        raise


__all__ = ["WriteError", "atomic_file", "ensure_writable_dir", "ensure_writable_file", "write_error", "writing"]
