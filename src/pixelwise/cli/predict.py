"""``pixelwise predict``: segment images, a folder or a glob; write masks, overlays, probabilities, JSON.

Exit code: 0 when every image was segmented, 1 when some were skipped (each reported on one line),
2 for a usage error (bad option, missing checkpoint, no input found).
"""

from __future__ import annotations

import argparse
import glob
import json
import re
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pixelwise.cli.options import add_box_rule_options, apply_as_released
from pixelwise.data.io import IMAGE_EXTENSIONS, read_image, write_image, write_mask
from pixelwise.data.palette import VOC_CLASSES, overlay, voc_palette
from pixelwise.errors import PixelwiseError
from pixelwise.fileio import ensure_writable_dir, writing
from pixelwise.inference.boxes import ENLARGE, read_box_file
from pixelwise.inference.crf import CRF_PRESETS, DEFAULT_CRF_PRESET, crf_available
from pixelwise.inference.options import DenseOptions, PostOptions, ProposalOptions
from pixelwise.inference.pipeline import segment
from pixelwise.inference.predict import model_kind, model_palette
from pixelwise.inference.proposals import EDGE_MODEL_HINT
from pixelwise.inference.sliding import WINDOWS
from pixelwise.inference.tta import parse_scales
from pixelwise.models.ensemble import ENSEMBLE_MODES
from pixelwise.optimize import ENGINES, prepare_for_inference
from pixelwise.runtime import PRECISIONS, resolve_device

PROPOSAL_CHOICES = ("none", "selective-search", "edge-boxes", "sliding", "file", "gt")


# -- arguments shared with `pixelwise compare` -----------------------------------------------------


def add_inference_args(p: argparse.ArgumentParser) -> None:
    """Add the inference options (device, tiling, TTA, proposals, aggregation, CRF) to ``p``."""
    g = p.add_argument_group("device")
    g.add_argument("--device", default="auto", help="auto (CUDA if available), cpu or cuda[:N]")
    g.add_argument("--precision", choices=PRECISIONS, default="fp32", help="forward-pass precision")
    g.add_argument("--engine", choices=ENGINES, default="auto",
                   help="inference engine (pixelwise.optimize): auto = the fastest measured for the model "
                        "(benchmarks/README.md); plain = the model as built; onnxruntime exports and runs "
                        "it in ONNX Runtime. A .onnx file given as --checkpoint always runs in ONNX Runtime")
    g = p.add_argument_group("dense inference")
    g.add_argument("--tile", type=int, default=None, metavar="PX",
                   help="sliding-window tiles of PX x PX pixels (default: whole image at once)")
    g.add_argument("--overlap", type=float, default=0.33, help="fraction of a tile shared with its neighbour (0.33)")
    g.add_argument("--window", choices=WINDOWS, default="linear",
                   help="tile blending weights: linear ramp over the overlap (default) or uniform average")
    g.add_argument("--tile-context", type=int, default=0, metavar="PX",
                   help="extra image pixels fed around each tile and discarded (>= 224 makes FCN tiling exact)")
    g.add_argument("--tta", choices=("none", "flip"), default="none", help="flip: also run mirrored, average")
    g.add_argument("--scales", default=None, metavar="S,S,...", help="multi-scale TTA, e.g. 0.75,1,1.25")
    g = p.add_argument_group("DeconvNet proposals")
    g.add_argument("--proposals", choices=PROPOSAL_CHOICES, default=None,
                   help="box source for DeconvNet/EDeconvNet (default selective-search; none = one "
                        "whole-image pass); ignored for FCN")
    g.add_argument("--boxes", default=None, metavar="FILE", help="JSON/CSV box file (implies --proposals file)")
    g.add_argument("--edge-model", default=None, metavar="PATH",
                   help="OpenCV structured-edge model model.yml.gz, needed by --proposals edge-boxes")
    add_box_rule_options(g)
    g.add_argument("--enlarge", type=float, default=ENLARGE, help=f"scale each box side around its centre ({ENLARGE})")
    g.add_argument("--square", action="store_true", help="extend boxes to squares before enlarging")
    g.add_argument("--proposal-size", type=int, default=None, metavar="PX",
                   help="crop side fed to DeconvNet (default: the model's input size, 224 for the paper's)")
    g.add_argument("--batch", type=int, default=8, help="proposal crops per forward pass (8)")
    g.add_argument("--mode", choices=ENSEMBLE_MODES, default=None,
                   help="EDeconvNet combination: mean (the paper) or product (the release); default: the "
                        "checkpoint's")
    g.add_argument("--crf", action="store_true", help="dense CRF post-processing (needs pixelwise[crf])")
    g.add_argument("--crf-preset", choices=tuple(CRF_PRESETS), default=DEFAULT_CRF_PRESET,
                   help="how --crf drives pydensecrf: release (the authors' MATLAB wrapper: no kernel "
                        "normalisation, uncapped -log p) or pydensecrf (its defaults: symmetric "
                        f"normalisation, -log p capped at 18.4); default {DEFAULT_CRF_PRESET}")


