"""Option parsing shared by several subcommands."""

from __future__ import annotations

import argparse

import yaml

from pixelwise.convention import PAD_COLOURS
from pixelwise.data import DATASETS
from pixelwise.errors import PixelwiseError
from pixelwise.inference.boxes import MIN_BOX, TOP_K

# the names of pixelwise.inference.options.UNCOVERED and pixelwise.inference.aggregate.AGGREGATIONS
# (tested), spelled out so that building the parser does not import torch
UNCOVERED_CHOICES = ("whole", "background", "fcn", "zero")
AGGREGATION_CHOICES = ("max", "max0", "sum", "mean")
PAD_CHOICES = PAD_COLOURS


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


DATASETS_HELP = ", ".join(DATASETS)


def add_dataset_options(group: argparse._ActionsContainer, *, dataset_default: str | None = None,
                        dataset_help: str = DATASETS_HELP, with_dataset: bool = True) -> None:
    """Add the dataset flags every command spells the same way: ``--dataset NAME``,
    ``--data-root DIR`` (alias ``--root``) and ``--data KEY=VALUE`` (repeatable; read them with
    :func:`dataset_options`). ``with_dataset=False`` leaves ``--dataset`` out (``train`` makes it
    from its config)."""
    if with_dataset:
        group.add_argument("--dataset", default=dataset_default, metavar="NAME", help=dataset_help)
        group.add_argument("--data-root", "--root", dest="data_root", default=None, metavar="DIR",
                           help="dataset root folder (not needed for synthetic)")
    group.add_argument("--data", action="append", default=[], metavar="KEY=VALUE",
                       help="dataset option (repeatable), e.g. --data size=64 --data sbd_root=/data/sbd")


def dataset_options(args: argparse.Namespace) -> dict:
    """Return the ``--data KEY=VALUE`` options of ``args`` as a dict (keys with ``-`` read as ``_``)."""
    return {k.replace("-", "_"): v for k, v in parse_key_values(args.data).items()}


def add_box_rule_options(group: argparse._ActionsContainer) -> None:
    """Add DeconvNet's proposal rules shared by ``predict`` and ``eval``: ``--top-k``, ``--min-box``,
    ``--min-box-frac``, ``--uncovered``, ``--aggregate`` and ``--pad``."""
    group.add_argument("--top-k", type=int, default=TOP_K, help=f"keep the best K boxes ({TOP_K})")
    group.add_argument("--min-box", type=float, default=MIN_BOX, metavar="PX",
                       help=f"skip boxes with a side under PX pixels after enlarging (the paper's {MIN_BOX})")
    group.add_argument("--min-box-frac", type=float, default=None, metavar="F",
                       help="also scale the minimum with the image: min(--min-box, F x shorter side); for small "
                            "images (the demo and reproduce use 0.15 at 96 px, where 112 px drops every box)")
    group.add_argument("--uncovered", choices=UNCOVERED_CHOICES, default="whole",
                       help="pixels no box covers: whole-image DeconvNet pass (default), background, fcn "
                            "(EDeconvNet), or zero (the release: score 0 for every class, the CRF decides)")
    group.add_argument("--aggregate", choices=AGGREGATION_CHOICES, default="max",
                       help="combine overlapping boxes: max (the paper), max0 (the release: max started from 0), "
                            "sum, mean")
    group.add_argument("--as-released", action="store_true",
                       help="DeconvNet's released inference: --aggregate max0 --uncovered zero --pad black, and "
                            "--mode product for EDeconvNet (the --crf preset is the release's by default)")
    group.add_argument("--pad", choices=PAD_CHOICES, default=None,
                       help="colour of proposal crops outside the image: mean or black (the release); default: "
                            "the checkpoint's own (black for released weights and --recipe deconvnet)")


RELEASED_INFERENCE = {"aggregate": "max0", "uncovered": "zero", "pad": "black", "mode": "product"}
"""What ``--as-released`` sets: the DeconvNet release's ``generate_EDeconvNet_CRF_results.m``."""


def apply_as_released(args: argparse.Namespace, *, ensemble_mode: bool = True) -> None:
    """With ``--as-released``, set the release's inference options on ``args``; ``ensemble_mode``:
    also ``args.mode`` (the EDeconvNet combination; ``eval``'s ``--mode`` means something else)."""
    if getattr(args, "as_released", False):
        for key, value in RELEASED_INFERENCE.items():
            if key != "mode" or ensemble_mode:
                setattr(args, key, value)
