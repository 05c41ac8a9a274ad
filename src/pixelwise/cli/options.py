"""Option parsing shared by several subcommands."""

from __future__ import annotations

import yaml

from pixelwise.errors import PixelwiseError


def parse_key_values(items: list[str], flag: str = "--data") -> dict:
    """Return ``{key: value}`` for ``KEY=VALUE`` items, values read as YAML scalars
    (``size=64`` -> 64, ``sbd_root=~/x`` -> ``"~/x"``); a malformed item is a one-line error."""
    options = {}
    for item in items:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise PixelwiseError(f"{flag} {item!r}: expected KEY=VALUE, e.g. {flag} size=64")
        options[key.strip()] = yaml.safe_load(raw) if raw else ""
    return options
