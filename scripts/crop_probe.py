"""Train a model on DeconvNet-style object crops and score it on held-out crops: does it generalise?

    .venv/bin/python scripts/crop_probe.py --model deconvnet
    .venv/bin/python scripts/crop_probe.py --model fcn8s
    .venv/bin/python scripts/crop_probe.py --model deconvnet --binary   # object vs background only

Cuts ``--train-crops`` stage-1 object crops (224x224, one object of a scene enlarged 1.2-1.5x,
``--min-side`` scene pixels at least) from the synthetic training scenes and ``--val-crops`` from
the validation scenes, trains a freshly initialised model on random batches of the training crops
(Adam, fixed ``--lr``) and every ``--every`` steps prints the pixel accuracy and mean IU on the
validation crops. ``--binary`` merges every object class into one, which separates "finds where
the object is" from "recognises its shape". Unlike `scripts/overfit_probe.py` (memorising one
batch) this measures learning that carries over to unseen crops, for FCN-8s and DeconvNet under
the same data, optimiser and steps. Used in docs/reproduce.md.
"""

from __future__ import annotations

import argparse
import copy
import time

import numpy as np
import torch
import torch.nn.functional as F

from pixelwise.data import build_dataset
from pixelwise.data.transforms import normalize_image
from pixelwise.metrics import ConfusionMatrix
from pixelwise.models.registry import create_model
from pixelwise.train.deconvnet_sampling import ObjectCrop

CONVENTION = "torchvision_rgb"


def object_crops(split: str, count: int, min_side: float, seed: int, binary: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Return ``(count, 3, 224, 224)`` normalised images and ``(count, 224, 224)`` int64 labels."""
    scenes = build_dataset("synthetic", split=split)
    sampler = ObjectCrop(224, min_side=min_side)
    rng = np.random.default_rng(seed)
    images, labels = [], []
    for i in range(count):
        crop = sampler(scenes[i % len(scenes)], rng)
        images.append(normalize_image(crop["image"], CONVENTION))
        labels.append(torch.from_numpy(crop["mask"].astype(np.int64)))
    y = torch.stack(labels)
    if binary:
        y = torch.where((y > 0) & (y != 255), torch.ones_like(y), y)
    return torch.stack(images), y


def fresh_model(name: str, num_classes: int, width: float) -> torch.nn.Module:
    """Return a freshly initialised model in training mode; FCNs pad-free and without dropout, as
    the demo recipe trains them on crops."""
    extra = {"pad100": False, "dropout": 0.0} if name.startswith("fcn") else {}
    return create_model(name, num_classes=num_classes, width=width, **extra).train()


@torch.no_grad()
def score(
    model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, num_classes: int, batch_stats: bool = False
) -> dict:
    """Return the metrics of ``model`` on the crops, 16 at a time (:func:`scores_from_matrix` keys).

    ``batch_stats`` scores with batch norm in training mode (statistics of each batch of 16)
    instead of the running statistics, on a copy, so that the model's running statistics and the
    rest of the run stay as they were.
    """
    scored = copy.deepcopy(model).train() if batch_stats else model.eval()
    matrix = ConfusionMatrix(num_classes)
    for i in range(0, len(images), 16):
        matrix.update(scored(images[i : i + 16]).argmax(1), labels[i : i + 16])
    model.train()
    return matrix.compute()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="deconvnet")
    p.add_argument("--width", type=float, default=0.125)
    p.add_argument("--train-crops", type=int, default=1600)
    p.add_argument("--val-crops", type=int, default=64)
    p.add_argument("--min-side", type=float, default=16.0, help="smallest crop side in scene pixels")
    p.add_argument("--binary", action="store_true", help="object vs background only")
    p.add_argument("--bn-modes", action="store_true",
                   help="also score the first 64 training crops, and both sets with batch statistics")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--every", type=int, default=50)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    start = time.perf_counter()
    train_x, train_y = object_crops("train", args.train_crops, args.min_side, args.seed, args.binary)
    val_x, val_y = object_crops("val", args.val_crops, args.min_side, args.seed + 1, args.binary)
    num_classes = 2 if args.binary else 8
    model = fresh_model(args.model, num_classes, args.width)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    valid = val_y != 255
    background = float((val_y[valid] == 0).float().mean())
    print(f"{args.model} width {args.width}, {num_classes} classes, {args.train_crops} training crops, "
          f"batch {args.batch}, Adam {args.lr}; background share of the validation crops {100 * background:.1f} %")
    order = torch.Generator().manual_seed(args.seed)
    for step in range(1, args.steps + 1):
        pick = torch.randint(0, len(train_x), (args.batch,), generator=order)
        loss = F.cross_entropy(model(train_x[pick]), train_y[pick], ignore_index=255)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        if step % args.every == 0:
            m = score(model, val_x, val_y, num_classes)
            line = (f"step {step:5d}  loss {loss.item():.3f}  val pixel acc {100 * m['pixel_acc']:5.1f} %  "
                    f"mean IU {100 * m['mean_iu']:5.1f} %")
            if args.bn_modes:  # the validation score with running statistics is m, computed above
                line += f"  | val running-BN acc {100 * m['pixel_acc']:.1f}"
                train_x64, train_y64 = train_x[:64], train_y[:64]
                for name, x, y, stats in (("val", val_x, val_y, True), ("train", train_x64, train_y64, False),
                                          ("train", train_x64, train_y64, True)):
                    s = score(model, x, y, num_classes, batch_stats=stats)
                    line += f"  | {name} {'batch' if stats else 'running'}-BN acc {100 * s['pixel_acc']:.1f}"
            print(f"{line}  ({time.perf_counter() - start:.0f} s)", flush=True)


if __name__ == "__main__":
    main()
