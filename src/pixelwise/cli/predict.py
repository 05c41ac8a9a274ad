"""``pixelwise predict``: segment images, a folder or a glob; write masks, overlays, probabilities, JSON.

Exit code: 0 when every image was segmented, 1 when some were skipped (each reported on one line),
2 for a usage error (bad option, missing checkpoint, no input found).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Iterable

import numpy as np

from pixelwise.cli.inference_options import (
    add_inference_args,
    check_inference_args,
    dense_options_from,
    post_options_from,
    proposal_options_from,
)
from pixelwise.data.io import read_image
from pixelwise.errors import PixelwiseError
from pixelwise.fileio import ensure_writable_dir
from pixelwise.inference.inputs import expand_inputs
from pixelwise.inference.loading import ModelRequest, load_inference_model, warm_engine_cache
from pixelwise.inference.options import DenseOptions, PostOptions, ProposalOptions
from pixelwise.inference.outputs import output_stems, write_outputs, write_summary
from pixelwise.inference.pipeline import segment
from pixelwise.inference.predict import model_palette
from pixelwise.inference.summary import class_names_of, image_summary, model_name
from pixelwise.models.base import ModelInterface
from pixelwise.models.pretrained import find_weights
from pixelwise.runtime import resolve_device


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "predict",
        help="segment images; write masks, overlays, probabilities and a JSON summary",
        description="Segment images, folders or globs. Per image: NAME.png (palette mask), "
                    "NAME_overlay.png, NAME.json (classes found), NAME_probs.npy (--save-probs). "
                    "Exit code 0 = all done, 1 = some images failed, 2 = usage error.",
    )
    p.add_argument("inputs", nargs="+", metavar="INPUT", help="image files, folders, or quoted globs")
    g = p.add_argument_group("model (one of)")
    g.add_argument("--checkpoint", "-c", default=None, metavar="CKPT", help="a pixelwise checkpoint")
    g.add_argument("--model", default=None, metavar="NAME",
                   help="published weights (voc-fcn8s, voc-deconvnet, ...: `pixelwise weights list`; downloaded and "
                   "converted once), or a registered model built fresh (untrained, for smoke tests)")
    g.add_argument("--width", type=float, default=1.0, help="width multiplier for --model")
    g.add_argument("--num-classes", type=int, default=21, help="classes for --model")
    g.add_argument("--fcn", default=None, metavar="CKPT", help="EDeconvNet from an FCN-8s checkpoint ...")
    g.add_argument("--deconvnet", default=None, metavar="CKPT", help="... and a DeconvNet checkpoint")
    g = p.add_argument_group("output")
    g.add_argument("--out", "-o", required=True, metavar="DIR", help="output folder")
    g.add_argument("--save-probs", action="store_true", help="also write NAME_probs.npy, float16 (C, H, W)")
    g.add_argument("--alpha", type=float, default=0.5, help="overlay opacity (0.5)")
    add_inference_args(p)
    p.set_defaults(func=run)


def model_request_from(args: argparse.Namespace) -> ModelRequest:
    """Return the :class:`ModelRequest` of the model flags (exactly one source) and ``--device``,
    ``--engine``, ``--precision``, ``--mode``."""
    sources = [args.checkpoint is not None, args.model is not None, args.fcn is not None or args.deconvnet is not None]
    if sum(sources) != 1:
        raise PixelwiseError("give exactly one of --checkpoint CKPT, --model NAME, or --fcn CKPT --deconvnet CKPT")
    device = resolve_device(args.device)
    if args.checkpoint is None and args.model is None and (args.fcn is None or args.deconvnet is None):
        raise PixelwiseError("an ensemble needs both --fcn CKPT and --deconvnet CKPT")
    checkpoint, model = args.checkpoint, args.model
    if model is not None and find_weights(model) is not None:  # published weights: their converted checkpoint
        from pixelwise.weights.zoo import pretrained_checkpoint

        checkpoint, model = str(pretrained_checkpoint(model)), None
    return ModelRequest(
        checkpoint=checkpoint, model=model, width=args.width, num_classes=args.num_classes,
        fcn=args.fcn, deconvnet=args.deconvnet, ensemble_mode=args.mode or "mean", device=device,
        engine=args.engine, precision=args.precision,
    )


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if not 0 <= args.alpha <= 1:
        raise PixelwiseError(f"--alpha must be in [0, 1], got {args.alpha}")
    check_inference_args(args)
    paths = expand_inputs(args.inputs)
    out_dir = ensure_writable_dir(args.out)  # a bad --out fails before the model is loaded
    request = model_request_from(args)
    model = load_inference_model(request, images=len(paths))
    options = dense_options_from(args), proposal_options_from(args, model), post_options_from(args)
    start = time.perf_counter()
    bar = tqdm(list(zip(paths, output_stems(paths))), desc="predict", unit="img", file=sys.stderr,
               disable=None)
    failed = _predict_all(model, bar, out_dir, args, options)
    elapsed = time.perf_counter() - start
    print(
        f"segmented {len(paths) - len(failed)} of {len(paths)} images in {elapsed:.1f} s -> {out_dir}"
        + (f"; {len(failed)} failed" if failed else ""),
        file=sys.stderr,
    )
    seconds = warm_engine_cache(request, model)
    if seconds is not None:
        print(f"pixelwise predict: stored the ONNX Runtime engine of {args.checkpoint} in the engine cache "
              f"({seconds:.1f} s, once); later runs use it (PIXELWISE_ENGINE_CACHE=0 turns this off)",
              file=sys.stderr)
    return 1 if failed else 0


def _predict_all(model: ModelInterface, bar: Iterable[tuple[Path, str]], out_dir: Path, args: argparse.Namespace,
                 options: tuple[DenseOptions, ProposalOptions, PostOptions]) -> list[str]:
    """Segment every ``(path, stem)`` of ``bar`` with ``options`` and write its files; return the
    inputs that failed (each reported on one line)."""
    from tqdm import tqdm

    dense, proposals, post = options
    num_classes = int(model.num_classes or 0)
    names = class_names_of(model, num_classes) if num_classes else None
    name, colours = model_name(model), model_palette(model)
    failed: list[str] = []
    for path, stem in bar:
        try:
            image = read_image(path)
            info: dict = {}
            probs = segment(model, image, dense=dense, proposals=proposals.for_image(image_name=path.name),
                            post=post, progress=True, info=info)
        except PixelwiseError as exc:
            failed.append(str(path))
            msg = str(exc)
            tqdm.write(f"pixelwise predict: skipped {msg if str(path) in msg else f'{path}: {msg}'}", file=sys.stderr)
            continue
        if names is None:
            names = class_names_of(model, probs.shape[0])
        mask = probs.argmax(0).astype(np.uint8)
        write_outputs(out_dir, stem, image, mask, probs, alpha=args.alpha, save_probs=args.save_probs, palette=colours)
        summary = image_summary(path, stem, image, mask, names, name, info, save_probs=args.save_probs,
                                dense=dense, proposals=proposals, post=post)
        write_summary(out_dir, stem, summary)
    return failed
