"""The user's cache folder for things pixelwise computes once and reuses (pretrained backbones)."""

from __future__ import annotations

import hashlib
import json
import os
import sys
from pathlib import Path


def cache_dir() -> Path:
    """Return pixelwise's cache folder: ``$PIXELWISE_CACHE`` if set, else the platform's user cache
    folder (``$XDG_CACHE_HOME`` or ``~/.cache`` on Linux, ``~/Library/Caches`` on macOS,
    ``%LOCALAPPDATA%`` on Windows) + ``/pixelwise``. Not created here."""
    if os.environ.get("PIXELWISE_CACHE"):
        return Path(os.environ["PIXELWISE_CACHE"]).expanduser()
    if sys.platform == "win32":
        base = Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local"))
    elif sys.platform == "darwin":
        base = Path.home() / "Library" / "Caches"
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "pixelwise"


def settings_key(settings: dict, length: int = 16) -> str:
    """Return a stable hash of a JSON-serialisable ``settings`` dict (the cache key): the first
    ``length`` hex digits of the SHA-256 of its sorted-key JSON."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]
