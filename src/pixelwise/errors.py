"""Errors that the CLI turns into one clear line (no traceback)."""


class PixelwiseError(Exception):
    """A user-facing error: bad input, a missing file, an invalid option.

    The message names the file or option and the problem, and where possible what to do next.
    """


class DataError(PixelwiseError):
    """A dataset file is missing, unreadable or inconsistent."""


class CheckpointError(PixelwiseError):
    """A checkpoint is missing, corrupt, truncated or for another model."""
