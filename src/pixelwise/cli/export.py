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
    _add_int8_args(p.add_argument_group("int8 (--int8)"))
    p.set_defaults(func=run)


def _add_int8_args(g: argparse._ArgumentGroup) -> None:
    g.add_argument("--int8", action="store_true",
                   help="write the int8 engine instead: static quantization (ONNX Runtime, per-channel int8 weights) "
                        "calibrated on images of the model's training data, checked against fp32 on held-out "
                        "images and kept in the engine cache for --engine int8 (refused, fp32 kept, under "
                        "--min-agreement)")
    g.add_argument("--calibrate", default=None, metavar="DATA",
                   help="calibration images: DATASET/SPLIT, SPLIT, or image files/folders/globs [default: the "
                        "checkpoint's training split]")
    g.add_argument("--calibrate-images", type=int, default=8, metavar="N", help="calibration images [default 8]")
    g.add_argument("--check", default=None, metavar="DATA",
                   help="held-out images for the accuracy guard, as --calibrate [default: the checkpoint's "
                        "validation split, else val]")
    g.add_argument("--check-images", type=int, default=20, metavar="N", help="held-out images [default 20]")
    g.add_argument("--min-agreement", type=float, default=0.99, metavar="F",
                   help="refuse the int8 engine when its labels agree with fp32 on fewer pixels [default 0.99]")
    g.add_argument("--float-parts", default=None, metavar="PARTS",
                   help="parts kept in float, comma-separated: encoder, scores, upsampling, decoder, or none "
                        "[default: scores]; more is slower and closer to fp32 (benchmarks/README.md measures each)")
    g.add_argument("--proposals", default=None, choices=("selective-search", "sliding", "none"),
                   help="DeconvNet: proposals to calibrate and check on [default: selective-search, as predict]")
    g.add_argument("--data-root", default=None, metavar="DIR", help="dataset root [default: the checkpoint's]")


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
    if args.int8:
        return _run_int8(args)
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


def _run_int8(args: argparse.Namespace) -> int:
    """``export --int8``: calibrate, quantize, check against fp32, store the verdict; print it."""
    from pixelwise.fast.int8 import QuantSettings
    from pixelwise.fileio import ensure_writable_file
    from pixelwise.inference.int8 import build_int8, data_samples, default_proposals

    quant = QuantSettings() if args.float_parts is None else QuantSettings(
        float_parts=tuple(p for p in args.float_parts.split(",") if p not in ("", "none")))
    if args.calibrate_images < 1 or args.check_images < 1 or not 0 <= args.min_agreement <= 1:
        raise PixelwiseError("--calibrate-images and --check-images must be >= 1, --min-agreement in [0, 1]")
    ensure_writable_file(args.output)
    model, config = _load_with_config(args)
    if model.family not in ("fcn", "deconvnet"):
        raise PixelwiseError(f"--int8 quantizes FCN and DeconvNet models, not {model.family}; an EDeconvNet runs "
                             "its members' int8 engines: export each member with --int8")
    train, val = config.get("train_split") or "train", config.get("val_split") or "val"
    calib = data_samples(args.calibrate, config, default_split=train, count=args.calibrate_images,
                         data_root=args.data_root)
    check = data_samples(args.check, config, default_split=val, count=args.check_images, data_root=args.data_root,
                         avoid=calib)
    result = build_int8(model, [s["image"] for s in calib.items], check.items, calibration_source=calib.source,
                        check_source=check.source, proposals=default_proposals(model, args.proposals),
                        min_agreement=args.min_agreement, quant=quant, output=args.output, checkpoint=args.checkpoint)
    return _print_int8(result, args)


def _print_int8(result, args: argparse.Namespace) -> int:
    """Print what ``export --int8`` did; return its exit code (1 when the guard refused the engine)."""
    cal = result.calibration
    print(f"calibrated on {cal['source']} ({cal['images']} images, {cal['inputs']} network inputs)")
    print(f"guard: {result.report.line()}", flush=True)
    if not result.accepted:
        print(f"pixelwise export: int8 refused: label agreement {100 * result.report.agreement:.2f} % < "
              f"{100 * args.min_agreement:.2f} % (--min-agreement); {args.output} not written, the model keeps its "
              "fp32 engine (--float-parts scores,encoder keeps more of it exact)", file=sys.stderr)
        return 1
    print(f"wrote {result.output} (int8, {result.output.stat().st_size / 2**20:.1f} MiB); in the engine cache for "
          "--engine int8")
    return 0


def _load_with_config(args: argparse.Namespace):
    """The model to quantize and its training config (empty for a fresh ``--model``)."""
    if not args.checkpoint:
        return _load(args), {}
    from pixelwise.checkpoint import load_checkpoint, model_from_checkpoint

    ckpt = load_checkpoint(args.checkpoint)
    config = ckpt.get("config") if isinstance(ckpt.get("config"), dict) else {}
    return model_from_checkpoint(ckpt, source=args.checkpoint).eval(), config
