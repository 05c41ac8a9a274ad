"""``pixelwise reproduce``: train every model of both papers and print their tables."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from pixelwise.cli.options import add_dataset_options
    from pixelwise.reproduce.config import ReproduceConfig

    d = ReproduceConfig()
    p = sub.add_parser("reproduce", help="train FCN-32s/16s/8s/at-once and DeconvNet, evaluate all, write the papers' tables")
    add_dataset_options(p, dataset_default=d.dataset, dataset_help="synthetic (default), voc, sbd, sbd_voc_train, folder")
    p.add_argument("--train-split", default=d.train_split)
    p.add_argument("--val-split", default=d.val_split)
    p.add_argument("--val-limit", type=int, default=d.val_limit, help="evaluate the first N images (0 = all)")
    p.add_argument("--out", default=d.out)
    p.add_argument("--seeds", default=None,
                   help=f"train every model once per seed; claims are checked on each [{','.join(map(str, d.seeds))}; "
                   "--quick: 0]")
    p.add_argument("--device", default=d.device)
    p.add_argument("--backbone-weights", default=None,
                   help="ImageNet VGG16 weights (torchvision .pth or Caffe) every model starts from; default on "
                   "synthetic data: `pixelwise pretrain` on the world's object crops (cached)")
    p.add_argument("--steps-scale", type=float, default=1.0,
                   help="multiply every training step count (pretraining included) by this")
    p.add_argument("--width", type=float, default=d.width)
    p.add_argument("--pad100", action="store_true", help="FCN with the release's pad-100 geometry (slower)")
    p.add_argument("--proposals", default=d.proposals, help="selective-search (default), sliding, gt, edge-boxes")
    p.add_argument("--top-k", type=int, default=d.top_k)
    p.add_argument("--deep-supervision", type=float, default=d.deep_supervision,
                   help="DeconvNet auxiliary-loss weight (0 = the paper's training) [%(default)s]")
    p.add_argument("--no-crf", action="store_true", help="skip the dense-CRF rows")
    p.add_argument("--quick", action="store_true", help="a few steps on tiny images (checks the pipeline, seconds)")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def parse_seeds(text: str) -> list[int]:
    """Return the seeds of ``--seeds 0,1``; a bad list is a one-line error."""
    from pixelwise.errors import PixelwiseError

    try:
        seeds = [int(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        raise PixelwiseError(f"--seeds must be integers separated by commas, got {text!r}") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise PixelwiseError(f"--seeds needs one or more distinct seeds, got {text!r}")
    return seeds


def run(args: argparse.Namespace) -> int:
    from pixelwise.cli.options import dataset_options
    from pixelwise.fileio import ensure_writable_dir
    from pixelwise.reproduce.config import ReproduceConfig
    from pixelwise.reproduce.run import reproduce

    make = ReproduceConfig.quick if args.quick else ReproduceConfig
    cfg = make()
    cfg.dataset, cfg.data_root = args.dataset, args.data_root
    cfg.data_options = {**cfg.data_options, **dataset_options(args)}
    cfg.train_split, cfg.val_split = args.train_split, args.val_split
    if not args.quick:
        cfg.val_limit = args.val_limit or None
    cfg.out, cfg.device = args.out, args.device
    if args.seeds is not None:
        cfg.seeds = parse_seeds(args.seeds)
    cfg.backbone_weights = args.backbone_weights
    if not args.quick:
        cfg.width, cfg.top_k, cfg.deep_supervision = args.width, args.top_k, args.deep_supervision
    cfg.pad100 = args.pad100 or cfg.pad100
    cfg.proposals, cfg.crf = args.proposals, not args.no_crf
    cfg.progress = not args.no_progress and not args.quick
    if args.steps_scale != 1.0:
        for name in ("pretrain_steps", "steps_32s", "steps_16s", "steps_8s", "steps_atonce", "steps_objects",
                     "steps_proposals"):
            setattr(cfg, name, max(1, round(getattr(cfg, name) * args.steps_scale)))
    ensure_writable_dir(cfg.out)  # a bad --out fails before hours of training
    reproduce(cfg, log=lambda m: print(f"pixelwise reproduce: {m}", file=sys.stderr))
    print((__import__("pathlib").Path(cfg.out) / "report.md").read_text())
    return 0
