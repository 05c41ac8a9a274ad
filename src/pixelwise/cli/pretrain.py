"""``pixelwise pretrain``: train VGG16 as an object classifier on the built-in world (its ImageNet)."""

from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    from pixelwise.data.synthetic import WORLDS
    from pixelwise.pretrain import PretrainConfig

    d = PretrainConfig()
    p = sub.add_parser(
        "pretrain",
        help="train VGG16(-BN) as an object classifier on crops of the built-in world (its ImageNet)",
        description="Trains VGG16 (with batch norm unless --no-batch-norm) to classify object crops of the built-in "
        "synthetic world and saves it as a torchvision VGG16 state dict for `pixelwise train --backbone-weights`: FCN "
        "takes it by the paper's surgery (fc6/fc7 from the classifier), DeconvNet's encoder starts from it. The result "
        "is cached per settings (PIXELWISE_CACHE or the user cache folder); a second call with the same settings "
        "returns at once. Prints the weights' path.",
    )
    p.add_argument("--out", default=None, help="also copy the weights and pretrain.json into this folder")
    p.add_argument("--classes", type=int, default=d.num_classes,
                   help=f"classes of the segmentation task, background included (the classifier has one less) "
                   f"[{d.num_classes}]")
    p.add_argument("--world", default=d.world, choices=WORLDS,
                   help=f"scenes (VOC-like scenes), objects (shared cues, harder) or shapes (shape only) [{d.world}]")
    p.add_argument("--image-size", type=int, default=d.image_size, help=f"scene side in pixels [{d.image_size}]")
    p.add_argument("--crop-size", type=int, default=d.crop_size,
                   help=f"classifier input side, a multiple of 32 (VGG: 224); fc6's kernel is crop/32 [{d.crop_size}]")
    p.add_argument("--width", type=float, default=d.width, help=f"channel width multiplier [{d.width}]")
    p.add_argument("--min-channels", type=int, default=d.min_channels, help=f"width floor [{d.min_channels}]")
    p.add_argument("--no-batch-norm", action="store_true", help="plain VGG16 (default: VGG16-BN)")
    p.add_argument("--scenes", type=int, default=d.scenes, help=f"training scenes [{d.scenes}]")
    p.add_argument("--steps", type=int, default=d.steps, help=f"optimiser steps [{d.steps}]")
    p.add_argument("--batch-size", type=int, default=d.batch_size, help=f"crops per step [{d.batch_size}]")
    p.add_argument("--lr", type=float, default=d.lr, help=f"Adam learning rate [{d.lr:g}]")
    p.add_argument("--seed", type=int, default=d.seed, help="initialisation and crop order")
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all)")
    p.add_argument("--force", action="store_true", help="train again even if the cache has this result")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from pixelwise.errors import PixelwiseError
    from pixelwise.fileio import ensure_writable_dir
    from pixelwise.pretrain import PretrainConfig, cached_pretrain, pretrain
    from pixelwise.pretrain.run import cache_folder
    from pixelwise.train.checkpointing import copy_atomic

    if args.crop_size % 32 or args.crop_size < 32:
        raise PixelwiseError(f"--crop-size must be a multiple of 32 (VGG: 224), got {args.crop_size}")
    cfg = PretrainConfig(world=args.world, image_size=args.image_size, num_classes=args.classes, scenes=args.scenes,
                         crop_size=args.crop_size, width=args.width, min_channels=args.min_channels,
                         batch_norm=not args.no_batch_norm, steps=args.steps, batch_size=args.batch_size,
                         lr=args.lr, seed=args.seed, threads=args.threads, progress=not args.no_progress)

    def log(message: str) -> None:
        print(f"pixelwise pretrain: {message}", file=sys.stderr)

    if args.out:
        ensure_writable_dir(args.out)  # a bad --out fails before the training
    result = pretrain(cfg, cache_folder(cfg)) if args.force else cached_pretrain(cfg, log=log)
    info = result.info
    log(f"held-out accuracy {100 * result.accuracy:.1f} % (training crops {100 * result.train_accuracy:.1f} %, "
        f"majority class {100 * info.get('chance', float('nan')):.1f} %) over {len(info.get('class_names', []))} "
        f"classes; {result.seconds:.0f} s to train")
    weights = result.weights
    if args.out:
        out = Path(args.out)
        for src in (weights, weights.parent / "pretrain.json"):
            copy_atomic(src, out / src.name)
        weights = out / weights.name
    print(weights)
    return 0
