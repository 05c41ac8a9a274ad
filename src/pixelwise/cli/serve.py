"""``pixelwise serve``: a browser page to segment uploaded images with one or more models.

Models: ``--checkpoint`` files (or run folders), ``--fcn``/``--deconvnet`` pairs served as
EDeconvNet, or, with neither, what ``pixelwise demo`` trained in ``--demo-dir`` (``demo-out``).
Binds to 127.0.0.1 (this machine only) unless ``--host`` says otherwise. Needs gradio:
``pip install 'pixelwise[serve]'``.
"""

from __future__ import annotations

import argparse
import sys
import time

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 7860


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``serve`` subcommand to ``sub`` (nothing heavy is imported here)."""
    p = sub.add_parser(
        "serve",
        help="a browser app: upload an image, pick a model and options, see the mask, overlay and legend",
        description="Serve a web page (gradio) to segment uploaded images: choose the model, tiling, TTA, "
                    "DeconvNet proposals and dense CRF; see the colour mask, an overlay with an opacity slider and "
                    "the proposal boxes, a legend with each class's share of the image, the time taken; download "
                    "the index-PNG mask. Without --checkpoint or --fcn/--deconvnet it serves the models "
                    "`pixelwise demo` trained (--demo-dir). Needs pip install 'pixelwise[serve]'.",
    )
    g = p.add_argument_group("models (any mix; none: the demo's)")
    g.add_argument("--checkpoint", "-c", nargs="+", action="extend", default=[], metavar="CKPT",
                   help="pixelwise checkpoints (.pt), exported .onnx files, or training run folders (their best.pt, "
                        "else last.pt)")
    g.add_argument("--fcn", action="append", default=[], metavar="CKPT",
                   help="EDeconvNet from an FCN-8s checkpoint ... (repeat --fcn/--deconvnet for more pairs)")
    g.add_argument("--deconvnet", action="append", default=[], metavar="CKPT", help="... and a DeconvNet checkpoint")
    g.add_argument("--mode", choices=("mean", "product"), default="mean",
                   help="EDeconvNet combination: mean (the paper, default) or product (the release)")
    g.add_argument("--demo-dir", default=None, metavar="DIR",
                   help="output folder of `pixelwise demo`: serves its fcn8s/ and deconvnet/ models and their "
                        "EDeconvNet [default: demo-out, when no other model is given]")
    g = p.add_argument_group("server")
    g.add_argument("--host", default=DEFAULT_HOST,
                   help=f"address to bind [default {DEFAULT_HOST}: this machine only; 0.0.0.0 opens the page to "
                        "the network]")
    g.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port [default {DEFAULT_PORT}]")
    g.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda[:N]")
    g.add_argument("--engine", default="auto", metavar="NAME",
                   help="inference engine of every model [default auto]; int8 runs the engines `pixelwise export "
                        "--int8` built (fp32 where their accuracy check refused them)")
    g.add_argument("--concurrency", type=int, default=1, metavar="N",
                   help="segment requests run at once [default 1: each uses every core]; the others queue")
    g.add_argument("--queue", type=int, default=16, metavar="N",
                   help="requests that may wait [default 16]; more are refused with one line (the queue is full)")
    g = p.add_argument_group("page")
    g.add_argument("--examples", type=int, default=4, metavar="N",
                   help="built-in synthetic scenes offered as examples [default 4; 0: none]")
    g.add_argument("--example-size", type=int, default=96, metavar="PX",
                   help="side of the example scenes [default 96, the demo's training size]")
    g.add_argument("--max-megapixels", type=float, default=25.0, metavar="MP",
                   help="largest image accepted [default 25 megapixels]")
    g.add_argument("--max-mb", type=float, default=50.0, metavar="MB", help="largest upload accepted [default 50 MB]")
    p.set_defaults(func=run)


def _check(args: argparse.Namespace) -> None:
    from pixelwise.errors import PixelwiseError

    if len(args.fcn) != len(args.deconvnet):
        raise PixelwiseError(f"give --fcn and --deconvnet in pairs (got {len(args.fcn)} --fcn and "
                             f"{len(args.deconvnet)} --deconvnet)")
    if not 1 <= args.port <= 65535:
        raise PixelwiseError(f"--port must be in 1..65535, got {args.port}")
    if args.examples < 0 or args.example_size < 32:
        raise PixelwiseError("--examples must be >= 0 and --example-size >= 32")
    if args.max_megapixels <= 0 or args.max_mb <= 0:
        raise PixelwiseError("--max-megapixels and --max-mb must be positive")
    if args.concurrency < 1 or args.queue < 1:
        raise PixelwiseError("--concurrency and --queue must be >= 1")


def run(args: argparse.Namespace) -> int:
    """Load the models, serve the page until Ctrl-C; return the exit code."""
    import tempfile
    from pathlib import Path

    from pixelwise.errors import PixelwiseError

    _check(args)
    try:
        import gradio  # noqa: F401  (fail before loading any model)
    except ImportError:
        raise PixelwiseError("pixelwise serve needs gradio: pip install 'pixelwise[serve]'") from None
    from pixelwise.serve.app import build_app, launch, write_examples
    from pixelwise.serve.models import load_served_models

    models = load_served_models(args.checkpoint, list(zip(args.fcn, args.deconvnet)), args.demo_dir,
                                device=args.device, mode=args.mode, engine=args.engine)
    with tempfile.TemporaryDirectory(prefix="pixelwise-serve-") as tmp:
        work = Path(tmp)
        examples = write_examples(work / "examples", count=args.examples, size=args.example_size)
        app = build_app(models, workdir=work / "masks", examples=examples, max_megapixels=args.max_megapixels,
                        max_megabytes=args.max_mb, concurrency=args.concurrency, queue_size=args.queue)
        url = launch(app, host=args.host, port=args.port, allowed_paths=[work], max_megabytes=args.max_mb)
        for m in models:
            print(f"pixelwise serve: model {m.label}", file=sys.stderr)
        if args.host not in ("127.0.0.1", "localhost", "::1"):
            print(f"pixelwise serve: listening on {args.host}: anyone who can reach this machine can use the page",
                  file=sys.stderr)
        print(f"pixelwise serve: open {url} (Ctrl-C stops)", file=sys.stderr, flush=True)
        try:
            while getattr(app, "is_running", True):
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
        finally:
            try:
                app.close(verbose=False)
            except TypeError:  # a gradio whose close() takes no arguments
                app.close()
        print("pixelwise serve: stopped", file=sys.stderr)
    return 0
