"""``pixelwise reproduce``: train every model of both papers and print their tables."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from pixelwise.cli.options import add_dataset_options
    from pixelwise.data import DATASETS
    from pixelwise.reproduce.config import MODELS, ReproduceConfig

    d = ReproduceConfig()
    p = sub.add_parser("reproduce", help="train FCN-32s/16s/8s/at-once and DeconvNet, evaluate all, write the papers' tables")
    add_dataset_options(p, dataset_default=d.dataset,
                        dataset_help="synthetic (default), camvid (its own settings: docs/camvid.md), "
                        + ", ".join(d for d in DATASETS if d not in ("synthetic", "camvid")))
    p.add_argument("--train-split", default=None, help=f"[{d.train_split}]")
    p.add_argument("--val-split", default=None, help=f"[{d.val_split}]")
    p.add_argument("--eval-split", default=None,
                   help="the split the tables are scored on [the validation split; camvid: test]")
    p.add_argument("--val-limit", type=int, default=None, help=f"evaluate the first N images (0 = all) [{d.val_limit}; "
                   "camvid: all]")
    p.add_argument("--models", default=None,
                   help=f"train and score only these models ({', '.join(MODELS)}; a model brings the stages it "
                   "starts from, ensembles follow their members) [all; camvid: fcn32s,fcn16s,fcn8s,deconvnet]")
    p.add_argument("--out", default=d.out)
    p.add_argument("--seeds", default=None,
                   help=f"train every model once per seed; claims are checked on each [{','.join(map(str, d.seeds))}; "
                   "--quick: 0]")
    p.add_argument("--device", default=d.device)
    p.add_argument("--backbone-weights", default=None,
                   help="ImageNet VGG16 weights every model starts from (torchvision .pth, Caffe .caffemodel, or a "
                   "name downloaded once: imagenet, vgg16-caffe); default on "
                   "synthetic data: `pixelwise pretrain` on the world's object crops (cached)")
    p.add_argument("--steps-scale", type=float, default=1.0,
                   help="multiply every training step count (pretraining included) by this")
    p.add_argument("--width", type=float, default=None, help=f"[{d.width}; camvid: 0.25]")
    p.add_argument("--pad100", action="store_true", help="FCN with the release's pad-100 geometry (slower)")
    p.add_argument("--proposals", default=None,
                   help="selective-search (default), sliding, gt, edge-boxes, none (DeconvNet on the whole image; "
                   "camvid's default)")
    p.add_argument("--top-k", type=int, default=None, help=f"[{d.top_k}]")
    p.add_argument("--deep-supervision", type=float, default=None,
                   help=f"DeconvNet auxiliary-loss weight (0 = the paper's training) [{d.deep_supervision:g}]")
    p.add_argument("--no-crf", action="store_true", help="skip the dense-CRF rows")
    p.add_argument("--download", action="store_true",
                   help="first download the dataset into --data-root unless it is there (voc, sbd, camvid; "
                   "see `pixelwise data download`)")
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


def parse_models(text: str) -> list[str]:
    """Return the models of ``--models fcn8s,deconvnet``; an unknown name is a one-line error."""
    from pixelwise.errors import PixelwiseError
    from pixelwise.reproduce.config import MODELS

    models = [v for v in text.replace(" ", "").split(",") if v]
    bad = [m for m in models if m not in MODELS]
    if bad or not models:
        raise PixelwiseError(f"--models takes {', '.join(MODELS)} (comma-separated), got {text!r}")
    return list(dict.fromkeys(models))


def base_config(args: argparse.Namespace):
    """The settings a run starts from: the quick ones, CamVid's, or the built-in world's."""
    from pixelwise.reproduce.config import ReproduceConfig

    if args.quick:
        return ReproduceConfig.quick_camvid() if args.dataset == "camvid" else ReproduceConfig.quick()
    return ReproduceConfig.camvid() if args.dataset == "camvid" else ReproduceConfig()


def run(args: argparse.Namespace) -> int:
    from pixelwise.cli.options import dataset_options
    from pixelwise.fileio import ensure_writable_dir
    from pixelwise.reproduce.run import reproduce

    cfg = base_config(args)
    cfg.dataset, cfg.data_root = args.dataset, args.data_root
    world = cfg.data_options if args.dataset == "synthetic" else {}  # the built-in world's size, classes, length
    cfg.data_options = {**world, **dataset_options(args)}
    given = {"train_split": args.train_split, "val_split": args.val_split, "eval_split": args.eval_split,
             "proposals": args.proposals}
    if not args.quick:
        given.update(width=args.width, top_k=args.top_k, deep_supervision=args.deep_supervision)
        if args.val_limit is not None:
            cfg.val_limit = args.val_limit or None
    for key, value in given.items():
        if value is not None:
            setattr(cfg, key, value)
    if args.models is not None:
        cfg.models = parse_models(args.models)
    cfg.out, cfg.device = args.out, args.device
    if args.seeds is not None:
        cfg.seeds = parse_seeds(args.seeds)
    cfg.backbone_weights = args.backbone_weights
    cfg.pad100 = args.pad100 or cfg.pad100
    cfg.crf = not args.no_crf
    cfg.progress = not args.no_progress and not args.quick
    if args.steps_scale != 1.0:
        for name in ("pretrain_steps", "steps_32s", "steps_16s", "steps_8s", "steps_atonce", "steps_objects",
                     "steps_proposals", "steps_deconv_whole"):
            setattr(cfg, name, max(1, round(getattr(cfg, name) * args.steps_scale)))
    ensure_writable_dir(cfg.out)  # a bad --out fails before hours of training
    if args.download:
        from pixelwise.data.downloads import ensure_datasets

        ensure_datasets(cfg.dataset, cfg.data_root, cfg.data_options,
                        log=lambda line: print(f"pixelwise reproduce: {line}", file=sys.stderr))
    reproduce(cfg, log=lambda m: print(f"pixelwise reproduce: {m}", file=sys.stderr))
    print((__import__("pathlib").Path(cfg.out) / "report.md").read_text())
    return 0
