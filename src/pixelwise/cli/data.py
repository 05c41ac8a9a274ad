"""``pixelwise data check ROOT``: report every bad file of a dataset and its class frequencies.
``pixelwise data convert ROOT --out DIR``: write a folder dataset's masks as index PNGs.
``pixelwise data download NAME --to DIR``: download, check and unpack VOC 2012, SBD or CamVid."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add the ``data`` subcommand (actions ``check`` and ``convert``) to the top-level parser."""
    parser = subparsers.add_parser(
        "data",
        help="download, inspect and convert datasets (data download, check, convert)",
        description="Dataset tools.",
    )
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    _register_check(sub)
    _register_convert(sub)
    _register_download(sub)
    parser.set_defaults(func=_usage(parser))


def _register_check(sub: argparse._SubParsersAction) -> None:
    """Add ``data check`` and its options."""
    check = sub.add_parser(
        "check",
        help="scan a VOC, SBD, CamVid or folder dataset and list every bad file",
        description=(
            "Scan every item of a dataset: unreadable or truncated files, image/mask size "
            "mismatches, labels outside 0..C-1 and 255, missing pairs and files missing from the "
            "split lists. Prints every problem, then pixels and images per class. Exits 1 when "
            "anything is bad."
        ),
    )
    check.add_argument(
        "root", help="dataset root (VOCdevkit/VOC2012, SBD dataset/, CamVid/, or a folder)"
    )
    check.add_argument(
        "--format",
        choices=("voc", "sbd", "folder", "camvid"),
        default=None,
        help="dataset layout (default: detected from the directories)",
    )
    check.add_argument(
        "--split",
        default=None,
        help="list to check (VOC: ImageSets/Segmentation/<split>.txt, SBD: <split>.txt, "
        "folder: splits/<split>.txt or train/val); default: every list / every pair",
    )
    check.add_argument(
        "--num-classes",
        type=int,
        default=None,
        help="valid labels are 0..N-1 and 255 (default: 21 for VOC/SBD, classes.txt or the "
        "largest label + 1 for a folder)",
    )
    check.add_argument(
        "--classes",
        default=None,
        metavar="FILE",
        help="folder datasets: the classes file to use instead of ROOT/classes.txt (names, or "
        "names with RGB colours: then RGB masks are decoded by colour and every colour in no "
        "class is reported)",
    )
    check.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    check.set_defaults(func=run)


def _register_convert(sub: argparse._SubParsersAction) -> None:
    """Add ``data convert`` and its options."""
    convert = sub.add_parser(
        "convert",
        help="write a folder dataset's masks (e.g. RGB colour masks) as index PNGs",
        description=(
            "Decode every mask of ROOT/masks (RGB colour masks through the class colours of the "
            "classes file, void colours -> 255; palette and grayscale masks as indices) and write "
            "it to OUT/masks/<stem>.png as a palette PNG holding class indices, with the class "
            "colours as its palette. OUT also gets classes.txt, images (a link by default) and "
            "splits, so it is a folder dataset. One line per mask that cannot be converted, then a "
            "summary; exits 1 if any mask was not written."
        ),
    )
    convert.add_argument("root", help="folder dataset root (with images/ and masks/)")
    convert.add_argument("--out", required=True, metavar="DIR", help="the new dataset root")
    convert.add_argument(
        "--classes",
        default=None,
        metavar="FILE",
        help="classes file to use instead of ROOT/classes.txt (e.g. CamVid's label_colors.txt)",
    )
    convert.add_argument(
        "--unknown-colors",
        choices=("error", "ignore"),
        default="error",
        help="a mask colour in no class: error (report the mask, do not write it; default) or "
        "ignore (write those pixels as 255)",
    )
    convert.add_argument(
        "--images",
        choices=("link", "copy", "none"),
        default="link",
        help="OUT/images: a symbolic link to ROOT/images (default), a copy, or nothing",
    )
    convert.add_argument(
        "--mask-suffix",
        default="",
        metavar="SUFFIX",
        help="masks are named <stem>SUFFIX.png (CamVid: _L); the suffix is dropped in OUT",
    )
    convert.add_argument(
        "--overwrite", action="store_true", help="replace masks and classes.txt already in OUT"
    )
    convert.add_argument(
        "--no-progress", action="store_true", help="no progress bar (shown only on a terminal)"
    )
    convert.set_defaults(func=run_convert)


