"""The classes file of a folder dataset: class names, optionally with the RGB colour of each class.

Two forms, told apart by the file itself (mixing them is an error naming the line):

**Names only** (as before): one class name per line, background first; line ``i`` is label ``i``.
The masks hold class indices.

**Coloured**: every line is a name and an RGB colour, in either order, the colour written as three
numbers 0..255 (separated by spaces, tabs or commas) or as ``#RRGGBB``::

    background  0 0 0
    road        128 64 128
    sidewalk    #F423E8
    64 128 64   Animal          (CamVid's label_colors.txt: colour first)
    car: 64,0,128               (CVAT's labelmap.txt style, trailing ``::`` allowed)
    void        0 0 192         (``void`` or ``ignore``: this colour is label 255, not a class)

- Classes are numbered by first appearance, background first; ``void`` / ``ignore`` lines (any
  case) take no number: their colours become label 255 (ignored). There may be several.
- A name given again adds another colour to the same class (merging colours into one class).
- A colour may belong to one class only; a value outside 0..255 or a malformed ``#RRGGBB`` is an
  error naming the line.
- Blank lines and lines starting with ``#`` are skipped (except ``#RRGGBB name``, a colour-first
  entry). Names may contain spaces; a names-only line that ends in three numbers is read as a
  coloured one.

With colours, RGB(A) masks are decoded by colour (alpha ignored); palette, grayscale and 16-bit
masks are still read as indices (their palette only decides how they look).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pixelwise.data.base import read_text
from pixelwise.data.palette import IGNORE_INDEX, palette_table
from pixelwise.errors import DataError

RGB = tuple[int, int, int]

VOID_NAMES = ("void", "ignore")
"""Names (case-insensitive) whose colours mean label 255 in a coloured classes file."""

UNKNOWN_COLOR_POLICIES = ("error", "ignore")
"""What loading does with a mask colour that is in no class: raise, or read it as 255."""

MAX_CLASSES = 255
"""Labels 0..254 are classes; 255 is ignore."""

_SEP = r"(?:\s*[:,]\s*|\s+)"
_COLOUR = r"(?:#[0-9A-Fa-f]{6}|\d+(?:\s*,\s*|\s+)\d+(?:\s*,\s*|\s+)\d+)"
_COLOUR_LAST = re.compile(rf"^(?P<name>\S.*?){_SEP}(?P<colour>{_COLOUR})[\s:]*$")
_COLOUR_FIRST = re.compile(rf"^(?P<colour>{_COLOUR}){_SEP}(?P<name>\S.*?)[\s:]*$")
_HEX_FIRST = re.compile(r"^#[0-9A-Fa-f]{6}\s+\S")
_BAD_HEX = re.compile(r"(?:^|[\s:])(#(?:[0-9A-Fa-f]{3,5}|[0-9A-Fa-f]{7,8}))(?:[\s:]|$)")


def pack(rgb: np.ndarray) -> np.ndarray:
    """Pack ``(..., 3)`` uint8 RGB into int64 ``0xRRGGBB`` (one number per colour)."""
    rgb = np.asarray(rgb)
    return (
        (rgb[..., 0].astype(np.int64) << 16)
        | (rgb[..., 1].astype(np.int64) << 8)
        | rgb[..., 2].astype(np.int64)
    )


def unpack(value: int) -> RGB:
    """Return the ``(r, g, b)`` of a packed ``0xRRGGBB`` colour."""
    value = int(value)
    return (value >> 16) & 255, (value >> 8) & 255, value & 255


def format_color(rgb: RGB) -> str:
    """Return ``"(r, g, b) #RRGGBB"`` for messages."""
    r, g, b = rgb
    return f"({r}, {g}, {b}) #{r:02X}{g:02X}{b:02X}"


def list_colours(colours: list[tuple[RGB, int]], limit: int) -> str:
    """Return ``"(r, g, b) #RRGGBB N px, ... (+K more)"`` naming the first ``limit`` of
    ``(colour, pixels)`` pairs."""
    shown = ", ".join(f"{format_color(c)} {n:,d} px" for c, n in colours[:limit])
    return shown + (f" (+{len(colours) - limit} more)" if len(colours) > limit else "")


def add_unknown(totals: dict[int, list[int]], unknown: list[tuple[RGB, int]]) -> int:
    """Add one mask's colours in no class (``(colour, pixels)`` pairs) to ``totals`` (packed
    colour -> ``[pixels, masks]``); return the mask's pixels of those colours."""
    for colour, n in unknown:
        entry = totals.setdefault(int(pack(np.array(colour))), [0, 0])
        entry[0] += n
        entry[1] += 1
    return sum(n for _, n in unknown)


