"""``pixelwise data check``: scan a whole dataset and report every bad file, not just the first.

Checked per item: the image decodes (not truncated), the mask decodes, both exist, their sizes
match, every label is in ``0..C-1`` or 255, and (VOC/SBD) the instance file is readable and the
same size. Files that do not pair up (folder) or are listed but missing (VOC/SBD lists, CamVid
images without their annotation) are reported too. CamVid annotations: labels above 11 are
reported, void (11) is counted as ignore (255). With class colours (a coloured classes file,
folder datasets), every colour of an RGB mask must belong to a class or be void: each other
colour is reported per file with its pixel count, and totalled over the dataset. Also gathered:
pixels and images per class.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pixelwise.data.base import dedupe, read_id_list, strip_path
from pixelwise.data.camvid import (
    CAMVID_CLASSES,
    CAMVID_SPLITS,
    camvid_names,
    camvid_paths,
    find_camvid_root,
    read_camvid_mask,
)
from pixelwise.data.classes import ColorMap, add_unknown, format_color, list_colours, most_pixels_first, unpack
from pixelwise.data.folder import find_classes, hash_fraction, scan_folder
from pixelwise.data.io import read_color_mask, read_image, read_mask
from pixelwise.data.listed import Layout
from pixelwise.data.palette import IGNORE_INDEX, VOC_CLASSES
from pixelwise.data.sbd import SBD_LAYOUT, read_sbd_class_mask, read_sbd_instances
from pixelwise.data.voc import VOC_LAYOUT
from pixelwise.errors import DataError
from pixelwise.metrics import fallback_class_names

FORMATS = ("voc", "sbd", "folder", "camvid")

_LAYOUTS: dict[str, Layout] = {"voc": VOC_LAYOUT, "sbd": SBD_LAYOUT}

_NO_LISTS = {
    "voc": "no split lists (*.txt) found; checking every mask",
    "sbd": "no split lists (train.txt, val.txt) found; checking every cls/*.mat",
}
"""The problem reported for a VOC or SBD tree without split lists."""

UNKNOWN_PER_FILE = 5
"""Unknown colours listed on one file's problem line (the rest are counted)."""

UNKNOWN_IN_SUMMARY = 20
"""Unknown colours listed in the report's totals."""


@dataclass
class _Item:
    name: str
    image: Path | None
    mask: Path | None
    instances: Path | None = None


