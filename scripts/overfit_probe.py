"""Can a model memorise a handful of fixed training crops? A diagnostic for slow learners.

    .venv/bin/python scripts/overfit_probe.py --model deconvnet
    .venv/bin/python scripts/overfit_probe.py --model fcn8s --steps 100
    .venv/bin/python scripts/overfit_probe.py --model deconvnet --optimizer sgd --lr 0.01

Takes ``--crops`` DeconvNet stage-1 object crops (224x224, as `pixelwise train --sampling objects`
makes them) of the first synthetic training scenes, then trains a freshly initialised model on
that one batch for ``--steps`` steps, printing the loss and the pixel accuracy on the batch. A
healthy network drives the accuracy towards 100 %; a network stuck at the share of background
pixels has learned only how often each class occurs. Used to investigate why DeconvNet does not
learn in `pixelwise reproduce` (see docs/reproduce.md).
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

# the same crops and models as crop_probe.py (scripts/ is on sys.path when run as a script)
from crop_probe import fresh_model, object_crops


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="deconvnet")
    p.add_argument("--width", type=float, default=0.125)
    p.add_argument("--crops", type=int, default=8)
    p.add_argument("--min-side", type=float, default=107.0, help="smallest crop side in scene pixels (demo: 107)")
    p.add_argument("--steps", type=int, default=120)
    p.add_argument("--optimizer", choices=("adam", "sgd"), default="adam")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--every", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    images, labels = object_crops("train", args.crops, args.min_side, seed=0, binary=False)
    model = fresh_model(args.model, 8, args.width)
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
