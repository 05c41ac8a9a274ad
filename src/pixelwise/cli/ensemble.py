"""``pixelwise ensemble``: build an EDeconvNet checkpoint from trained FCN-8s and DeconvNet ones.

The result is an ordinary checkpoint (model ``edeconvnet``), so ``eval``, ``predict`` and
``export`` take it like any other model.
"""

from __future__ import annotations

import argparse

from pixelwise.checkpoint import load_checkpoint, make_checkpoint, model_from_checkpoint, save_checkpoint
from pixelwise.models.assemble import build_edeconvnet
from pixelwise.models.ensemble import ENSEMBLE_MODES
from pixelwise.models.flops import count_parameters


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "ensemble",
        help="combine FCN-8s and DeconvNet checkpoints into an EDeconvNet checkpoint",
        description="Build an EDeconvNet checkpoint from a trained FCN-8s and a trained DeconvNet.",
    )
    p.add_argument("--fcn", required=True, metavar="CKPT", help="FCN-8s checkpoint (fcn8s or fcn8s_atonce)")
    p.add_argument("--deconvnet", required=True, metavar="CKPT", help="DeconvNet checkpoint")
    p.add_argument(
        "--mode", choices=ENSEMBLE_MODES, default="mean",
        help="mean: average the probabilities (paper); product: DeconvNet x max(FCN, 0) scores (release)",
    )
    p.add_argument("-o", "--output", required=True, metavar="CKPT", help="where to write the EDeconvNet checkpoint")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pixelwise.fileio import ensure_writable_file

    ensure_writable_file(args.output)  # a bad -o fails before two checkpoints are read
    fcn_ckpt = load_checkpoint(args.fcn)
    dec_ckpt = load_checkpoint(args.deconvnet)
    fcn = model_from_checkpoint(fcn_ckpt, source=args.fcn)
    dec = model_from_checkpoint(dec_ckpt, source=args.deconvnet)
    model = build_edeconvnet(fcn, dec, mode=args.mode, fcn_source=args.fcn, deconvnet_source=args.deconvnet)
    ckpt = make_checkpoint(
        model,
        input_convention=model.input_convention,
        class_names=model.class_names,
        config={"ensemble": {"fcn": str(args.fcn), "deconvnet": str(args.deconvnet), "mode": args.mode}},
        metrics=None,
    )
    path = save_checkpoint(args.output, ckpt)
    print(
        f"wrote {path}: EDeconvNet = {fcn.pixelwise_spec['name']} + deconvnet, mode {args.mode}, "
        f"{model.num_classes} classes, {count_parameters(model) / 1e6:.1f}M parameters"
    )
    return 0
