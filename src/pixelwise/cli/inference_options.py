"""The inference flags ``predict`` and ``compare`` share (device and engine, tiling and TTA,
DeconvNet's proposals, EDeconvNet's mode, the dense CRF), their early checks, and the option
objects built from them once per run: :class:`DenseOptions`, :class:`ProposalOptions`,
:class:`PostOptions` (:mod:`pixelwise.inference.options`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from pixelwise.cli.options import add_box_rule_options, apply_as_released
from pixelwise.errors import PixelwiseError
from pixelwise.inference.boxes import ENLARGE, read_box_file
from pixelwise.inference.crf import CRF_PRESETS, DEFAULT_CRF_PRESET, crf_available
from pixelwise.inference.options import DenseOptions, PostOptions, ProposalOptions
from pixelwise.inference.proposals import EDGE_MODEL_HINT
from pixelwise.inference.sliding import WINDOWS
from pixelwise.inference.tta import parse_scales
from pixelwise.models.base import Family, ModelInterface
from pixelwise.models.ensemble import ENSEMBLE_MODES
from pixelwise.optimize import ENGINES
from pixelwise.runtime import PRECISIONS

PROPOSAL_CHOICES = ("none", "selective-search", "edge-boxes", "sliding", "file", "gt")


def add_inference_args(p: argparse.ArgumentParser) -> None:
    """Add the inference options (device, tiling, TTA, proposals, aggregation, CRF) to ``p``."""
    _add_device_args(p.add_argument_group("device"))
    _add_dense_args(p.add_argument_group("dense inference"))
    _add_proposal_args(p.add_argument_group("DeconvNet proposals"))


def _add_device_args(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda[:N]")
    g.add_argument("--precision", choices=PRECISIONS, default="fp32", help="forward-pass precision")
    g.add_argument("--engine", choices=ENGINES, default="auto",
                   help="inference engine (pixelwise.optimize): auto = the fastest measured for the model "
                        "(benchmarks/README.md); plain = the model as built; onnxruntime exports and runs "
                        "it in ONNX Runtime. A .onnx file given as --checkpoint always runs in ONNX Runtime")


def _add_dense_args(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--tile", type=int, default=None, metavar="PX",
                   help="sliding-window tiles of PX x PX pixels (default: whole image at once)")
    g.add_argument("--overlap", type=float, default=0.33, help="fraction of a tile shared with its neighbour (0.33)")
    g.add_argument("--window", choices=WINDOWS, default="linear",
                   help="tile blending weights: linear ramp over the overlap (default) or uniform average")
    g.add_argument("--tile-context", type=int, default=0, metavar="PX",
                   help="extra image pixels fed around each tile and discarded (>= 224 makes FCN tiling exact)")
    g.add_argument("--tta", choices=("none", "flip"), default="none", help="flip: also run mirrored, average")
    g.add_argument("--scales", default=None, metavar="S,S,...", help="multi-scale TTA, e.g. 0.75,1,1.25")


def _add_proposal_args(g: argparse._ArgumentGroup) -> None:
    """DeconvNet's proposal flags, EDeconvNet's ``--mode`` and the dense CRF (one help group)."""
    g.add_argument("--proposals", choices=PROPOSAL_CHOICES, default=None,
                   help="box source for DeconvNet/EDeconvNet (default selective-search; none = one "
                        "whole-image pass); ignored for FCN")
    g.add_argument("--boxes", default=None, metavar="FILE", help="JSON/CSV box file (implies --proposals file)")
    g.add_argument("--edge-model", default=None, metavar="PATH",
                   help="OpenCV structured-edge model model.yml.gz, needed by --proposals edge-boxes")
    add_box_rule_options(g)
    g.add_argument("--enlarge", type=float, default=ENLARGE, help=f"scale each box side around its centre ({ENLARGE})")
    g.add_argument("--square", action="store_true", help="extend boxes to squares before enlarging")
    g.add_argument("--proposal-size", type=int, default=None, metavar="PX",
                   help="crop side fed to DeconvNet (default: the model's input size, 224 for the paper's)")
    g.add_argument("--batch", type=int, default=8, help="proposal crops per forward pass (8)")
    g.add_argument("--mode", choices=ENSEMBLE_MODES, default=None,
                   help="EDeconvNet combination: mean (the paper) or product (the release); default: the "
                        "checkpoint's")
    g.add_argument("--crf", action="store_true", help="dense CRF post-processing (needs pixelwise[crf])")
    g.add_argument("--crf-preset", choices=tuple(CRF_PRESETS), default=DEFAULT_CRF_PRESET,
                   help="how --crf drives pydensecrf: release (the authors' MATLAB wrapper: no kernel "
                        "normalisation, uncapped -log p) or pydensecrf (its defaults: symmetric "
                        f"normalisation, -log p capped at 18.4); default {DEFAULT_CRF_PRESET}")


def check_inference_args(args: argparse.Namespace) -> None:
    """Fail early (before any image) on options that would fail for every image; sets
    ``args.box_table`` (``--boxes``) and ``args.scale_list`` (``--scales``)."""
    apply_as_released(args)
    if args.boxes is not None:
        if args.proposals not in (None, "file"):
            raise PixelwiseError(f"--boxes gives the proposals; drop --proposals {args.proposals}")
        args.proposals = "file"
        args.box_table = read_box_file(args.boxes)
    elif args.proposals == "file":
        raise PixelwiseError("--proposals file needs --boxes FILE (a .json or .csv box file)")
    if args.proposals == "edge-boxes":
        if args.edge_model is None or not Path(args.edge_model).is_file():
            where = "--edge-model is missing" if args.edge_model is None else f"{args.edge_model}: not found"
            raise PixelwiseError(f"--proposals edge-boxes: {where}; {EDGE_MODEL_HINT}")
    if args.crf and not crf_available():
        raise PixelwiseError("--crf needs the optional dense CRF extra: pip install 'pixelwise[crf]' (pydensecrf2)")
    args.scale_list = parse_scales(args.scales)
    for name in ("top_k", "batch", "proposal_size"):
        if getattr(args, name) is not None and getattr(args, name) < (0 if name == "top_k" else 1):
            raise PixelwiseError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")


def dense_options_from(args: argparse.Namespace) -> DenseOptions:
    """Return the :class:`DenseOptions` of the flags (after :func:`check_inference_args`)."""
    return DenseOptions(
        tile=args.tile, overlap=args.overlap, window=args.window, context=args.tile_context,
        tta=None if args.tta == "none" else args.tta, scales=args.scale_list, precision=args.precision,
    )


def proposal_options_from(args: argparse.Namespace, model: ModelInterface) -> ProposalOptions:
    """Return the :class:`ProposalOptions` of the flags for ``model``: no proposals for an FCN,
    selective search for a DeconvNet unless ``--proposals`` says otherwise. What depends on the
    image (its box-file entry, its ground truth) is added by :meth:`ProposalOptions.for_image`."""
    method = args.proposals
    if model.family in (Family.FCN, Family.GENERIC) or method == "none":
        method = None  # proposals are DeconvNet's; FCN always runs dense
    elif method is None:
        method = "selective-search"
    options: dict = {}
    if method == "edge-boxes":
        options = {"model_path": args.edge_model}
    elif method == "file":
        options = {"table": args.box_table, "path": args.boxes}
    return ProposalOptions(
        method=method, method_options=options, top_k=args.top_k, min_box=args.min_box,
        min_box_frac=args.min_box_frac, enlarge=args.enlarge, square=args.square, size=args.proposal_size,
        batch=args.batch, aggregate=args.aggregate, uncovered=args.uncovered, pad=args.pad,
    )


def post_options_from(args: argparse.Namespace) -> PostOptions:
    """Return the :class:`PostOptions` of the flags: EDeconvNet's ``--mode``, ``--crf``, ``--crf-preset``."""
    return PostOptions(ensemble_mode=args.mode, crf=args.crf, crf_preset=args.crf_preset)
