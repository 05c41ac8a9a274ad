"""``pixelwise demo``: the main job on the built-in synthetic data, sized for a 2-core CPU."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="train FCN-8s and DeconvNet on synthetic scenes and write a report (CPU, minutes)",
        description="Trains a small FCN-8s and a small two-stage DeconvNet on the synthetic shapes, evaluates "
        "them and their EDeconvNet ensemble, and writes report.md, predictions.png, curves.png and "
        "results.json into --out. Deterministic per --seed.",
    )
    p.add_argument("--out", default="demo-out", help="output folder [default: demo-out]")
    p.add_argument("--seed", type=int, default=0, help="seed of model init, data order and augmentation")
    p.add_argument("--quick", action="store_true", help="a tiny run of a few seconds (checks the pipeline)")
    p.add_argument("--threads", type=int, default=1,
                   help="CPU threads [default: 1: robust on a busy machine (two threads slow down many times when "
                   "another process holds a core) and the same numbers everywhere; 2 is faster on an idle machine]")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pixelwise.demo import run_demo

    run_demo(args.out, seed=args.seed, quick=args.quick, threads=args.threads, progress=not args.no_progress)
    return 0
