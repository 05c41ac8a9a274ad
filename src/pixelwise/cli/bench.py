"""``pixelwise bench``: speed and memory of every engine, side by side with a plain reference.

Each line reports the median time, achieved GFLOP/s, the fraction of a 3x3-conv peak measured in
the same run, the ratio to a plain eager reference model timed interleaved with it, and peak RSS.
"""

from __future__ import annotations

import argparse
import json
import sys

from pixelwise.errors import PixelwiseError


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``bench`` subcommand."""
    p = sub.add_parser(
        "bench",
        help="benchmark models and inference engines (time, GFLOP/s, %% of peak, memory)",
        description=(
            "Benchmark one model (or the whole --suite) on every engine: eager, channels_last, bf16, "
            "onnxruntime, cuda, each timed interleaved with a plain reference model carrying the "
            "same weights; paper-width FCN-8s inference also runs the pytorch-fcn peer (torchfcn, "
            "fetched once into the cache) and prints the default engines' speed-up over it. Prints a "
            "table, or one JSON object per engine with --json."
        ),
    )
    p.add_argument("--model", default="fcn8s", help="model name (see `pixelwise models`; default fcn8s)")
    p.add_argument("--size", default=None, help="input side N or HxW (default 500 for FCN, 224 for DeconvNet; "
                   "the image size with --proposals, default 375x500)")
    p.add_argument("--batch", type=int, default=1, help="images per call (default 1)")
    p.add_argument("--width", type=float, default=None, help="width multiplier (default 1.0 = paper-exact; 0.0625 with --quick)")
    p.add_argument("--num-classes", type=int, default=21)
    p.add_argument("--engines", default=None, help="comma-separated engines (default: reference,eager,channels_last,bf16,"
                   "onnxruntime,int8,cuda, + torchfcn, the pytorch-fcn peer, for FCN-8s at width 1.0)")
    p.add_argument("--repeats", type=int, default=None, help="timed calls per engine (default 3; 2 with --quick; 0 = single shot)")
    p.add_argument("--warmup", type=int, default=1, help="untimed calls first (default 1; peak RSS is read over these)")
    p.add_argument("--train", action="store_true", help="also time a training step (--train-size, default 320 FCN / 224 DeconvNet)")
    p.add_argument("--train-size", default=None, help="training input side N or HxW")
    p.add_argument("--proposals", default=None, help="DeconvNet/EDeconvNet: comma-separated proposal counts, e.g. 1,8,50, "
                   "each run through the proposal pipeline on one image")
    p.add_argument("--tiled", default=None, help="also run one image of this side (N or HxW) through sliding-window inference (memory)")
    p.add_argument("--tile", type=int, default=768, help="tile side for --tiled (default 768)")
    p.add_argument("--threads", type=int, default=None, help="torch and ONNX Runtime threads (default: torch's)")
    p.add_argument("--quick", action="store_true", help="tiny widths and sizes (seconds): for tests and smoke checks")
    p.add_argument("--suite", action="store_true", help="run the full paper-size suite of benchmarks/README.md (--quick: its tiny version)")
    p.add_argument("--isolate", dest="isolate", action="store_true", default=None,
                   help="each engine in a fresh process for a clean peak RSS (default unless --quick)")
    p.add_argument("--no-isolate", dest="isolate", action="store_false")
    p.add_argument("--no-ref", action="store_true", help="skip the side-by-side reference (faster; no ref_ratio)")
    p.add_argument("--json", action="store_true", help="one JSON object per engine on stdout")
    p.add_argument("--output", default=None, help="also write the JSON lines (header first) to this file")
    p.set_defaults(func=run)


def _side(text: str | None, default: tuple[int, int], option: str) -> tuple[int, int]:
    if text is None:
        return default
    try:
        parts = [int(v) for v in str(text).lower().split("x")]
    except ValueError:
        parts = []
    if len(parts) == 1:
        parts = parts * 2
    if len(parts) != 2 or min(parts) < 1:
        raise PixelwiseError(f"{option} must be N or HxW with positive integers, got {text!r}")
    return parts[0], parts[1]


def _engines(text: str | None) -> list[str]:
    from pixelwise.bench import DEFAULT_ENGINES, ENGINES

    if not text:
        return list(DEFAULT_ENGINES)
    names = [e.strip() for e in text.split(",") if e.strip()]
    bad = [e for e in names if e not in ENGINES]
    if bad or not names:
        raise PixelwiseError(f"--engines: unknown engine(s) {', '.join(bad) or '(none)'}; valid: {', '.join(ENGINES)}")
    return names


def _probe(name: str):
    """Return model ``name`` built on the meta device (no memory): its family and input sizes."""
    import torch

    from pixelwise.models.registry import create_model

    with torch.device("meta"):
        return create_model(name)


def build_plan(args: argparse.Namespace) -> list:
    """Return the ``(Case, engines)`` plan the arguments ask for."""
    from pixelwise.bench import Case, full_plan, quick_plan

    if args.suite:
        plan = quick_plan() if args.quick else full_plan()
        if args.engines:
            keep = set(_engines(args.engines))
            plan = [(c, [e for e in engines if e in keep]) for c, engines in plan]
            plan = [(c, engines) for c, engines in plan if engines]
        return plan
    from pixelwise.bench.runner import with_peer

    probe = _probe(args.model)
    family = probe.family
    engines = _engines(args.engines)
    width = args.width if args.width is not None else (0.0625 if args.quick else 1.0)
    if not 0 < width <= 4:
        raise PixelwiseError(f"--width must be in (0, 4], got {width}")
    repeats = args.repeats if args.repeats is not None else (2 if args.quick else 3)
    if repeats < 0 or args.warmup < 0 or args.batch < 1:
        raise PixelwiseError("--repeats and --warmup must be >= 0 and --batch >= 1")
    common = dict(model_width=width, num_classes=args.num_classes, warmup=args.warmup, repeats=repeats)
    plan = []
    if args.proposals:
        if family == "fcn":
            raise PixelwiseError(f"--proposals needs deconvnet or edeconvnet, not {args.model}")
        try:
            counts = [int(v) for v in args.proposals.split(",") if v.strip()]
        except ValueError:
            counts = []
        if not counts or min(counts) < 1:
            raise PixelwiseError(f"--proposals must be comma-separated positive counts like 1,8,50, got {args.proposals!r}")
        h, w = _side(args.size, (160, 200) if args.quick else (375, 500), "--size")
        plan += [(Case("proposals", args.model, h, w, batch=k, **common), engines) for k in counts]
    else:
        default = (96, 96) if args.quick and family == "fcn" else (500, 500) if family == "fcn" else (224, 224)
        h, w = _side(args.size, default, "--size")
        # an ensemble is timed at its DeconvNet's valid sizes, so that no padding is timed
        sized = probe.deconvnet if family == "ensemble" else probe
        sized.size_rule.check(h, w, f"--size for {args.model}", "the minimum is its proposal size")
        case = Case("infer", args.model, h, w, batch=args.batch, **common)
        plan.append((case, engines if args.engines else with_peer(case, engines)))  # the peer joins the default only
    if args.train:
        if family == "ensemble":
            raise PixelwiseError("--train: train the ensemble's members (fcn8s, deconvnet) separately")
        default = (64, 64) if args.quick else (320, 320) if family == "fcn" else (224, 224)
        th, tw = _side(args.train_size, default, "--train-size")
        plan.append((Case("train", args.model, th, tw, batch=args.batch, **common),
                     [e for e in engines if e not in ("onnxruntime", "int8")]))
    if args.tiled:
        if family != "fcn":
            raise PixelwiseError("--tiled is for the FCN models (DeconvNet runs on proposals)")
        th, tw = _side(args.tiled, (2048, 2048), "--tiled")
        tiled_engines = [e for e in engines if e != "reference"] or ["channels_last"]
        plan.append((Case("tiled", args.model, th, tw, tile=args.tile, **{**common, "repeats": 0}), tiled_engines))
    return plan


def run(args: argparse.Namespace) -> int:
    """Run the benchmark; print a table (or JSON lines); return 0."""
    from pixelwise.bench import describe, run_benchmark
    from pixelwise.bench.report import console_table, peaks_text, peer_lines

    if args.threads is not None and args.threads < 1:
        raise PixelwiseError(f"--threads must be >= 1, got {args.threads}")
    plan = build_plan(args)
    isolate = (not args.quick) if args.isolate is None else args.isolate
    out_file = None
    if args.output:
        from pixelwise.fileio import ensure_writable_file, writing

        with writing(ensure_writable_file(args.output)):
            out_file = open(args.output, "w")  # noqa: SIM115 (closed below)

    def emit(r: dict) -> None:
        if args.json:
            print(json.dumps(r), flush=True)
        if out_file:
            out_file.write(json.dumps(r) + "\n")
            out_file.flush()

    try:
        header, results = run_benchmark(
            plan, isolate=isolate, with_ref=not args.no_ref, threads=args.threads,
            quick_peaks=args.quick, progress=True, on_result=emit,
        )
    finally:
        if out_file:
            out_file.close()
    speedups = header.get("peer_speedup")
    if args.output:  # put the header first in the file
        with open(args.output) as f:
            body = f.read()
        with open(args.output, "w") as f:
            f.write(json.dumps({"header": header}) + "\n" + body)
    peaks = header["peaks"]
    summary = (
        f"machine: {describe(header['machine'])}\n"
        f"3x3 conv peak (same run): {peaks_text(peaks)}"
    )
    if args.json:
        if speedups:
            print(json.dumps({"peer_speedup": speedups}), flush=True)
        print(summary, file=sys.stderr)
        return 0
    print(summary)
    print(console_table(results))
    for line in peer_lines(results):
        print(line)
    print("ms = median wall time per call; % peak of the same-precision conv peak; x ref = reference time / engine "
          "time (plain eager model, same weights, timed interleaved); RSS = peak resident MB during the engine's "
          f"calls ({'fresh process per engine' if isolate else 'in this process'}); rel err = max |engine - reference| "
          "/ max |reference|; agree % = pixels whose argmax class equals the reference's; torchfcn = pytorch-fcn's FCN8s "
          "on the same weights (peer).")
    return 0
