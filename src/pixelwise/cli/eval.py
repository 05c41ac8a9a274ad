"""``pixelwise eval``: score a checkpoint on a dataset split (pixel acc., mean acc., mean IU, f.w. IU).

The dataset defaults to the one the checkpoint was trained on (from its stored config). Writes
``results.json`` and ``confusion.png`` into ``--out``. Runs under ``torchrun`` too (the confusion
matrix is summed over processes, so the metrics equal a single-process run).
"""

from __future__ import annotations

import argparse
import sys

from pixelwise.cli.options import add_box_rule_options, add_dataset_options, apply_as_released, dataset_options
from pixelwise.errors import PixelwiseError
from pixelwise.fileio import ensure_writable_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="evaluate a checkpoint on a dataset split",
                       description="Whole-image evaluation with the FCN paper's four metrics, a per-class "
                       "table, IU by object size (synthetic data), results.json and confusion.png.")
    p.add_argument("--checkpoint", "-c", required=True, help="checkpoint file (.pt)")
    add_dataset_options(p, dataset_help="dataset name (default: the checkpoint's training dataset)")
    p.add_argument("--split", default=None, help="split to evaluate (default: the run's validation split)")
    p.add_argument("--limit", type=int, default=None, help="evaluate only the first N images")
    p.add_argument("--batch-size", type=int, default=1, help="images per forward pass (padded batches)")
    p.add_argument("--resize", type=int, default=None, metavar="N",
                   help="whole mode: run on images resized to NxN, scores resized back (DeconvNet: 224 = the whole "
                   "image as one proposal)")
    p.add_argument("--mode", choices=("whole", "proposals"), default="whole",
                   help="whole images, or DeconvNet's proposal pipeline (DeconvNet/EDeconvNet)")
    p.add_argument("--proposals", default="selective-search",
                   help="proposal method for --mode proposals: selective-search, edge-boxes, sliding, gt")
    add_box_rule_options(p.add_argument_group("--mode proposals: DeconvNet's box rules"))
    p.add_argument("--edge-model", default=None, help="EdgeBoxes structured-edge model file (model.yml.gz)")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda[:N]")
    p.add_argument("--precision", default="fp32", choices=("fp32", "bf16", "fp16"))
    p.add_argument("--threads", type=int, default=0, help="CPU threads (0 = all cores / processes)")
    p.add_argument("--out", default=None, help="output folder (default: <checkpoint folder>/eval-<split>)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pixelwise.train import distributed as dist_utils
    from pixelwise.train.evaluation import results_text, run_eval

    apply_as_released(args, ensemble_mode=False)
    if args.batch_size < 1:
        raise PixelwiseError(f"--batch-size must be >= 1, got {args.batch_size}")
    from pixelwise.inference.options import ProposalOptions

    proposals = ProposalOptions(method=args.proposals, method_options={"model_path": args.edge_model} if args.edge_model
                                else {}, top_k=args.top_k, min_box=args.min_box, min_box_frac=args.min_box_frac,
                                aggregate=args.aggregate, pad=args.pad, uncovered=args.uncovered)
    if args.out:
        ensure_writable_dir(args.out)  # a bad --out fails before the evaluation
    try:
        results = run_eval(
            args.checkpoint, dataset=args.dataset, data_root=args.data_root, data_options=dataset_options(args),
            split=args.split, limit=args.limit, batch_size=args.batch_size, resize=args.resize, mode=args.mode,
            proposals=proposals,
            device=args.device, precision=args.precision, threads=args.threads, out=args.out, progress=not args.no_progress,
        )
        main = dist_utils.is_main()
    finally:
        dist_utils.cleanup()
    if main:
        print(f"{results['model']} on {results['dataset']} {results['split']} ({results['images']} images, "
              f"{results['mode']}, {results['seconds']:.1f} s)")
        print(results_text(results))
        if results.get("collapsed"):
            print(f"pixelwise eval: {results['collapsed']}", file=sys.stderr)
        print(f"wrote {results['out']}/results.json and confusion.png")
    return 0
