"""``pixelwise demo``: the main job on the built-in synthetic data, sized for a 2-core CPU."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "demo",
        help="pretrain a backbone, train FCN-8s and DeconvNet on the built-in world, evaluate, report (CPU, minutes)",
        description="On the built-in synthetic world: pretrains VGG16-BN as an object classifier (cached), fine-tunes "
        "FCN-32s -> 16s -> 8s and DeconvNet (two stages) from it, evaluates FCN-8s, DeconvNet on proposals and their "
        "EDeconvNet ensemble, and writes report.md, predictions.png, curves.png and results.json into --out. "
        "Deterministic per --seed.",
    )
    p.add_argument("--out", default="demo-out", help="output folder [default: demo-out]")
    p.add_argument("--seed", type=int, default=0, help="seed of model init, data order and augmentation")
    p.add_argument("--quick", action="store_true", help="a tiny run of a few seconds (checks the pipeline)")
    p.add_argument("--threads", type=int, default=0,
                   help="CPU threads [default 0: every core; on a machine that other jobs keep busy, 1 can be faster "
                   "(threads that wait for a busy core stall each other). Numbers are the same per seed and thread "
                   "count]")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pixelwise.demo import run_demo
    from pixelwise.fileio import ensure_writable_dir

    ensure_writable_dir(args.out)  # a bad --out fails before minutes of training
    run_demo(args.out, seed=args.seed, quick=args.quick, threads=args.threads, progress=not args.no_progress)
    return 0