def most_pixels_first(totals: dict[int, list[int]]) -> list[tuple[int, list[int]]]:
    """Return the ``(packed colour, [pixels, masks])`` items of ``totals``, most pixels first
    (ties by colour)."""
    return sorted(totals.items(), key=lambda kv: (-kv[1][0], kv[0]))


@dataclass
class ColorMap:
    """Maps mask colours to labels: class colours to their index, void colours to 255.

    ``keys`` are the packed colours, sorted; ``labels[k]`` is the label of ``keys[k]``. ``source``
    names the classes file in messages.
    """

    keys: np.ndarray
    labels: np.ndarray
    source: str = "the classes file"

    def decode(self, rgb: np.ndarray) -> tuple[np.ndarray, list[tuple[RGB, int]]]:
        """Map an ``(H, W, 3)`` RGB array to ``(H, W)`` uint8 labels.

        Returns ``(labels, unknown)``: pixels of a colour in no class are 255 in ``labels`` and
        listed in ``unknown`` as ``((r, g, b), pixel count)``, most pixels first.
        """
        packed = pack(np.asarray(rgb)[..., :3])
        if len(self.keys) == 0:
            found = np.zeros(packed.shape, dtype=bool)
            out = np.full(packed.shape, IGNORE_INDEX, dtype=np.uint8)
        else:
            idx = np.searchsorted(self.keys, packed)
            np.minimum(idx, len(self.keys) - 1, out=idx)
            found = self.keys[idx] == packed
            out = self.labels[idx]
            out[~found] = IGNORE_INDEX
        unknown: list[tuple[RGB, int]] = []
        if not found.all():
            colours, counts = np.unique(packed[~found], return_counts=True)
            order = np.lexsort((colours, -counts))
            unknown = [(unpack(colours[k]), int(counts[k])) for k in order]
        return out, unknown


@dataclass
class ClassList:
    """A parsed classes file (see the module docstring for the syntax).

    ``colors[i]`` lists the colours of class ``i``; ``colors`` is None for a names-only file.
    ``void_colors`` are the colours read as 255 (ignore).
    """

    path: Path
    names: list[str]
    colors: list[list[RGB]] | None = None
    void_colors: list[RGB] = field(default_factory=list)

    @property
    def has_colors(self) -> bool:
        """True for the coloured form."""
        return self.colors is not None

    @property
    def num_classes(self) -> int:
        """The number of classes (void lines not counted)."""
        return len(self.names)

    def palette(self) -> np.ndarray | None:
        """Return ``(num_classes, 3)`` uint8: the first colour of each class (None without colours)."""
        if self.colors is None:
            return None
        return np.array([c[0] for c in self.colors], dtype=np.uint8).reshape(-1, 3)

    def full_palette(self) -> np.ndarray:
        """Return the ``(256, 3)`` uint8 palette for index PNGs of these classes.

        Rows ``0..C-1`` are the class colours (VOC colours without them), the rows after are VOC
        colours, row 255 is the first void colour (the VOC ignore colour without one).
        """
        table = palette_table(self.palette())
        if self.void_colors:
            table[IGNORE_INDEX] = self.void_colors[0]
        return table

    def color_map(self) -> ColorMap | None:
        """Return the :class:`ColorMap` of a coloured file, None for a names-only one."""
        if self.colors is None:
            return None
        table: dict[int, int] = {}
        for label, colours in enumerate(self.colors):
            for c in colours:
                table[int(pack(np.array(c)))] = label
        for c in self.void_colors:
            table[int(pack(np.array(c)))] = IGNORE_INDEX
        keys = np.array(sorted(table), dtype=np.int64)
        labels = np.array([table[int(k)] for k in keys], dtype=np.uint8)
        return ColorMap(keys=keys, labels=labels, source=str(self.path))

    def to_text(self) -> str:
        """Return the file in canonical form (``name R G B`` lines, or names only)."""
        if self.colors is None:
            return "\n".join(self.names) + "\n"
        lines = ["# pixelwise classes: label = order of first appearance; void = 255 (ignored)"]
        width = max(len(n) for n in self.names + ["void"])
        for name, colours in zip(self.names, self.colors, strict=True):
            lines += [f"{name:<{width}}  {r:>3} {g:>3} {b:>3}" for r, g, b in colours]
        lines += [f"{'void':<{width}}  {r:>3} {g:>3} {b:>3}" for r, g, b in self.void_colors]
        return "\n".join(lines) + "\n"


