"""``pixelwise data convert``: turn a folder dataset's masks into index PNGs.

Every mask of ``ROOT/masks`` is decoded as loading would decode it (RGB colour masks through the
class colours of the classes file, void colours -> 255; palette, grayscale and 16-bit masks as
indices) and written to ``OUT/masks/<stem>.png`` as a palette PNG whose pixel values are the
class indices and whose palette holds the class colours (row 255: the first void colour), so the
converted masks look like the originals in any viewer. Each file is written atomically (a
temporary file renamed into place).

``OUT`` becomes a complete folder dataset: ``OUT/classes.txt`` (the classes in canonical form),
``OUT/images`` (a link to ``ROOT/images`` by default, or a copy), and ``OUT/splits`` (copied).
A mask that cannot be converted is reported (one line) and not written; the rest go on.
"""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from pixelwise.data.base import strip_path
from pixelwise.data.classes import (
    RGB,
    ClassList,
    add_unknown,
    check_unknown_policy,
    list_colours,
    most_pixels_first,
    unpack,
)
from pixelwise.data.folder import CLASSES_FILE, MASK_EXTENSIONS, find_classes, list_by_stem
from pixelwise.data.io import IMAGE_EXTENSIONS, read_color_mask, read_mask
from pixelwise.data.palette import palette_table
from pixelwise.errors import DataError

IMAGE_MODES = ("link", "copy", "none")
"""How ``OUT/images`` is made: a symbolic link to ``ROOT/images``, a copy, or not at all."""


@dataclass
class ConvertReport:
    """Result of :func:`convert_folder`.

    ``problems`` lists ``(path, message)`` for each mask not written; ``unknown_colors`` maps each
    packed ``0xRRGGBB`` colour in no class to ``[pixels, masks]`` (with ``unknown_colors="error"``
    these masks are among the problems; with ``"ignore"`` they were written with 255 there).
    """

    root: Path
    out: Path
    masks: int = 0
    written: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)
    unknown_colors: dict[int, list[int]] = field(default_factory=dict)
    unknown_images: int = 0
    classes: ClassList | None = None
    images: str = "none"
    unknown_policy: str = "error"

    @property
    def ok(self) -> bool:
        """True when every mask was written."""
        return not self.problems


@contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` when the block succeeds,
    delete it otherwise (a crash never leaves a half-written file under the real name)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_index_png(path: Path, mask: np.ndarray, palette: np.ndarray) -> None:
    """Write ``(H, W)`` uint8 labels as a palette PNG with the ``(256, 3)`` palette, atomically."""
    img = Image.fromarray(np.ascontiguousarray(mask, dtype=np.uint8), mode="P")
    img.putpalette(np.asarray(palette, dtype=np.uint8).ravel().tolist())
    with atomic_path(path) as tmp:
        img.save(tmp, format="PNG")


def _masks_to_convert(
    mask_dir: Path, mask_suffix: str, report: ConvertReport
) -> list[tuple[str, Path]]:
    """``(output stem, mask file)`` pairs; duplicates and names without the suffix are problems."""
    masks, dups = list_by_stem(mask_dir, MASK_EXTENSIONS)
    for p in dups:
        report.problems.append((str(p), "another mask has the same stem; not converted"))
    out: list[tuple[str, Path]] = []
    for stem, path in sorted(masks.items()):
        if mask_suffix:
            if not stem.endswith(mask_suffix) or stem == mask_suffix:
                report.problems.append(
                    (str(path), f"name does not end in --mask-suffix {mask_suffix!r}; not converted")
                )
                continue
            stem = stem[: -len(mask_suffix)]
        out.append((stem, path))
    return out


def _preflight(root: Path, out: Path, images: str, overwrite: bool) -> None:
    """Refuse to overwrite earlier output (unless ``overwrite``) or the source dataset."""
    if out.resolve() == root.resolve():
        raise DataError(f"{out}: --out must be a new folder, not the dataset root itself")
    if out.exists() and not out.is_dir():
        raise DataError(f"{out}: exists and is not a directory")
    if not overwrite:
        mask_dir = out / "masks"
        if mask_dir.is_dir() and any(mask_dir.iterdir()):
            raise DataError(
                f"{mask_dir}: already holds files; pass --overwrite to replace masks of the same name"
            )
        if (out / CLASSES_FILE).exists():
            raise DataError(f"{out / CLASSES_FILE}: already exists; pass --overwrite to replace it")
    link = out / "images"
    if images == "link" and (link.exists() or link.is_symlink()):
        same = link.is_symlink() and link.resolve() == (root / "images").resolve()
        if not same and (not link.is_symlink() or not overwrite):
            raise DataError(
                f"{link}: already exists and is not a link to {root / 'images'}; remove it, pass "
                "--overwrite (replaces a link only) or use --images copy|none"
            )
    if images == "copy" and link.is_dir() and any(link.iterdir()) and not overwrite:
        raise DataError(f"{link}: already holds files; pass --overwrite to replace them")


def _make_images(root: Path, out: Path, images: str, progress: bool) -> None:
    src = root / "images"
    dst = out / "images"
    if images == "none":
        return
    if images == "link":
        target = src.resolve()
        if dst.is_symlink():
            if dst.resolve() == target:
                return
            dst.unlink()
        try:
            os.symlink(target, dst, target_is_directory=True)
        except OSError as exc:
            raise DataError(
                f"{dst}: cannot link to {target} ({exc.strerror or exc}); use --images copy"
            ) from None
        return
    from tqdm import tqdm

    files = [p for p in sorted(src.iterdir()) if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS]
    for p in tqdm(files, desc="copying images", unit="file", file=sys.stderr, disable=not progress):
        try:
            with atomic_path(dst / p.name) as tmp:
                shutil.copy2(p, tmp)
        except OSError as exc:
            raise DataError(f"{p}: cannot copy to {dst} ({exc.strerror or exc})") from None


def _copy_splits(root: Path, out: Path) -> None:
    split_dir = root / "splits"
    if not split_dir.is_dir():
        return
    for p in sorted(split_dir.glob("*.txt")):
        with atomic_path(out / "splits" / p.name) as tmp:
            shutil.copy2(p, tmp)


def convert_folder(
    root: str | Path,
    out: str | Path,
    *,
    classes_file: str | Path | None = None,
    unknown_colors: str = "error",
    images: str = "link",
    mask_suffix: str = "",
    overwrite: bool = False,
    progress: bool | None = None,
    echo: bool = False,
) -> ConvertReport:
    """Convert the masks of the folder dataset ``root`` into index PNGs under ``out``.

    ``classes_file`` replaces ``root/classes.txt``. ``unknown_colors``: ``"error"`` skips (and
    reports) a mask with a colour in no class, ``"ignore"`` writes such pixels as 255. ``images``:
    ``link`` (default), ``copy`` or ``none``. ``mask_suffix`` (e.g. CamVid's ``"_L"``) is removed
    from mask stems so that they match the images. ``progress`` None shows a bar only when stderr
    is a terminal. ``echo`` prints one line per problem to stdout as it is found. Raises DataError (one
    line) for a missing root, a bad classes file or output it would overwrite without
    ``overwrite``; problems with single masks go into the returned report.
    """
    root = Path(root).expanduser()
    out = Path(out).expanduser()
    _check_source(root, images, unknown_colors)
    if progress is None:
        progress = sys.stderr.isatty()
    classes = find_classes(root, classes_file)
    _preflight(root, out, images, overwrite)

    report = ConvertReport(
        root=root, out=out, classes=classes, images=images, unknown_policy=unknown_colors
    )
    todo = _masks_to_convert(root / "masks", mask_suffix, report)
    report.masks = len(todo) + len(report.problems)
    if echo:
        for path, message in report.problems:
            print(f"  {path}: {message}", flush=True)

    out.mkdir(parents=True, exist_ok=True)
    if classes is not None:
        with atomic_path(out / CLASSES_FILE) as tmp:
            tmp.write_text(classes.to_text(), encoding="utf-8")
    _convert_masks(todo, report, progress=progress, echo=echo)
    _make_images(root, out, images, progress)
    _copy_splits(root, out)
    return report


def _check_source(root: Path, images: str, unknown_colors: str) -> None:
    """Refuse unknown option values and a root that is not a folder dataset."""
    check_unknown_policy(unknown_colors)
    if images not in IMAGE_MODES:
        raise DataError(f"images must be one of {', '.join(IMAGE_MODES)}, got {images!r}")
    if not root.is_dir():
        raise DataError(f"{root}: dataset root not found")
    mask_dir = root / "masks"
    if not mask_dir.is_dir():
        raise DataError(f"{mask_dir}: folder dataset directory not found (expected images/ and masks/)")
    if images != "none" and not (root / "images").is_dir():
        raise DataError(f"{root / 'images'}: folder dataset directory not found (or use --images none)")


def _convert_masks(
    todo: list[tuple[str, Path]], report: ConvertReport, *, progress: bool, echo: bool
) -> None:
    """Write each ``(stem, mask file)`` of ``todo`` as ``report.out/masks/<stem>.png``; a mask that
    cannot be converted becomes a problem of the report (printed at once with ``echo``)."""
    from tqdm import tqdm

    classes = report.classes
    color_map = classes.color_map() if classes is not None else None
    palette = classes.full_palette() if classes is not None else palette_table()

    def problem(path: Path, message: str) -> None:
        report.problems.append((str(path), message))
        if echo:
            tqdm.write(f"  {path}: {message}", file=sys.stdout)

    bar = tqdm(todo, desc="converting masks", unit="mask", file=sys.stderr, disable=not progress)
    for stem, path in bar:
        try:
            if color_map is None:
                mask = read_mask(path)
            else:
                mask, unknown = read_color_mask(path, color_map)
                if unknown:
                    add_unknown(report.unknown_colors, unknown)
                    report.unknown_images += 1
                    if report.unknown_policy == "error":
                        problem(path, _unknown_message(unknown, classes))
                        continue
            write_index_png(report.out / "masks" / f"{stem}.png", mask, palette)
        except DataError as exc:
            problem(path, strip_path(str(exc), path))
            continue
        except OSError as exc:
            raise DataError(f"{report.out / 'masks'}: cannot write ({exc.strerror or exc})") from None
        report.written += 1


def _unknown_message(unknown: list[tuple[RGB, int]], classes: ClassList | None) -> str:
    source = classes.path.name if classes is not None else "the classes file"
    return (
        f"{len(unknown)} colour(s) in no class of {source}: {list_colours(unknown, 5)}; not converted "
        "(add them to the classes file, or pass --unknown-colors ignore to write them as 255)"
    )


def format_summary(report: ConvertReport) -> str:
    """Return the closing summary of a conversion (what was written, what was not)."""
    lines = []
    if report.unknown_colors and report.unknown_policy == "ignore":
        items = most_pixels_first(report.unknown_colors)
        px = sum(v[0] for v in report.unknown_colors.values())
        shown = list_colours([(unpack(k), v[0]) for k, v in items], 10)
        lines.append(
            f"written as 255 (ignore): {len(items)} colour(s) in no class, {px:,d} px in "
            f"{report.unknown_images} mask(s): {shown}"
        )
    c = report.classes
    if c is None:
        lines.append("classes: no classes file; masks read as indices (palette, gray, VOC colours)")
    elif c.has_colors:
        lines.append(
            f"classes: {c.num_classes} from {c.path} with colours"
            f"{f', {len(c.void_colors)} void colour(s) -> 255' if c.void_colors else ''}; "
            f"written to {report.out / CLASSES_FILE}"
        )
    else:
        lines.append(f"classes: {c.num_classes} names from {c.path}; written to {report.out / CLASSES_FILE}")
    images = {
        "link": f"images: {report.out / 'images'} -> {report.root / 'images'}",
        "copy": f"images: copied to {report.out / 'images'}",
        "none": "images: not written (--images none)",
    }[report.images]
    lines.append(images)
    status = "OK" if report.ok else "FAILED"
    lines.append(
        f"{status}: {report.written} of {report.masks} masks written to {report.out / 'masks'}, "
        f"{len(report.problems)} problem(s)"
    )
    return "\n".join(lines)