@dataclass
class CheckReport:
    """Result of :func:`check_dataset`.

    ``problems`` is a list of ``(path, message)``; ``pixels[c]`` / ``images[c]`` (int64 arrays of
    256) count the pixels with label ``c`` and the masks containing it (255 = ignore; pixels of
    unknown colours are not in it). ``unknown_colors`` maps each packed ``0xRRGGBB`` colour that
    is in no class to ``[pixels, masks]``; ``classes_file`` is the classes file used, if any.
    """

    root: Path
    format: str
    split: str
    num_classes: int
    class_names: list[str]
    items: int = 0
    bad_items: int = 0
    problems: list[tuple[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    pixels: np.ndarray = field(default_factory=lambda: np.zeros(256, dtype=np.int64))
    images: np.ndarray = field(default_factory=lambda: np.zeros(256, dtype=np.int64))
    unknown_colors: dict[int, list[int]] = field(default_factory=dict)
    unknown_images: int = 0
    classes_file: Path | None = None
    color_map: ColorMap | None = None

    @property
    def ok(self) -> bool:
        """True when no problem was found."""
        return not self.problems


def detect_format(root: str | Path) -> str:
    """Return ``folder``, ``voc``, ``sbd`` or ``camvid`` from the directory layout; DataError if
    none fits."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: dataset root not found")
    if (root / "images").is_dir() and (root / "masks").is_dir():
        return "folder"
    for fmt, layout in _LAYOUTS.items():
        try:
            layout.find_root(root)
            return fmt
        except DataError:
            pass
    try:
        find_camvid_root(root)
        return "camvid"
    except DataError:
        pass
    raise DataError(
        f"{root}: cannot tell the dataset format (no images/+masks/, VOC2012, SBD or CamVid "
        f"layout); pass --format {'|'.join(FORMATS)}"
    )


def _list_ids(list_dir: Path, split: str | None, report: CheckReport) -> list[str]:
    """Ids from ``list_dir/<split>.txt`` (or every list there); notes/problems go to the report."""
    if split:
        path = list_dir / f"{split}.txt"
        if not path.is_file():
            raise DataError(f"{path}: split list not found")
        report.split = split
        return read_id_list(path)
    lists = sorted(list_dir.glob("*.txt")) if list_dir.is_dir() else []
    if not lists:
        return []
    report.split = "all lists (" + ", ".join(p.stem for p in lists) + ")"
    ids: list[str] = []
    for p in lists:
        ids += read_id_list(p)
    return dedupe(ids)


def _listed_items(fmt: str, root: Path, split: str | None, report: CheckReport) -> list[_Item]:
    """The items of a VOC or SBD tree: those of its split lists, else every class mask."""
    layout = _LAYOUTS[fmt]
    droot = layout.find_root(root)
    report.root = droot
    for d in (layout.images, layout.masks):
        if not (droot / d).is_dir():
            report.problems.append((str(droot / d), "directory not found"))
    list_dir = droot / layout.lists
    ids = _list_ids(list_dir, split, report)
    if not ids and not split:
        report.problems.append((str(list_dir), _NO_LISTS[fmt]))
        report.split = f"every {layout.masks}/*{layout.label_ext}"
        ids = sorted(p.stem for p in (droot / layout.masks).glob(f"*{layout.label_ext}"))
    with_instances = (droot / layout.instances).is_dir()
    items = []
    for i in ids:
        image, mask, instances = layout.paths(droot, i)
        items.append(_Item(i, image, mask, instances if with_instances else None))
    return items


def _camvid_items(root: Path, split: str | None, report: CheckReport) -> list[_Item]:
    """The items of a CamVid tree: those of ``split``, else of every split with a list or a
    directory (in list order, else sorted)."""
    droot = find_camvid_root(root)
    report.root = droot
    splits = [split] if split else [
        s for s in CAMVID_SPLITS if (droot / s).is_dir() or (droot / f"{s}.txt").is_file()
    ]
    report.split = ", ".join(splits)
    return [_Item(n, *camvid_paths(droot, s, n)) for s in splits for n in camvid_names(droot, s)]


def _folder_items(root: Path, split: str | None, report: CheckReport) -> list[_Item]:
    scan = scan_folder(root)
    for p in scan.images_without_mask:
        report.problems.append((str(p), f"image has no mask (expected masks/{p.stem}.png)"))
    for p in scan.masks_without_image:
        report.problems.append(
            (str(p), "mask has no image (expected images/<same stem>.jpg/.png/...)")
        )
    for p in scan.duplicates:
        report.problems.append((str(p), "another file has the same stem; stems must be unique"))
    stems = sorted(scan.pairs)
    if split and split != "all":
        list_path = root / "splits" / f"{split}.txt"
        if list_path.is_file():
            stems = read_id_list(list_path)
            for s in stems:
                if s not in scan.pairs:
                    report.problems.append(
                        (str(list_path), f"lists {s!r}, which has no image/mask pair")
                    )
            stems = [s for s in stems if s in scan.pairs]
        elif split in ("train", "val"):
            stems = [s for s in stems if (hash_fraction(s) < 0.1) == (split == "val")]
            report.notes.append("split by stem hash with val_fraction 0.1")
        else:
            raise DataError(f"{list_path}: split list not found")
        report.split = split
    else:
        report.split = "all"
    return [_Item(s, *scan.pairs[s]) for s in stems]


def _check_item(item: _Item, fmt: str, report: CheckReport) -> None:
    """Check one item; append its problems and count its labels."""
    before = len(report.problems)

    def problem(path: Path | None, msg: str) -> None:
        report.problems.append((str(path), msg))

    image = mask = None
    unknown_px = 0  # pixels of colours in no class (read as 255)
    if item.image is not None:
        if not item.image.is_file():
            problem(item.image, "image file not found (listed but missing)")
        else:
            try:
                image = read_image(item.image)
            except DataError as exc:
                problem(item.image, strip_path(str(exc), item.image))
    if item.mask is not None:
        if not item.mask.is_file():
            problem(item.mask, "mask file not found (listed but missing)")
        else:
            try:
                if fmt == "sbd":
                    mask = read_sbd_class_mask(item.mask)
                elif fmt == "camvid":
                    mask = read_camvid_mask(item.mask)
                elif report.color_map is not None:
                    mask, unknown = read_color_mask(item.mask, report.color_map)
                    if unknown:
                        unknown_px = _note_unknown(item.mask, unknown, report, problem)
                else:
                    mask = read_mask(item.mask)
            except DataError as exc:
                problem(item.mask, strip_path(str(exc), item.mask))
    if mask is not None:
        counts = np.bincount(mask.ravel(), minlength=256)
        counts[IGNORE_INDEX] -= unknown_px
        report.pixels += counts
        report.images += counts > 0
        present = np.flatnonzero(counts)
        bad = present[(present >= report.num_classes) & (present != IGNORE_INDEX)]
        if len(bad):
            problem(
                item.mask,
                f"labels {bad.tolist()} outside 0..{report.num_classes - 1} and 255 (ignore)",
            )
        if image is not None and image.shape[:2] != mask.shape:
            problem(
                item.mask,
                f"mask is {mask.shape[1]}x{mask.shape[0]} but the image is "
                f"{image.shape[1]}x{image.shape[0]} (width x height)",
            )
    if item.instances is not None:
        _check_instances(item, fmt, mask, problem)
    if len(report.problems) > before:
        report.bad_items += 1


def _note_unknown(
    path: Path, unknown: list[tuple[tuple[int, int, int], int]], report: CheckReport, problem
) -> int:
    """Report the colours of ``path`` that are in no class, add them to the totals and return
    their pixel count."""
    total = add_unknown(report.unknown_colors, unknown)
    report.unknown_images += 1
    source = report.classes_file.name if report.classes_file is not None else "the classes file"
    problem(
        path,
        f"{len(unknown)} colour(s) in no class of {source} ({total:,d} px): "
        f"{list_colours(unknown, UNKNOWN_PER_FILE)}",
    )
    return total


def _check_instances(item: _Item, fmt: str, mask: np.ndarray | None, problem) -> None:
    path = item.instances
    if not path.is_file():
        problem(path, "instance file not found")
        return
    try:
        if fmt == "sbd":
            inst, cats = read_sbd_instances(path)
            k = int(inst.max()) if inst.size else 0
            if k > len(cats):
                problem(path, f"instance id {k} but GTinst.Categories has {len(cats)} entries")
        else:
            inst = read_mask(path)
    except DataError as exc:
        problem(path, strip_path(str(exc), path))
        return
    if mask is not None and inst.shape != mask.shape:
        problem(
            path,
            f"instance map is {inst.shape[1]}x{inst.shape[0]} but the mask is "
            f"{mask.shape[1]}x{mask.shape[0]}",
        )


def check_dataset(
    root: str | Path,
    fmt: str | None = None,
    *,
    split: str | None = None,
    num_classes: int | None = None,
    progress: bool = True,
    classes_file: str | Path | None = None,
) -> CheckReport:
    """Scan every item of a VOC, SBD, CamVid or folder dataset; return a :class:`CheckReport`.

    ``fmt`` None detects the layout. ``split`` None checks every list (VOC/SBD), every split
    (CamVid) or every pair (folder). ``num_classes`` defaults to 21 (VOC/SBD), 11 (CamVid) or
    ``classes.txt`` / the largest label + 1 (folder). ``classes_file`` (folder only) replaces
    ``root/classes.txt``; with class colours, RGB masks are decoded by colour and every colour in
    no class is reported.
    """
    from tqdm import tqdm

    root = Path(root).expanduser()
    if not root.is_dir():
        raise DataError(f"{root}: dataset root not found")
    fmt = fmt or detect_format(root)
    if fmt not in FORMATS:
        raise DataError(f"unknown dataset format {fmt!r}; valid: {', '.join(FORMATS)}")
    if classes_file is not None and fmt != "folder":
        raise DataError(
            f"{classes_file}: a classes file applies to folder datasets only, not {fmt}"
        )
    report = CheckReport(root=root, format=fmt, split=split or "all", num_classes=0, class_names=[])
    names: list[str] | None = list(CAMVID_CLASSES if fmt == "camvid" else VOC_CLASSES)
    if fmt == "folder":
        classes = find_classes(root, classes_file)
        names = None if classes is None else classes.names
        if classes is not None:
            report.classes_file = classes.path
            report.color_map = classes.color_map()
            if classes.has_colors:
                n_void = len(classes.void_colors)
                report.notes.append(
                    f"class colours from {classes.path}: RGB masks decoded by colour"
                    + (f", {n_void} void colour(s) -> 255" if n_void else "")
                )
    if fmt == "folder":
        items = _folder_items(root, split, report)
    elif fmt == "camvid":
        items = _camvid_items(root, split, report)
    else:
        items = _listed_items(fmt, root, split, report)
    if num_classes is None:
        if names is not None:
            num_classes = len(names)
        else:
            num_classes = 0  # inferred below from the labels seen
            report.notes.append("no classes.txt: num_classes inferred as the largest label + 1")
    elif names is not None and len(names) != num_classes and fmt == "folder":
        report.notes.append(
            f"{report.classes_file.name if report.classes_file else 'classes.txt'} lists "
            f"{len(names)} classes; checking against --num-classes {num_classes}"
        )
        names = None
    infer = num_classes == 0
    report.num_classes = num_classes if not infer else 255
    report.items = len(items)
    bar = tqdm(items, desc=f"checking {fmt}", unit="item", file=sys.stderr, disable=not progress or None)
    for item in bar:
        _check_item(item, fmt, report)
    if infer:
        seen = np.flatnonzero(report.pixels[:IGNORE_INDEX])
        report.num_classes = int(seen[-1]) + 1 if len(seen) else 1
    report.class_names = fallback_class_names(names, report.num_classes)[: report.num_classes]
    return report


def format_report(report: CheckReport) -> str:
    """Return the printable report: problems, the class-frequency table and a summary line."""
    lines = [
        f"dataset: {report.format} at {report.root}",
        f"split: {report.split}; {report.items} items; {report.num_classes} classes",
    ]
    lines += [f"note: {n}" for n in report.notes]
    lines.append("")
    if report.problems:
        lines.append(f"problems ({len(report.problems)}):")
        lines += [f"  {path}: {msg}" for path, msg in report.problems]
    else:
        lines.append("problems: none")
    lines.append("")
    unknown_px = sum(px for px, _ in report.unknown_colors.values())
    if report.unknown_colors:
        lines += _format_unknown(report, unknown_px)
    total = int(report.pixels.sum()) + unknown_px
    name_w = max([len("class")] + [len(n) for n in report.class_names] + [len("(no class)")])
    lines.append("class frequency (over readable masks):")
    lines.append(f"  {'id':>3}  {'class':<{name_w}}  {'pixels':>12}  {'%':>6}  {'images':>7}")
    rows = [(c, report.class_names[c]) for c in range(report.num_classes)]
    rows += [
        (c, f"(label {c})") for c in np.flatnonzero(report.pixels) if report.num_classes <= c < 255
    ]
    rows.append((IGNORE_INDEX, "ignore"))
    for c, name in rows:
        px = int(report.pixels[c])
        pct = 100.0 * px / total if total else 0.0
        lines.append(
            f"  {c:>3}  {name:<{name_w}}  {px:>12,d}  {pct:>6.2f}  {int(report.images[c]):>7d}"
        )
    if unknown_px:
        pct = 100.0 * unknown_px / total
        lines.append(
            f"  {'-':>3}  {'(no class)':<{name_w}}  {unknown_px:>12,d}  {pct:>6.2f}  "
            f"{report.unknown_images:>7d}"
        )
    lines.append("")
    status = "OK" if report.ok else "FAILED"
    lines.append(
        f"{status}: {report.items - report.bad_items} of {report.items} items good, "
        f"{len(report.problems)} problem(s)"
    )
    return "\n".join(lines)


def _format_unknown(report: CheckReport, unknown_px: int) -> list[str]:
    """The report's section on colours in no class: totals, then the commonest colours."""
    source = report.classes_file or "the classes file"
    items = most_pixels_first(report.unknown_colors)
    lines = [
        f"colours in no class of {source} ({len(items)} colour(s), {unknown_px:,d} px in "
        f"{report.unknown_images} mask(s); add each as a class or as `void R G B`):",
        f"  {'colour':<25}  {'pixels':>12}  {'masks':>7}",
    ]
    for packed, (px, masks) in items[:UNKNOWN_IN_SUMMARY]:
        lines.append(f"  {format_color(unpack(packed)):<25}  {px:>12,d}  {masks:>7d}")
    if len(items) > UNKNOWN_IN_SUMMARY:
        rest = items[UNKNOWN_IN_SUMMARY:]
        lines.append(
            f"  ... {len(rest)} more colour(s), {sum(px for _, (px, _) in rest):,d} px"
        )
    lines.append("")
    return lines
