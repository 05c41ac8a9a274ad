"""The ``pixelwise`` command line: one subcommand per module in this package.

Each subcommand module defines ``register(subparsers)``, which adds its parser and sets
``func`` (called with the parsed args, returning an exit code). Modules are imported lazily
by name so that a missing optional extra only affects its own subcommand.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# subcommand module names, in the order `pixelwise --help` lists them
SUBCOMMAND_MODULES = [
    "models",
    "data",
    "predict",
    "compare",
    "serve",
    "ensemble",
    "pretrain",
    "train",
    "eval",
    "demo",
    "convert",
    "weights",
    "export",
    "bench",
    "reproduce",
]


def build_parser() -> argparse.ArgumentParser:
    """Return the top-level parser with every subcommand registered."""
    from pixelwise import __version__

    parser = argparse.ArgumentParser(
        prog="pixelwise",
        description="Pixel-wise semantic segmentation: FCN-32s/16s/8s, DeconvNet, EDeconvNet.",
    )
    parser.add_argument("--version", action="version", version=f"pixelwise {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"pixelwise.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``pixelwise`` console script; returns the exit code."""
    from pixelwise.errors import PixelwiseError

    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        code = args.func(args)
    except PixelwiseError as exc:
        print(f"pixelwise {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"pixelwise {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # output piped into e.g. `head` that closed early: not an error of ours
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except OSError as exc:
        # a file error no command turned into a PixelwiseError: one line naming the file, no traceback
        where = f"{exc.filename}: " if exc.filename is not None else ""
        print(f"pixelwise {args.command}: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 1
    return int(code or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
