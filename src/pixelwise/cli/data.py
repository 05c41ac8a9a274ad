"""``pixelwise data check ROOT``: report every bad file of a dataset and its class frequencies."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    """Add the ``data`` subcommand (with its ``check`` action) to the top-level parser."""
    parser = subparsers.add_parser(
        "data",
        help="inspect datasets (data check)",
        description="Dataset tools.",
    )
    sub = parser.add_subparsers(dest="data_command", metavar="ACTION")
    check = sub.add_parser(
        "check",
        help="scan a VOC, SBD or folder dataset and list every bad file",
        description=(
            "Scan every item of a dataset: unreadable or truncated files, image/mask size "
            "mismatches, labels outside 0..C-1 and 255, missing pairs and files missing from the "
            "split lists. Prints every problem, then pixels and images per class. Exits 1 when "
            "anything is bad."
        ),
    )
    check.add_argument("root", help="dataset root (VOCdevkit/VOC2012, SBD dataset/, or a folder)")
    check.add_argument(
        "--format",
        choices=("voc", "sbd", "folder"),
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
    check.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    check.set_defaults(func=run)
    parser.set_defaults(func=_usage(parser))


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
    )
    print(format_report(report))
    return 0 if report.ok else 1
