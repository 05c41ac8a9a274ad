"""``pixelwise models``: the registered models with parameter and FLOP counts."""

from __future__ import annotations

import argparse
import json

import torch

from pixelwise.models.flops import count_flops, count_parameters
from pixelwise.models.registry import create_model, get_entry, list_models


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list the models with parameters and FLOPs")
    p.add_argument("--size", type=int, default=None, help="input side for FLOPs (default: 500 for FCN, 224 otherwise)")
    p.add_argument("--width", type=float, default=1.0, help="width multiplier (1.0 = paper-exact)")
    p.add_argument("--num-classes", type=int, default=21)
    p.add_argument("--json", action="store_true", help="one JSON object per model")
    p.set_defaults(func=run)


def model_rows(*, width: float = 1.0, num_classes: int = 21, size: int | None = None) -> list[dict]:
    """Return one dict per registered model: name, family, params, gflops, size, description."""
    rows = []
    for name in list_models():
        entry = get_entry(name)
        with torch.device("meta"):
            model = create_model(name, num_classes=num_classes, width=width).eval()
        side = size or (500 if entry.family == "fcn" else 224)
        if not model.is_valid_size(side, side):
            side = model.input_size  # DeconvNet runs on its proposal size (or multiples of 32 above)
        rows.append(
            {
                "name": name,
                "family": entry.family,
                "params": count_parameters(model),
                "size": side,
                "gflops": count_flops(model, side, side) / 1e9,
                "description": entry.description,
            }
        )
    return rows


def run(args: argparse.Namespace) -> int:
    rows = model_rows(width=args.width, num_classes=args.num_classes, size=args.size)
    if args.json:
        for row in rows:
            print(json.dumps(row))
        return 0
    print(f"{'model':<14}{'params':>14}{'input':>10}{'GFLOPs':>10}  description")
    for r in rows:
        print(
            f"{r['name']:<14}{r['params'] / 1e6:>13.1f}M{r['size']:>6}x{r['size']:<3}"
            f"{r['gflops']:>10.1f}  {r['description']}"
        )
    print(f"(width {args.width}, {args.num_classes} classes; FLOPs = 2 x multiply-adds, one image)")
    return 0
