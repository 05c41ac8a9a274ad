"""``pixelwise compare``: a figure comparing models side by side, like the papers' qualitative figures.

Rows are images; columns are image | truth (when known) | one column per checkpoint, in the order
given | ``LABEL+CRF`` for each ``--crf LABEL``. Images come from files (``--truth DIR`` finds
``DIR/<name>.png``) or from a dataset (``--dataset synthetic --indices 0,1,2``).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from pixelwise.cli.options import DATASETS_HELP, add_dataset_options, dataset_options
from pixelwise.cli.inference_options import (
    add_inference_args,
    check_inference_args,
    dense_options_from,
    post_options_from,
    proposal_options_from,
)
from pixelwise.data.io import IMAGE_EXTENSIONS, read_image, read_mask
from pixelwise.errors import PixelwiseError
from pixelwise.fileio import ensure_writable_file, writing
from pixelwise.inference.crf import dense_crf
from pixelwise.inference.inputs import expand_inputs
from pixelwise.inference.options import DenseOptions, PostOptions
from pixelwise.inference.pipeline import segment
from pixelwise.inference.predict import model_palette
from pixelwise.inference.summary import class_names_of
from pixelwise.models.base import ModelInterface
from pixelwise.optimize import prepare_for_inference
from pixelwise.runtime import resolve_device

if TYPE_CHECKING:
    from tqdm import tqdm


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "compare",
        help="draw a comparison grid: image | truth | one column per model",
        description="Segment the same images with several checkpoints and draw them side by side "
                    "(image | truth | models in the order given), with a class legend.",
    )
    p.add_argument("images", nargs="*", metavar="IMAGE", help="image files, folders or quoted globs")
    p.add_argument("--checkpoints", nargs="+", required=True, metavar="LABEL=CKPT",
                   help="models to compare, e.g. fcn32s=a.pt fcn8s=b.pt deconvnet=c.pt")
    p.add_argument("--truth", default=None, metavar="DIR", help="folder of ground-truth masks named like the images")
    add_dataset_options(p, dataset_help="take images and truth from this dataset instead (" + DATASETS_HELP + ")")
    p.add_argument("--split", default="val", help="dataset split (val)")
    p.add_argument("--indices", default="0,1,2", help="dataset sample indices, comma-separated (0,1,2)")
    p.add_argument("--crf-for", action="append", default=[], metavar="LABEL",
                   help="add a LABEL+CRF column: that model's output after the dense CRF (repeatable)")
    p.add_argument("--out", "-o", required=True, metavar="PNG", help="where to write the figure")
    p.add_argument("--dpi", type=int, default=100)
    add_inference_args(p)
    p.set_defaults(func=run)


def parse_checkpoints(items: list[str]) -> dict[str, str]:
    """``["fcn8s=a.pt", ...]`` -> ``{"fcn8s": "a.pt", ...}`` in order (labels must be unique)."""
    out: dict[str, str] = {}
    for item in items:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            raise PixelwiseError(f"--checkpoints entries are LABEL=CKPT, got {item!r}")
        if label in out:
            raise PixelwiseError(f"--checkpoints: label {label!r} given twice")
        out[label] = path
    return out


def parse_indices(text: str, length: int) -> list[int]:
    """Parse ``"0,1,2"`` into dataset indices within ``range(length)``."""
    try:
        idx = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise PixelwiseError(f"--indices must be comma-separated integers, got {text!r}") from None
    bad = [i for i in idx if not 0 <= i < length]
    if not idx or bad:
        raise PixelwiseError(f"--indices {text!r}: the dataset has {length} samples (0..{length - 1})")
    return idx


def _find_truth(truth_dir: Path, image_path: Path) -> np.ndarray | None:
    for ext in (".png", *IMAGE_EXTENSIONS):
        candidate = truth_dir / f"{image_path.stem}{ext}"
        if candidate.is_file():
            return read_mask(candidate)
    return None


def load_rows(args: argparse.Namespace) -> tuple[list[dict], list[str] | None]:
    """Return the rows to draw (dicts with image, truth, name, sample) and the dataset's class names."""
    if args.dataset is not None:
        if args.images:
            raise PixelwiseError("give IMAGE arguments or --dataset, not both")
        from pixelwise.data import build_dataset

        ds = build_dataset(args.dataset, root=args.data_root, split=args.split, **dataset_options(args))
        rows = []
        for i in parse_indices(args.indices, len(ds)):
            sample = ds[i]
            rows.append({"image": sample["image"], "truth": sample.get("mask"), "name": sample["name"], "sample": sample})
        return rows, list(ds.class_names)
    if not args.images:
        raise PixelwiseError("give IMAGE arguments or --dataset NAME")
    rows = []
    truth_dir = Path(args.truth) if args.truth else None
    if truth_dir is not None and not truth_dir.is_dir():
        raise PixelwiseError(f"--truth {truth_dir}: not a folder")
    for path in expand_inputs(args.images):
        truth = _find_truth(truth_dir, path) if truth_dir else None
        rows.append({"image": read_image(path), "truth": truth, "name": path.name, "sample": None})
    return rows, None


