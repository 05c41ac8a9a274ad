"""``pixelwise convert``: Caffe ``.caffemodel`` or torchvision VGG16 ``.pth`` -> pixelwise checkpoint."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from pixelwise.errors import PixelwiseError
from pixelwise.models.base import Family


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert",
        help="convert Caffe (.caffemodel) or torchvision VGG16 (.pth) weights to a pixelwise checkpoint",
        description=(
            "Convert the FCN / DeconvNet release caffemodels (no Caffe needed) or an ImageNet VGG16 "
            "(Caffe or torchvision) into a checkpoint that every --checkpoint option loads. "
            "Architecture, classes and width are read from the layers when not given."
        ),
    )
    p.add_argument("source", help="a .caffemodel or a torchvision VGG16/VGG16-BN state dict (.pth)")
    p.add_argument("-o", "--output", required=True, help="checkpoint to write (.pt)")
    p.add_argument("--arch", default=None, help="model name (default: inferred from Caffe layer names; "
                   "required for a bare VGG16)")
    p.add_argument("--num-classes", type=int, default=None, help="default: the score layer's outputs, else 21")
    p.add_argument("--width", type=float, default=None, help="width multiplier (default: inferred from the weights)")
    p.add_argument("--bn-mode", choices=("auto", "folded", "learn"), default="auto",
                   help="DeconvNet fork BN layers: statistics folded into scale/shift (INFERENCE) or "
                   "gamma/beta only (LEARN); auto reads the mode stored in the file")
    p.add_argument("--layout", choices=("auto", "fcn", "fcn-pascal"), default="auto",
                   help="FCN layer names: fcn = the FCN release's (score_fr, upscore2, ...); fcn-pascal = "
                   "the CVPR-era Model Zoo fcn-8s-pascal that the DeconvNet release uses (score-fr, score2, "
                   "..., score2 with a bias); auto (default) reads them from the file")
    p.add_argument("--pad-input-to", type=int, default=None, metavar="S",
                   help="record in the model that inputs are zero-padded bottom/right (after mean "
                   "subtraction) to at least SxS and the scores cropped back, as the DeconvNet release "
                   "runs its FCN-8s; default 500 for the fcn-pascal layout, off otherwise; 0 = off")
    p.add_argument("--map", action="append", default=[], metavar="MODULE=LAYER",
                   help="take pixelwise MODULE from Caffe LAYER (repeatable), e.g. seg_score=score")
    p.add_argument("--class-names", default=None, metavar="FILE",
                   help="text file with one class name per line (default: the VOC names for 21 classes)")
    p.add_argument("--quiet", action="store_true", help="do not print the layer table")
    p.set_defaults(func=run)


def _overrides(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        module, sep, layer = item.partition("=")
        if not sep or not module or not layer:
            raise PixelwiseError(f"--map expects MODULE=LAYER, got {item!r}")
        out[module.strip()] = layer.strip()
    return out


def _class_names(path: str | None, num_classes: int) -> list[str] | None:
    if path is None:
        if num_classes == 21:
            from pixelwise.data.palette import VOC_CLASSES

            return list(VOC_CLASSES)
        return None
    file = Path(path)
    if not file.is_file():
        raise PixelwiseError(f"--class-names: {file}: no such file")
    names = [line.strip() for line in file.read_text().splitlines() if line.strip()]
    if len(names) != num_classes:
        raise PixelwiseError(f"--class-names: {file} has {len(names)} names but the model has {num_classes} classes")
    return names


def run(args: argparse.Namespace) -> int:
    from pixelwise.checkpoint import make_checkpoint, save_checkpoint
    from pixelwise.fileio import ensure_writable_file
    from pixelwise.weights.convert import convert_weights

    overrides = _overrides(args.map)
    ensure_writable_file(args.output)  # fail before reading weights that may take a minute
    model_kwargs = {}
    if args.pad_input_to is not None:
        if args.pad_input_to < 0:
            raise PixelwiseError(f"--pad-input-to must be >= 0, got {args.pad_input_to}")
        model_kwargs["pad_input_to"] = args.pad_input_to or None
    with tqdm(total=2, desc="convert", unit="step", file=sys.stderr, disable=args.quiet or None) as bar:
        bar.set_postfix_str("reading weights")
        model, report = convert_weights(
            args.source, arch=args.arch, num_classes=args.num_classes, width=args.width,
            bn_mode=args.bn_mode, overrides=overrides, layout=args.layout, **model_kwargs,
        )
        bar.update(1)
        bar.set_postfix_str("writing checkpoint")
        names = _class_names(args.class_names, report.num_classes)
        config = {
            "convert": {
                "source": str(args.source),
                "source_format": report.source_format,
                "bn_mode": args.bn_mode,
                "map": overrides,
                "layout": report.layout,
            }
        }
        ckpt = make_checkpoint(model, input_convention=report.input_convention, class_names=names, config=config)
        path = save_checkpoint(args.output, ckpt)
        bar.update(1)
    if not args.quiet:
        print(report.table())
    else:
        for w in report.warnings:
            print(f"warning: {w}", file=sys.stderr)
    pad = model.pad_input_to if model.family == Family.FCN else None  # an FCN option
    print(
        f"wrote {path}: {report.arch}, {report.num_classes} classes, width {report.width:g}, "
        f"input convention {report.input_convention.name}, {report.matched} modules loaded"
        + (f", layout {report.layout}" if report.layout and report.layout != "fcn" else "")
        + (f", inputs padded to {pad}x{pad} (scores cropped back)" if pad else "")
    )
    return 0
