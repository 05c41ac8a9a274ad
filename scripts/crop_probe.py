"""Train a model on DeconvNet-style object crops and score it on held-out crops: does it generalise?

    .venv/bin/python scripts/crop_probe.py --model deconvnet --pretrain-steps 2400 --deep-supervision 1
    .venv/bin/python scripts/crop_probe.py --model deconvnet --pretrain-steps 2400          # without
    .venv/bin/python scripts/crop_probe.py --model fcn8s --pretrain-steps 2400
    .venv/bin/python scripts/crop_probe.py --model deconvnet --binary   # object vs background only

Every step cuts ``--batch`` fresh stage-1 object crops (``--input-size`` pixels; one object of a
training scene enlarged 1.2-1.5x, as `pixelwise train --sampling objects` makes them, or stage-2
proposal crops with ``--sampling proposals``) from ``--scenes`` scenes of the built-in world and
trains the model on them (``--optimizer``, poly schedule, ``--deep-supervision`` weight for
DeconvNet); every ``--every`` steps it prints the pixel accuracy and mean IU on ``--val-crops``
crops cut the same way from validation scenes. The model starts from the backbone
``pixelwise pretrain`` makes for these settings (``--pretrain-steps``, cached) or from
``--backbone PATH``, or from scratch with neither. ``--binary`` merges every object class into
one, which separates "finds where the object is" from "recognises what it is". Used in
docs/reproduce.md.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch

from pixelwise.data import build_dataset
from pixelwise.data.transforms import normalize_image
from pixelwise.metrics import ConfusionMatrix
from pixelwise.models.registry import create_model
from pixelwise.train.deconvnet_sampling import ObjectCrop, ProposalCrop
from pixelwise.train.loop import AuxOutputs, StepSettings, train_step
from pixelwise.train.config import TrainConfig
from pixelwise.train.optim import build_optimizer, build_scheduler

CONVENTION = "torchvision_rgb"


def crop_batch(scenes, sampler, rng: np.random.Generator, count: int, binary: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(count, 3, S, S)`` normalised crops of random scenes and ``(count, S, S)`` int64 labels."""
    images, labels = [], []
    for i in rng.integers(0, len(scenes), count):
        crop = sampler(scenes[int(i)], rng)
        images.append(normalize_image(crop["image"], CONVENTION))
        labels.append(torch.from_numpy(crop["mask"].astype(np.int64)))
    y = torch.stack(labels)
    if binary:
        y = torch.where((y > 0) & (y != 255), torch.ones_like(y), y)
    return torch.stack(images), y