def segment_rows(model: ModelInterface, rows: list[dict], args: argparse.Namespace, dense: DenseOptions,
                 post: PostOptions, *, with_crf: bool, bar: tqdm) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Return ``model``'s ``(H, W)`` uint8 masks of the rows, and (``with_crf``) the masks after the
    dense CRF; ``bar`` advances by one per row."""
    proposals = proposal_options_from(args, model)
    masks, crf_masks = [], []
    for r in rows:
        image_proposals = proposals.for_image(image_name=r["name"], sample=r["sample"])
        probs = segment(model, r["image"], dense=dense, proposals=image_proposals, post=post)
        masks.append(probs.argmax(0).astype(np.uint8))
        if with_crf:
            crf_masks.append(dense_crf(r["image"], probs, **post.crf_settings()).argmax(0).astype(np.uint8))
        bar.update(1)
    return masks, crf_masks


def _check_crf_for(args: argparse.Namespace, checkpoints: dict[str, str]) -> None:
    unknown = [label for label in args.crf_for if label not in checkpoints]
    if unknown:
        raise PixelwiseError(f"--crf-for {unknown[0]!r} is not a label of --checkpoints ({', '.join(checkpoints)})")
    if args.crf_for:
        from pixelwise.inference.crf import crf_available

        if not crf_available():
            raise PixelwiseError("--crf-for needs the optional dense CRF extra: pip install 'pixelwise[crf]' (pydensecrf2)")


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from pixelwise.checkpoint import load_model
    from pixelwise.viz.grids import comparison_grid

    check_inference_args(args)
    checkpoints = parse_checkpoints(args.checkpoints)
    _check_crf_for(args, checkpoints)
    out = ensure_writable_file(args.out)  # a bad --out fails before the models run
    rows, dataset_names = load_rows(args)
    device = resolve_device(args.device)
    dense, post = dense_options_from(args), post_options_from(args)
    columns: dict[str, list] = {}
    if any(r["truth"] is not None for r in rows):
        columns["truth"] = [r["truth"] for r in rows]
    class_names: list[str] | None = None
    palette = None  # the first model's class colours
    bar = tqdm(total=len(checkpoints) * len(rows), desc="compare", unit="img", file=sys.stderr, disable=None)
    for label, path in checkpoints.items():
        model = prepare_for_inference(load_model(path).to(device).eval(), engine=args.engine,
                                      precision=args.precision, device=device, copy=False)
        if class_names is None:
            num_classes = int(model.num_classes)
            if model.class_names is None and dataset_names and len(dataset_names) == num_classes:
                class_names = list(dataset_names)
            else:
                class_names = class_names_of(model, num_classes)
            palette = model_palette(model)
        columns[label], crf_masks = segment_rows(model, rows, args, dense, post, with_crf=label in args.crf_for,
                                                 bar=bar)
        if label in args.crf_for:
            columns[f"{label}+CRF"] = crf_masks
        del model
    bar.close()
    fig = comparison_grid([r["image"] for r in rows], columns, class_names, palette=palette,
                          row_titles=[r["name"] for r in rows])
    with writing(out):
        fig.savefig(out, dpi=args.dpi)
    print(f"wrote {out}: {len(rows)} images x {len(columns) + 1} columns ({', '.join(['image', *columns])})",
          file=sys.stderr)
    return 0