def _register_download(sub: argparse._SubParsersAction) -> None:
    """Add ``data download`` and its options."""
    from pixelwise.data.downloads import download_names, list_downloads
    from pixelwise.download import MIRROR_ENV, TIMEOUT_S

    rows = "; ".join(f"{r['name']}: {r['file']} ({r['size']}) -> DIR/{r['target']} (--dataset {r['dataset']})"
                     for r in list_downloads())
    download = sub.add_parser(
        "download",
        help="download VOC 2012, SBD or CamVid, check it and unpack it where --dataset reads it",
        description=(
            f"Download a dataset archive (resumed after a dropped connection), check its hash, unpack it safely "
            f"and rename it into place; nothing happens when a whole copy is already there. {rows}. Offline: "
            f"pass --from FILE (the archive downloaded elsewhere), or set {MIRROR_ENV} to a URL or folder "
            "holding the archives."
        ),
    )
    download.add_argument("name", choices=download_names(), metavar="NAME",
                          help=f"one of {', '.join(download_names())} (voc = voc2012)")
    download.add_argument("--to", required=True, metavar="DIR", help="the folder to unpack into (the --data-root "
                          "of train, eval and reproduce)")
    download.add_argument("--from", dest="from_file", default=None, metavar="FILE",
                          help="use this archive, downloaded by hand, instead of downloading (checked the same way)")
    download.add_argument("--url", default=None, help="download the archive from this URL instead (same hash)")
    download.add_argument("--keep-archive", action="store_true",
                          help="keep the downloaded archive (DIR/.pixelwise-downloads/) after unpacking")
    download.add_argument("--timeout", type=float, default=TIMEOUT_S, metavar="S",
                          help=f"seconds to wait for the server before giving up [{TIMEOUT_S:g}]")
    download.add_argument("--no-progress", action="store_true", help="no progress bar (shown only on a terminal)")
    download.set_defaults(func=run_download)


def _usage(parser: argparse.ArgumentParser):
    def show(args: argparse.Namespace) -> int:
        parser.print_help()
        return 2

    return show


def run(args: argparse.Namespace) -> int:
    """Run ``data check``; print the report to stdout; return 0 if all is well, 1 otherwise."""
    from pixelwise.data.check import check_dataset, format_report
    from pixelwise.errors import DataError

    if args.num_classes is not None and not 1 <= args.num_classes <= 255:
        raise DataError(f"--num-classes must be 1..255, got {args.num_classes}")
    report = check_dataset(
        args.root,
        args.format,
        split=args.split,
        num_classes=args.num_classes,
        progress=not args.no_progress,
        classes_file=args.classes,
    )
    print(format_report(report))
    return 0 if report.ok else 1


def run_convert(args: argparse.Namespace) -> int:
    """Run ``data convert``; print bad masks as found, then a summary; 0 if every mask was written."""
    from pixelwise.data.convert import convert_folder, format_summary

    report = convert_folder(
        args.root,
        args.out,
        classes_file=args.classes,
        unknown_colors=args.unknown_colors,
        images=args.images,
        mask_suffix=args.mask_suffix,
        overwrite=args.overwrite,
        progress=False if args.no_progress else None,
        echo=True,
    )
    print(format_summary(report))
    return 0 if report.ok else 1


def run_download(args: argparse.Namespace) -> int:
    """Run ``data download``; print where the dataset is and how to use it."""
    from pixelwise.data.downloads import describe, download_dataset, get_download

    spec = get_download(args.name)
    result = download_dataset(spec, args.to, from_file=args.from_file, url=args.url, timeout=args.timeout,
                              progress=False if args.no_progress else None, keep_archive=args.keep_archive)
    print(describe(result))
    print(f"check it: pixelwise data check {result.path} --format {spec.dataset}; use it: --dataset {spec.dataset} "
          f"--data-root {args.to}")
    return 0
