"""``pixelwise weights list`` and ``pixelwise weights download NAME``: the published weights
(ImageNet VGG16, the FCN and DeconvNet releases), downloaded and converted once into the cache."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    """Add ``weights`` (actions ``list`` and ``download``)."""
    from pixelwise.download import MIRROR_ENV, TIMEOUT_S
    from pixelwise.models.pretrained import weights_names

    parser = sub.add_parser("weights", help="list and download published weights (VGG16, FCN and DeconvNet releases)",
                            description="Published weights by name: `weights=NAME` in pixelwise.create_model and "
                            "torch.hub, --backbone-weights NAME in train and reproduce, --model NAME in predict.")
    actions = parser.add_subparsers(dest="weights_command", metavar="ACTION")
    listing = actions.add_parser("list", help="every name with its model, classes, size, hash and cache state")
    listing.add_argument("--json", action="store_true", help="one JSON object per weights entry")
    listing.set_defaults(func=run_list)
    download = actions.add_parser(
        "download", help="download, check and convert weights into the cache",
        description="Download a weights file (resumed after a dropped connection), check it against its published "
        "hash or the SHA-256 recorded at its first download, and convert trained weights into a pixelwise "
        "checkpoint (every layer's shape checked). Nothing happens when it is in the cache already. Offline: "
        f"--from FILE (the file downloaded elsewhere) or {MIRROR_ENV} (a URL or folder holding the files).")
    download.add_argument("name", choices=weights_names(aliases=True), metavar="NAME",
                          help=f"one of {', '.join(weights_names(aliases=True))}")
    download.add_argument("--from", dest="from_file", default=None, metavar="FILE",
                          help="use this file, downloaded by hand, instead of downloading (checked the same way)")
    download.add_argument("--url", default=None, help="download from this URL instead (same hash)")
    download.add_argument("--keep-source", action="store_true",
                          help="keep the release file after converting it (deleted by default: the checkpoint holds "
                          "the same weights)")
    download.add_argument("--force", action="store_true", help="download and convert again")
    download.add_argument("--timeout", type=float, default=TIMEOUT_S, metavar="S",
                          help=f"seconds to wait for the server before giving up [{TIMEOUT_S:g}]")
    download.add_argument("--no-progress", action="store_true", help="no progress bar (shown only on a terminal)")
    download.set_defaults(func=run_download)
    parser.set_defaults(func=lambda args: parser.print_help() or 2)


def run_list(args: argparse.Namespace) -> int:
    """Print the weights table (or JSON lines)."""
    from pixelwise.weights.files import weights_dir
    from pixelwise.weights.zoo import weights_rows

    rows = weights_rows()
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print(f"{'name':<18}{'model':<16}{'classes':<14}{'size':<15}{'cache':<11}hash")
    for r in rows:
        print(f"{r['name']:<18}{r['model']:<16}{r['classes']:<14}{r['size']:<15}{r['state']:<11}{r['hash']}")
        also = f"also called {', '.join(r['aliases'])}; " if r["aliases"] else ""
        print(f"{'':<18}{also}{r['source']}; {r['url']}")
    print(f"(cache: {weights_dir()}; `pixelwise weights download NAME` fetches one)")
    return 0


def run_download(args: argparse.Namespace) -> int:
    """Download (and convert) one weights entry; print where it is."""
    from pixelwise.models.pretrained import get_weights
    from pixelwise.weights.files import weights_file
    from pixelwise.weights.zoo import pretrained_checkpoint

    entry = get_weights(args.name)
    options = dict(from_file=args.from_file, url=args.url, timeout=args.timeout,
                   progress=False if args.no_progress else None)
    if entry.is_backbone:
        path = weights_file(entry, **options)
        print(f"{entry.name}: {path} (checked); train with --backbone-weights {entry.name}")
        return 0
    path = pretrained_checkpoint(entry, keep_source=args.keep_source, force=args.force, **options)
    print(f"{entry.name}: {path} ({entry.model}, {entry.num_classes} classes); use it: pixelwise predict "
          f"--model {entry.name} IMAGE -o OUT, pixelwise.create_model({entry.model!r}, weights={entry.name!r}), "
          f"or --init-from {path}")
    return 0
