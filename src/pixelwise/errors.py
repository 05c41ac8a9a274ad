"""Errors that the CLI turns into one clear line (no traceback)."""


class PixelwiseError(Exception):
    """A user-facing error: bad input, a missing file, an invalid option.

    The message names the file or option and the problem, and where possible what to do next.
    """


class DataError(PixelwiseError):
    """A dataset file is missing, unreadable or inconsistent."""


class CheckpointError(PixelwiseError):
    """A checkpoint is missing, corrupt, truncated or for another model."""


def first_line(exc: BaseException, limit: int | None = 200) -> str:
    """Return the first line of ``exc``'s message (surrounding blanks stripped), cut to ``limit``
    characters (None: whole); the exception's type name when the message is empty."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if limit is None else line[:limit]


def one_line(exc: BaseException, limit: int = 300) -> str:
    """Return every non-blank line of ``exc``'s message joined by spaces, cut to ``limit`` characters
    (for messages whose later lines matter, such as ``load_state_dict``'s list of keys)."""
    return " ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip())[:limit]
