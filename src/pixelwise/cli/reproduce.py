"""``pixelwise reproduce``: train every model of both papers and print their tables."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from pixelwise.reproduce.config import ReproduceConfig

    d = ReproduceConfig()
    p = sub.add_parser("reproduce", help="train FCN-32s/16s/8s/at-once and DeconvNet, evaluate all, write the papers' tables")
    p.add_argument("--dataset", default=d.dataset, help="synthetic (default), voc, sbd, sbd_voc_train, folder")
    p.add_argument("--root", default=None, help="dataset root (not needed for synthetic)")
    p.add_argument("--data", action="append", default=[], metavar="KEY=VALUE",
                   help="dataset option, e.g. sbd_root=... or size=96 (repeatable)")
    p.add_argument("--train-split", default=d.train_split)
    p.add_argument("--val-split", default=d.val_split)
    p.add_argument("--val-limit", type=int, default=d.val_limit, help="evaluate the first N images (0 = all)")
    p.add_argument("--out", default=d.out)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--device", default=d.device)
    p.add_argument("--steps-scale", type=float, default=1.0, help="multiply every training step count by this")
    p.add_argument("--fcn-width", type=float, default=d.fcn_width)
    p.add_argument("--deconv-width", type=float, default=d.deconv_width)
    p.add_argument("--pad100", action="store_true", help="FCN with the release's pad-100 geometry (slower)")
    p.add_argument("--proposals", default=d.proposals, help="selective-search (default), sliding, gt, edge-boxes")
    p.add_argument("--top-k", type=int, default=d.top_k)
    p.add_argument("--no-crf", action="store_true", help="skip the dense-CRF rows")
    p.add_argument("--quick", action="store_true", help="a few steps on tiny images (checks the pipeline, seconds)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pixelwise.cli.options import parse_key_values
    from pixelwise.reproduce.config import ReproduceConfig
    from pixelwise.reproduce.run import reproduce

    make = ReproduceConfig.quick if args.quick else ReproduceConfig
    cfg = make()
    cfg.dataset, cfg.data_root = args.dataset, args.root
    cfg.data_options = {**cfg.data_options, **parse_key_values(args.data)}
    cfg.train_split, cfg.val_split = args.train_split, args.val_split
    if not args.quick:
        cfg.val_limit = args.val_limit or None
    cfg.out, cfg.seed, cfg.device = args.out, args.seed, args.device
    if not args.quick:
        cfg.fcn_width, cfg.deconv_width = args.fcn_width, args.deconv_width
    cfg.pad100 = args.pad100 or cfg.pad100
    cfg.proposals, cfg.crf = args.proposals, not args.no_crf
    if not args.quick:
        cfg.top_k = args.top_k
    cfg.progress = not args.no_progress and not args.quick
    if args.steps_scale != 1.0:
        for name in ("steps_32s", "steps_16s", "steps_8s", "steps_atonce", "steps_objects", "steps_proposals"):
            setattr(cfg, name, max(1, round(getattr(cfg, name) * args.steps_scale)))
    reproduce(cfg, log=lambda m: print(f"pixelwise reproduce: {m}", file=sys.stderr))
    print((__import__("pathlib").Path(cfg.out) / "report.md").read_text())
    return 0
