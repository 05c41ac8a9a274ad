"""The accuracy cost of ``--precision bf16``: fp32 vs bf16 engines on the synthetic validation set.

    .venv/bin/python benchmarks/bf16_accuracy.py --checkpoint runs/tiny/best.pt
    .venv/bin/python benchmarks/bf16_accuracy.py --model fcn8s --width 0.125   # randomised, untrained

Reports, over the validation images: mean IU of each engine against the ground truth, the
fraction of pixels whose predicted class differs between the engines, and the relative logit
error (max |bf16 - fp32| / max |fp32| per image, worst image). Without ``--checkpoint`` the model
is untrained with randomised weights (say so when quoting the numbers).
"""

from __future__ import annotations

import argparse
import json
import sys

import torch


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print one JSON line; return 0."""
    import pixelwise
    from pixelwise.bench.cases import randomise
    from pixelwise.data import build_dataset
    from pixelwise.data.transforms import normalize_image
    from pixelwise.metrics import ConfusionMatrix
    from pixelwise.optimize import prepare_for_inference

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--checkpoint", default=None, help="a trained pixelwise checkpoint (default: randomised model)")
    p.add_argument("--model", default="fcn8s")
    p.add_argument("--width", type=float, default=0.125)
    p.add_argument("--images", type=int, default=20, help="validation images (default 20)")
    p.add_argument("--size", type=int, default=None, help="synthetic image side (default: the dataset's)")
    args = p.parse_args(argv)
    data_kw = {"length": args.images} | ({"size": args.size} if args.size else {})
    if args.checkpoint:
        model = pixelwise.load_model(args.checkpoint)
        source = f"trained checkpoint {args.checkpoint}"
        cfg = torch.load(args.checkpoint, map_location="cpu", weights_only=False).get("config") or {}
        data_kw = {**(cfg.get("data_options") or {}), **data_kw}  # the synthetic data it trained on
    else:
        torch.manual_seed(0)
        model = randomise(pixelwise.create_model(args.model, num_classes=8, width=args.width), 0).eval()
        source = f"untrained randomised {args.model} width {args.width}"
    data = build_dataset("synthetic", split="val", num_classes=model.num_classes, **{k: v for k, v in data_kw.items() if k in ("length", "size", "seed")})
    fp32 = prepare_for_inference(model, engine="auto")
    bf16 = prepare_for_inference(model, engine="bf16")
    cms = {"fp32": ConfusionMatrix(model.num_classes), "bf16": ConfusionMatrix(model.num_classes)}
    agree = pixels = 0
    worst = 0.0
    for i in range(len(data)):
        sample = data[i]
        x = normalize_image(sample["image"], model.input_convention)[None]
        forward = (lambda m: m.forward_any_size) if hasattr(model, "forward_any_size") else (lambda m: m)
        a, b = forward(fp32)(x), forward(bf16)(x)
        target = torch.from_numpy(sample["mask"]).long()[None]
        cms["fp32"].update(a.argmax(1), target)
        cms["bf16"].update(b.argmax(1), target)
        agree += int((a.argmax(1) == b.argmax(1)).sum())
        pixels += a.argmax(1).numel()
        worst = max(worst, float((a - b).abs().max() / a.abs().max().clamp_min(1e-12)))
    res = {
        "model": source,
        "images": len(data),
        "engines": [fp32.engine, bf16.engine],
        "mean_iu_fp32": cms["fp32"].compute()["mean_iu"],
        "mean_iu_bf16": cms["bf16"].compute()["mean_iu"],
        "argmax_disagree": 1 - agree / pixels,
        "max_rel_logit_err": worst,
    }
    print(json.dumps(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