def fresh_model(name: str, num_classes: int, width: float, *, min_channels: int | None = None, input_size: int = 96,
                deep_supervision: bool = False, backbone: str | None = None) -> torch.nn.Module:
    """Return the model in training mode, as the ``demo`` recipe builds it (FCNs pad-free without
    dropout, fc6 ``input_size / 32``), its backbone from ``backbone`` weights when given."""
    extra = {} if min_channels is None else {"min_channels": min_channels}
    if name == "deconvnet":
        extra.update(input_size=input_size, deep_supervision=deep_supervision)
    else:
        extra.update(pad100=False, dropout=0.0, fc6_kernel=input_size // 32)
    model = create_model(name, num_classes=num_classes, width=width, **extra)
    if backbone:
        from pixelwise.weights import load_backbone_weights

        load_backbone_weights(model, backbone)
    return model.train()


@torch.no_grad()
def score(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, num_classes: int,
          batch_stats: bool = False) -> dict:
    """Return the metrics of ``model`` on the crops, 16 at a time (:func:`scores_from_matrix` keys).

    ``batch_stats`` scores with batch norm in training mode (statistics of each batch of 16) on a
    copy, so that the model's running statistics stay as they were.
    """
    scored = copy.deepcopy(model).train() if batch_stats else model.eval()
    matrix = ConfusionMatrix(num_classes)
    for i in range(0, len(images), 16):
        matrix.update(scored(images[i : i + 16]).argmax(1), labels[i : i + 16])
    model.train()
    return matrix.compute()


def backbone_weights(args: argparse.Namespace) -> str | None:
    """Return the backbone file: ``--backbone``, or the (cached) ``pixelwise pretrain`` result for
    these settings when ``--pretrain-steps`` is given; None = from scratch."""
    if args.backbone or not args.pretrain_steps:
        return args.backbone
    from pixelwise.pretrain import PretrainConfig, cached_pretrain

    extra = {} if args.min_channels is None else {"min_channels": args.min_channels}
    cfg = PretrainConfig(world=args.world, image_size=args.scene_size, num_classes=args.classes,
                         crop_size=args.input_size, width=args.width, steps=args.pretrain_steps,
                         threads=args.threads, progress=False, **extra)
    result = cached_pretrain(cfg, log=lambda m: print(f"# {m}", flush=True))
    print(f"# backbone held-out object accuracy {100 * result.accuracy:.1f} %", flush=True)
    return str(result.weights)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="deconvnet")
    p.add_argument("--width", type=float, default=0.125)
    p.add_argument("--min-channels", type=int, default=None, help="width floor (default: the models' 16)")
    p.add_argument("--input-size", type=int, default=96, help="crop side (DeconvNet proposal side)")
    p.add_argument("--classes", type=int, default=8)
    p.add_argument("--world", default="objects")
    p.add_argument("--scene-size", type=int, default=96)
    p.add_argument("--scenes", type=int, default=2000, help="training scenes the crops come from")
    p.add_argument("--val-crops", type=int, default=160)
    p.add_argument("--sampling", choices=("objects", "proposals"), default="objects")
    p.add_argument("--backbone", default=None, help="backbone weights (torchvision .pth); overrides --pretrain-steps")
    p.add_argument("--pretrain-steps", type=int, default=0, help="start from `pixelwise pretrain` with this many steps")
    p.add_argument("--deep-supervision", type=float, default=0.0, help="DeconvNet auxiliary-loss weight")
    p.add_argument("--binary", action="store_true", help="object vs background only")
    p.add_argument("--bn-modes", action="store_true",
                   help="also score 64 training crops, and both sets with batch statistics")
    p.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--steps", type=int, default=600)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--every", type=int, default=100)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    backbone = backbone_weights(args)
    data = dict(size=args.scene_size, num_classes=args.classes, world=args.world)
    train_scenes = build_dataset("synthetic", split="train", length=args.scenes, **data)
    val_scenes = build_dataset("synthetic", split="val", length=200, **data)
    sampler = (ObjectCrop if args.sampling == "objects" else ProposalCrop)(args.input_size)
    val_x, val_y = crop_batch(val_scenes, ObjectCrop(args.input_size), np.random.default_rng(args.seed + 1),
                              args.val_crops, args.binary)
    num_classes = 2 if args.binary else args.classes
    torch.manual_seed(args.seed)
    ds = args.deep_supervision > 0 and args.model == "deconvnet"
    model = fresh_model(args.model, num_classes, args.width, min_channels=args.min_channels,
                        input_size=args.input_size, deep_supervision=ds, backbone=backbone)
    # the demo recipe's optimiser and schedule (Adam with a lighter decay), built as `pixelwise train` builds them
    recipe = TrainConfig(optimizer=args.optimizer, lr=args.lr, momentum=0.9,
                         weight_decay=5e-4 if args.optimizer == "sgd" else 1e-4, bias_lr_mult=2.0, bias_decay=False,
                         norm_decay=False, steps=args.steps, lr_policy="poly", poly_power=0.9, warmup_steps=20)
    optimizer = build_optimizer(model, recipe)
    schedule = build_scheduler(optimizer, recipe)
    module = AuxOutputs(model) if ds else model
    valid = val_y != 255
    background = float((val_y[valid] == 0).float().mean())
    print(f"{args.model} width {args.width}, {num_classes} classes, {args.input_size}-px {args.sampling} crops, batch "
          f"{args.batch}, {args.optimizer} lr {args.lr}, deep supervision {args.deep_supervision:g}, backbone "
          f"{backbone or 'none'}; background share of the validation crops {100 * background:.1f} %", flush=True)
    if args.bn_modes:  # the same 64 training crops at every report
        train_x, train_y = crop_batch(train_scenes, ObjectCrop(args.input_size), np.random.default_rng(7), 64,
                                      args.binary)
    rng = np.random.default_rng(args.seed)
    m = None
    settings = StepSettings(aux_weight=args.deep_supervision)
    for step in range(1, args.steps + 1):
        batch = crop_batch(train_scenes, sampler, rng, args.batch, args.binary)
        loss = train_step(module, optimizer, [batch], settings)
        schedule.step()
        if step % args.every == 0:
            m = score(model, val_x, val_y, num_classes)
            line = (f"step {step:5d}  loss {loss:.3f}  val pixel acc {100 * m['pixel_acc']:5.1f} %  "
                    f"mean IU {100 * m['mean_iu']:5.1f} %")
            if args.bn_modes:  # the validation score with running statistics is m, computed above
                line += f"  | val running-BN acc {100 * m['pixel_acc']:.1f}"
                for name, x, y, stats in (("val", val_x, val_y, True), ("train", train_x, train_y, False),
                                          ("train", train_x, train_y, True)):
                    s = score(model, x, y, num_classes, batch_stats=stats)
                    line += f"  | {name} {'batch' if stats else 'running'}-BN acc {100 * s['pixel_acc']:.1f}"
            print(f"{line}  ({time.perf_counter() - start:.0f} s)", flush=True)
    if m is None or args.steps % args.every:  # else m is the last report's score of the final model
        m = score(model, val_x, val_y, num_classes)
    per_class = " ".join(f"{100 * v:.1f}" for v in m["per_class_iu"])
    print(f"final per-class IU: {per_class}")


if __name__ == "__main__":
    main()
