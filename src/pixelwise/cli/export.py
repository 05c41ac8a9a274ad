"""``pixelwise export``: write a model as ONNX and check it against ONNX Runtime."""

from __future__ import annotations

import argparse
import sys

from tqdm import tqdm

from pixelwise.errors import PixelwiseError

FORMATS = ("onnx",)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export",
        help="export a model to ONNX (checked against ONNX Runtime)",
        description=(
            "Export a trained checkpoint (or an untrained model by name) to ONNX with the input "
            "convention and class names in its metadata, run it in ONNX Runtime and print the "
            "largest difference from the torch model. FCN graphs take any height/width, DeconvNet "
            "multiples of 32 >= 224, EDeconvNet the export size."
        ),
    )
    src = p.add_mutually_exclusive_group(required=True)
    src.add_argument("--checkpoint", help="pixelwise checkpoint (.pt) to export")
    src.add_argument("--model", help="export an untrained model by name (see `pixelwise models`)")
    p.add_argument("--width", type=float, default=1.0, help="with --model: width multiplier")
    p.add_argument("--num-classes", type=int, default=21, help="with --model: number of classes")
    p.add_argument("--format", choices=FORMATS, default="onnx")
    p.add_argument("-o", "--output", required=True, help="file to write (.onnx)")
    p.add_argument("--size", type=int, nargs="+", default=None, metavar="PX",
                   help="export (trace) size: H or H W (default 224; DeconvNet: multiples of 32 >= 224)")
    p.add_argument("--static", action="store_true", help="fix height/width to --size (batch stays dynamic)")
    p.add_argument("--exporter", choices=("auto", "dynamo", "torchscript"), default="auto",
                   help="torch's ONNX exporter: dynamo (current; needs onnxscript), torchscript (deprecated "
                   "by torch, kept as a fallback), or auto (default): dynamo where available, else or "
                   "if it fails torchscript, with a note")
    p.add_argument("--opset", type=int, default=None,
                   help="ONNX opset (default: 18 with the dynamo exporter, 17 with torchscript)")
    p.add_argument("--no-check", action="store_true", help="skip the ONNX Runtime comparison")
    p.add_argument("--quiet", action="store_true", help="no progress bar (shown only on a terminal anyway)")
    p.set_defaults(func=run)


def _load(args: argparse.Namespace):
    if args.checkpoint:
        from pixelwise.checkpoint import load_model

        return load_model(args.checkpoint)
    from pixelwise.models.registry import create_model

    return create_model(args.model, num_classes=args.num_classes, width=args.width).eval()


def run(args: argparse.Namespace) -> int:
    from pixelwise.fileio import ensure_writable_file
    from pixelwise.weights.onnx_export import choose_exporter, export_onnx

    if args.size is not None and len(args.size) not in (1, 2):
        raise PixelwiseError(f"--size takes H or H W, got {len(args.size)} numbers")
    height = args.size[0] if args.size else None
    width = args.size[-1] if args.size else None
    if args.size and min(args.size) < 1:
        raise PixelwiseError(f"--size must be positive, got {args.size}")
    choose_exporter(args.exporter, args.opset)  # a bad --exporter/--opset pair fails before loading
    ensure_writable_file(args.output)  # a bad -o fails before the model is loaded and exported
    # disable=None: the bar only on a terminal, never in a log file or a pipe
    with tqdm(total=2, desc="export", unit="step", file=sys.stderr, disable=args.quiet or None) as bar:
        bar.set_postfix_str("loading model")
        model = _load(args)
        bar.update(1)
        bar.set_postfix_str("exporting + onnxruntime check")
        report = export_onnx(
            model, args.output, height=height, width=width, dynamic=not args.static,
            opset=args.opset, check=not args.no_check, exporter=args.exporter,
        )
        bar.update(1)
    for note in report.notes:
        print(f"pixelwise export: note: {note}", file=sys.stderr)
    mb = report.file_bytes / 2**20
    print(f"wrote {report.path} ({mb:.1f} MiB, opset {report.opset}, input sizes: {report.input_sizes}, "
          f"{report.exporter} exporter, {report.seconds:.1f} s)")
    for c in report.checks:
        print(
            f"onnxruntime vs torch at {c.height}x{c.width}: max abs diff {c.max_abs_diff:.3g} "
            f"(logits up to {c.max_abs_output:.3g}; relative {c.relative_diff:.2g}), "
            f"argmax agreement {100 * c.argmax_agreement:.2f}%"
        )
    if report.checks:
        print(f"max abs diff: {report.max_abs_diff:.3g}")
    return 0