def _parse_colour(text: str, where: str) -> RGB:
    if text.startswith("#"):
        v = int(text[1:], 16)
        return unpack(v)
    values = [int(t) for t in re.split(r"[\s,]+", text.strip())]
    bad = [v for v in values if v > 255]
    if bad:
        raise DataError(f"{where}: colour value {bad[0]} outside 0..255")
    return values[0], values[1], values[2]


def _parse_line(line: str, where: str) -> tuple[str, RGB | None]:
    """Return ``(name, colour or None)`` of one non-comment line."""
    m = _COLOUR_LAST.match(line) or _COLOUR_FIRST.match(line)
    if m:
        name = m.group("name").strip().rstrip(":").strip()
        if name and not re.fullmatch(_COLOUR, name):
            return name, _parse_colour(m.group("colour"), where)
    bad = _BAD_HEX.search(line)
    if bad:
        raise DataError(
            f"{where}: bad colour {bad.group(1)!r} (write #RRGGBB with six hex digits, or R G B)"
        )
    return line, None


def parse_classes(text: str, path: str | Path = "classes.txt") -> ClassList:
    """Parse the text of a classes file; DataError naming ``path`` and the line on any problem."""
    path = Path(path)
    entries: list[tuple[int, str, RGB | None]] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip().lstrip("\ufeff")
        if not line or (line.startswith("#") and not _HEX_FIRST.match(line)):
            continue
        name, colour = _parse_line(line, f"{path}:{number}")
        entries.append((number, name, colour))
    if not entries:
        raise DataError(f"{path}: class list is empty")
    coloured = [e for e in entries if e[2] is not None]
    plain = [e for e in entries if e[2] is None]
    if coloured and plain:
        first_c, first_p = coloured[0], plain[0]
        if len(plain) <= len(coloured):
            raise DataError(
                f"{path}:{first_p[0]}: {first_p[1]!r} has no colour, but line {first_c[0]} has one; "
                "give every class a colour (name R G B, or name #RRGGBB) or none"
            )
        raise DataError(
            f"{path}:{first_c[0]}: {first_c[1]!r} has a colour, but line {first_p[0]} "
            f"({first_p[1]!r}) has none; give every class a colour or none"
        )
    if plain:
        names = [name for _, name, _ in entries]
        _check_count(path, len(names))
        return ClassList(path=path, names=names)

    names: list[str] = []
    colours: list[list[RGB]] = []
    void: list[RGB] = []
    owner: dict[RGB, tuple[str, int]] = {}  # colour -> (name, line)
    for number, name, colour in entries:
        assert colour is not None
        is_void = name.lower() in VOID_NAMES
        shown = "void" if is_void else name
        if colour in owner:
            prev_name, prev_line = owner[colour]
            if prev_name == shown:
                continue  # the same colour twice for one class: harmless
            raise DataError(
                f"{path}:{number}: colour {format_color(colour)} of {name!r} is already used by "
                f"{prev_name!r} (line {prev_line}); a colour can belong to one class only"
            )
        owner[colour] = (shown, number)
        if is_void:
            void.append(colour)
        elif name in names:
            colours[names.index(name)].append(colour)
        else:
            names.append(name)
            colours.append([colour])
    if not names:
        raise DataError(f"{path}: only void colours given; list at least one class")
    _check_count(path, len(names))
    return ClassList(path=path, names=names, colors=colours, void_colors=void)


def _check_count(path: Path, n: int) -> None:
    if n > MAX_CLASSES:
        raise DataError(
            f"{path}: {n} classes; at most {MAX_CLASSES} fit in a uint8 mask with 255 = ignore"
        )


def read_classes(path: str | Path) -> ClassList:
    """Read and parse a classes file; DataError naming it if missing, unreadable or malformed."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError(f"{path}: classes file not found")
    return parse_classes(read_text(path, "class list"), path)


def check_unknown_policy(value: str) -> str:
    """Return ``value`` if it is one of :data:`UNKNOWN_COLOR_POLICIES`; DataError otherwise."""
    if value not in UNKNOWN_COLOR_POLICIES:
        raise DataError(
            f"unknown_colors must be one of {', '.join(UNKNOWN_COLOR_POLICIES)}, got {value!r}"
        )
    return value