def check_inference_args(args: argparse.Namespace) -> None:
    """Fail early (before any image) on options that would fail for every image."""
    apply_as_released(args)
    if args.boxes is not None:
        if args.proposals not in (None, "file"):
            raise PixelwiseError(f"--boxes gives the proposals; drop --proposals {args.proposals}")
        args.proposals = "file"
        args.box_table = read_box_file(args.boxes)
    elif args.proposals == "file":
        raise PixelwiseError("--proposals file needs --boxes FILE (a .json or .csv box file)")
    if args.proposals == "edge-boxes":
        if args.edge_model is None or not Path(args.edge_model).is_file():
            where = "--edge-model is missing" if args.edge_model is None else f"{args.edge_model}: not found"
            raise PixelwiseError(f"--proposals edge-boxes: {where}; {EDGE_MODEL_HINT}")
    if args.crf and not crf_available():
        raise PixelwiseError("--crf needs the optional dense CRF extra: pip install 'pixelwise[crf]' (pydensecrf2)")
    args.scale_list = parse_scales(args.scales)
    for name in ("top_k", "batch", "proposal_size"):
        if getattr(args, name) is not None and getattr(args, name) < (0 if name == "top_k" else 1):
            raise PixelwiseError(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")


def class_names_of(model: nn.Module, num_classes: int) -> list[str]:
    """The checkpoint's class names; VOC's for 21 classes without names; else class_0, class_1, ..."""
    names = getattr(model, "class_names", None)
    if names and len(names) == num_classes:
        return list(names)
    if num_classes == len(VOC_CLASSES):
        return list(VOC_CLASSES)
    return [f"class_{i}" for i in range(num_classes)]


# -- segment() options from the inference flags (predict, compare) --------------------------------


def dense_options_from(args: argparse.Namespace) -> DenseOptions:
    """Return the :class:`DenseOptions` of the flags (after :func:`check_inference_args`)."""
    return DenseOptions(
        tile=args.tile, overlap=args.overlap, window=args.window, context=args.tile_context,
        tta=None if args.tta == "none" else args.tta, scales=args.scale_list, precision=args.precision,
    )


def proposal_options_from(args: argparse.Namespace, model: nn.Module) -> ProposalOptions:
    """Return the :class:`ProposalOptions` of the flags for ``model``: no proposals for an FCN,
    selective search for a DeconvNet unless ``--proposals`` says otherwise. What depends on the
    image (its box-file entry, its ground truth) is added by :meth:`ProposalOptions.for_image`."""
    method = args.proposals
    if model_kind(model) in ("fcn", "generic") or method == "none":
        method = None  # proposals are DeconvNet's; FCN always runs dense
    elif method is None:
        method = "selective-search"
    options: dict = {}
    if method == "edge-boxes":
        options = {"model_path": args.edge_model}
    elif method == "file":
        options = {"table": args.box_table, "path": args.boxes}
    return ProposalOptions(
        method=method, method_options=options, top_k=args.top_k, min_box=args.min_box,
        min_box_frac=args.min_box_frac, enlarge=args.enlarge, square=args.square, size=args.proposal_size,
        batch=args.batch, aggregate=args.aggregate, uncovered=args.uncovered, pad=args.pad,
    )


def post_options_from(args: argparse.Namespace) -> PostOptions:
    """Return the :class:`PostOptions` of the flags: EDeconvNet's ``--mode``, ``--crf``, ``--crf-preset``."""
    return PostOptions(ensemble_mode=args.mode, crf=args.crf, crf_preset=args.crf_preset)


# -- models ---------------------------------------------------------------------------------------


def load_cli_model(args: argparse.Namespace, images: int | None = None) -> nn.Module:
    """Return the model the options name (checkpoint, fresh model, or two ensemble members), in eval
    mode on ``--device``, prepared with ``--engine`` for ``images`` images (None: a few)."""
    from pixelwise.checkpoint import load_model
    from pixelwise.models.registry import create_model

    sources = [args.checkpoint is not None, args.model is not None, args.fcn is not None or args.deconvnet is not None]
    if sum(sources) != 1:
        raise PixelwiseError("give exactly one of --checkpoint CKPT, --model NAME, or --fcn CKPT --deconvnet CKPT")
    device = resolve_device(args.device)
    if args.checkpoint is not None and str(args.checkpoint).endswith(".onnx"):
        return load_onnx_model(args.checkpoint)
    cached = _cached_engine(args, device)
    if cached is not None:
        return cached
    if args.checkpoint is not None:
        model = load_model(args.checkpoint)
    elif args.model is not None:
        model = create_model(args.model, num_classes=args.num_classes, width=args.width)
        model.class_names = None
    else:
        if args.fcn is None or args.deconvnet is None:
            raise PixelwiseError("an ensemble needs both --fcn CKPT and --deconvnet CKPT")
        from pixelwise.cli.ensemble import build_edeconvnet

        model = build_edeconvnet(
            load_model(args.fcn), load_model(args.deconvnet), mode=args.mode or "mean",
            fcn_source=args.fcn, deconvnet_source=args.deconvnet,
        )
    model = model.to(device).eval()
    prepared = prepare_for_inference(model, engine=args.engine, precision=args.precision, device=device, copy=False,
                                     images=images)
    if prepared.engine == "onnxruntime" and prepared.cache_key and args.checkpoint is not None and args.engine == "auto":
        from pixelwise.fast.engine_cache import remember_checkpoint

        remember_checkpoint(args.checkpoint, prepared.cache_key)  # the next run skips loading the checkpoint
    return prepared


def _cached_engine(args: argparse.Namespace, device: torch.device) -> nn.Module | None:
    """Return the engine cache's ONNX Runtime engine of ``--checkpoint`` when ``auto`` would run it
    (fp32 on the CPU) and the file is unchanged since it was stored: the checkpoint is then not
    loaded at all. None otherwise (the usual path decides)."""
    if args.checkpoint is None or args.engine != "auto" or args.precision != "fp32" or device.type != "cpu":
        return None
    from pixelwise.fast.engine_cache import entry_for_checkpoint

    entry = entry_for_checkpoint(args.checkpoint)
    if entry is None:
        return None
    try:
        return load_onnx_model(entry, optimized=True)
    except PixelwiseError:
        return None  # unusable: the usual path rebuilds it


def load_onnx_model(path: str, *, optimized: bool = False) -> nn.Module:
    """Return an exported ``.onnx`` model (``pixelwise export``) ready for :func:`segment`: run by
    ONNX Runtime, dispatched as the FCN or DeconvNet it was exported from (an exported EDeconvNet
    is one whole-image graph)."""
    from pixelwise.models.registry import get_entry
    from pixelwise.optimize import PreparedModel
    from pixelwise.weights.onnx_engine import OnnxModel

    onnx = OnnxModel(path, optimized=optimized)
    spec = onnx.pixelwise_spec or {}
    family = get_entry(spec["name"]).family if spec.get("name") else "other"
    meta = {k: getattr(onnx, k) for k in ("num_classes", "input_convention", "class_names", "pixelwise_spec",
                                          "class_colors", "input_scale")}
    return PreparedModel(onnx, engine="onnxruntime", family="other" if family == "ensemble" else family,
                         device=torch.device("cpu"), meta=meta)


# -- inputs and outputs ---------------------------------------------------------------------------


def expand_inputs(inputs: list[str]) -> list[Path]:
    """Expand files, folders (their images, sorted) and glob patterns into a list of paths."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in IMAGE_EXTENSIONS)
            if not found:
                raise PixelwiseError(f"{p}: folder holds no images ({', '.join(IMAGE_EXTENSIONS)})")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            matches = sorted(Path(m) for m in glob.glob(item, recursive=True) if Path(m).is_file())
            if not matches:
                raise PixelwiseError(f"{item}: no such file or folder, and no file matches it as a glob")
            out += matches
    seen: set[Path] = set()
    unique = []
    for p in out:
        key = p.resolve()
        if key not in seen:
            seen.add(key)
            unique.append(p)
    return unique


def output_stems(paths: list[Path]) -> list[str]:
    """One output name per input: the file's stem, with ``_2``, ``_3``, ... when stems repeat."""
    used: dict[str, int] = {}
    stems = []
    for p in paths:
        n = used.get(p.stem, 0) + 1
        used[p.stem] = n
        stems.append(p.stem if n == 1 else f"{p.stem}_{n}")
    return stems


def class_summary(mask: np.ndarray, class_names: list[str]) -> list[dict]:
    """Classes present in ``mask``, largest first: index, name, pixels, share (0..1)."""
    counts = np.bincount(mask.ravel(), minlength=len(class_names))
    total = mask.size
    order = np.argsort(-counts, kind="stable")
    return [
        {"index": int(i), "name": class_names[i], "pixels": int(counts[i]), "share": round(float(counts[i]) / total, 6)}
        for i in order
        if counts[i] > 0
    ]


def compact_json(data) -> str:
    """JSON with one key per line but short number lists (boxes, scales) kept on one line."""
    text = json.dumps(data, indent=1)
    return re.sub(r"\[\s+([-+\d.eE,\s]+?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text)


# -- the command ----------------------------------------------------------------------------------


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
    g.add_argument("--model", default=None, metavar="NAME", help="a freshly built (untrained) model, for smoke tests")
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


def write_outputs(out_dir: Path, stem: str, image: np.ndarray, mask: np.ndarray, probs: np.ndarray,
                  args: argparse.Namespace, palette: np.ndarray | None = None) -> None:
    """Write ``STEM.png`` (palette mask: ``palette``'s colours, default VOC's), ``STEM_overlay.png``
    and, with ``--save-probs``, ``STEM_probs.npy`` (float16 ``(C, H, W)``) into ``out_dir``."""
    palette = voc_palette(256) if palette is None else palette
    with writing(out_dir / f"{stem}.png"):  # e.g. a full disk: one line naming the file
        write_mask(out_dir / f"{stem}.png", mask, palette)
        write_image(out_dir / f"{stem}_overlay.png", overlay(image, mask, args.alpha, palette))
        if args.save_probs:
            np.save(out_dir / f"{stem}_probs.npy", probs.astype(np.float16))


def image_summary(path: Path, stem: str, image: np.ndarray, mask: np.ndarray, names: list[str], model_name: str,
                  info: dict, args: argparse.Namespace, dense: DenseOptions, proposals: ProposalOptions,
                  post: PostOptions) -> dict:
    """Return the ``STEM.json`` record of one image: size, model, classes found, outputs and how the
    inference ran (``info`` of :func:`segment`)."""
    return {
        "image": str(path),
        "height": int(image.shape[0]),
        "width": int(image.shape[1]),
        "model": model_name,
        "classes": class_summary(mask, names),
        "outputs": {
            "mask": f"{stem}.png",
            "overlay": f"{stem}_overlay.png",
            "probs": f"{stem}_probs.npy" if args.save_probs else None,
        },
        "inference": {
            "tile": dense.tile,
            "tta": args.tta,
            "scales": list(dense.scales) if dense.scales else None,
            "proposals": info.get("proposals"),
            "boxes": info.get("box_list"),
            "coverage": info.get("coverage"),
            "aggregate": proposals.aggregate if info.get("proposals") else None,
            "crf": post.crf,
            "crf_preset": post.crf_preset if post.crf else None,
            "seconds": round(info.get("seconds", 0.0), 4),
        },
    }


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    if not 0 <= args.alpha <= 1:
        raise PixelwiseError(f"--alpha must be in [0, 1], got {args.alpha}")
    check_inference_args(args)
    paths = expand_inputs(args.inputs)
    out_dir = ensure_writable_dir(args.out)  # a bad --out fails before the model is loaded
    model = load_cli_model(args, images=len(paths))
    dense, proposals, post = dense_options_from(args), proposal_options_from(args, model), post_options_from(args)
    num_classes = int(getattr(model, "num_classes", 0) or 0)
    names = class_names_of(model, num_classes) if num_classes else None
    model_name = dict(getattr(model, "pixelwise_spec", {}) or {}).get("name", type(model).__name__)
    colours = model_palette(model)
    failed: list[str] = []
    start = time.perf_counter()
    bar = tqdm(list(zip(paths, output_stems(paths))), desc="predict", unit="img", file=sys.stderr,
               disable=None)
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
        write_outputs(out_dir, stem, image, mask, probs, args, colours)
        summary = image_summary(path, stem, image, mask, names, model_name, info, args, dense, proposals, post)
        with writing(out_dir / f"{stem}.json"):
            (out_dir / f"{stem}.json").write_text(compact_json(summary) + "\n", encoding="utf-8")
    done = len(paths) - len(failed)
    elapsed = time.perf_counter() - start
    print(
        f"segmented {done} of {len(paths)} images in {elapsed:.1f} s -> {out_dir}"
        + (f"; {len(failed)} failed" if failed else ""),
        file=sys.stderr,
    )
    warm_engine_cache(args, model)
    return 1 if failed else 0


def warm_engine_cache(args: argparse.Namespace, prepared) -> None:
    """After a run whose ``auto`` engine had no cached ONNX graph for this FCN checkpoint, export
    it into the engine cache (once per checkpoint), so that later runs take ONNX Runtime, the
    faster engine, without paying the export. Runs after every output is written."""
    key = getattr(prepared, "cache_key", None)  # None: no ONNX Runtime for it (cache off, no onnx, fixed size)
    if args.engine != "auto" or getattr(prepared, "engine", None) != "channels_last" or key is None:
        return
    if args.checkpoint is None or str(args.checkpoint).endswith(".onnx"):
        return
    from pixelwise.checkpoint import load_model
    from pixelwise.fast.engine_cache import has_entry, remember_checkpoint

    if has_entry(key):
        return
    model = load_model(args.checkpoint).eval()  # the run's own copy was rewritten in place (channels_last)
    start = time.perf_counter()
    prepare_for_inference(model, engine="onnxruntime", copy=False)
    remember_checkpoint(args.checkpoint, key)
    print(f"pixelwise predict: stored the ONNX Runtime engine of {args.checkpoint} in the engine cache "
          f"({time.perf_counter() - start:.1f} s, once); later runs use it (PIXELWISE_ENGINE_CACHE=0 turns this off)",
          file=sys.stderr)
