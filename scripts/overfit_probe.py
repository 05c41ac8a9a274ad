"""Can a model memorise a handful of fixed training crops? A diagnostic for slow learners.

    .venv/bin/python scripts/overfit_probe.py --model deconvnet
    .venv/bin/python scripts/overfit_probe.py --model fcn8s --steps 100
    .venv/bin/python scripts/overfit_probe.py --model deconvnet --optimizer sgd --lr 0.01

Takes ``--crops`` DeconvNet stage-1 object crops (``--input-size`` pixels, as `pixelwise train
--sampling objects` makes them) of synthetic training scenes (``--world``), then trains a freshly
initialised model on that one batch for ``--steps`` steps, printing the loss and the pixel accuracy
on the batch. A healthy network drives the accuracy towards 100 %; a network stuck at the share of
background pixels has learned only how often each class occurs. Used to investigate why DeconvNet
did not learn in `pixelwise reproduce` (see docs/reproduce.md).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

# the same crops and models as crop_probe.py (scripts/ is on sys.path when run as a script)
import numpy as np
from crop_probe import crop_batch, fresh_model

from pixelwise.data import build_dataset
from pixelwise.train.deconvnet_sampling import ObjectCrop


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="deconvnet")
    p.add_argument("--width", type=float, default=0.125)
    p.add_argument("--crops", type=int, default=8)
    p.add_argument("--input-size", type=int, default=96, help="crop side")
    p.add_argument("--world", default="objects")
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--every", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    scenes = build_dataset("synthetic", split="train", length=max(args.crops, 16), size=96, world=args.world)
    images, labels = crop_batch(scenes, ObjectCrop(args.input_size), np.random.default_rng(0), args.crops, False)
    model = fresh_model(args.model, 8, args.width, input_size=args.input_size)
    if args.optimizer == "adam":
        opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    else:
        opt = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9)
    valid = labels != 255
    background = float((labels[valid] == 0).float().mean())
    print(f"{args.model} width {args.width}, {args.crops} crops, {args.optimizer} lr {args.lr}; "
          f"background share {100 * background:.1f} %")
    start = time.perf_counter()
    for step in range(args.steps + 1):
        logits = model(images)
        loss = F.cross_entropy(logits, labels, ignore_index=255)
        if step % args.every == 0:
            acc = float((logits.argmax(1)[valid] == labels[valid]).float().mean())
            print(f"step {step:4d}  loss {loss.item():.3f}  pixel acc {100 * acc:5.1f} %  "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
        if step == args.steps:
            break
        opt.zero_grad()
        loss.backward()
        opt.step()


if __name__ == "__main__":
    main()
