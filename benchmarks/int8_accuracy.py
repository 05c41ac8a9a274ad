"""What int8 costs in accuracy, on trained checkpoints, for every part of the network in turn.

    .venv/bin/python benchmarks/int8_accuracy.py demo-out/fcn8s/best.pt demo-out/deconvnet/best.pt
    .venv/bin/python benchmarks/int8_accuracy.py CKPT ... --check-images 50 --output benchmarks/results/int8_accuracy.json

For each checkpoint, exactly what ``pixelwise export --int8`` does (:func:`pixelwise.inference.int8.build_int8`:
calibration on ``--calibrate-images`` images of the checkpoint's training split, the guard on
``--check-images`` held-out images of its validation split, DeconvNet on its default proposals),
once per variant: the engine's default (the class scorers in float), everything quantized, then
the default with one more part in float (``encoder``: VGG16 with fc6/fc7; ``decoder``:
DeconvNet's deconv-fc6 and transposed convolutions). Prints, per variant, the label agreement with
fp32 and the mean IU of both on the held-out images. Runs in a private engine cache (the user's is
untouched).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from pixelwise.fast.int8 import QuantSettings


def variants(family: str) -> list[tuple[str, ...]]:
    """The parts kept in float, one variant each: the engine's default first."""
    default = QuantSettings().float_parts
    parts = [default, (), (*default, "encoder")]
    return parts + [(*default, "decoder")] if family == "deconvnet" else parts


def measure(path: Path, args: argparse.Namespace) -> list[dict]:
    """One row per variant of checkpoint ``path``."""
    from pixelwise.checkpoint import load_checkpoint, model_from_checkpoint
    from pixelwise.inference.int8 import build_int8, data_samples, default_proposals

    ckpt = load_checkpoint(path)
    config = ckpt.get("config") or {}
    model = model_from_checkpoint(ckpt, source=str(path)).eval()
    calib = data_samples(None, config, default_split=config.get("train_split") or "train",
                         count=args.calibrate_images, data_root=args.data_root)
    check = data_samples(args.check, config, default_split=config.get("val_split") or "val",
                         count=args.check_images, data_root=args.data_root, avoid=calib)
    rows = []
    for parts in variants(model.family):
        start = time.perf_counter()
        result = build_int8(model, [s["image"] for s in calib.items], check.items, calibration_source=calib.source,
                            check_source=check.source, proposals=default_proposals(model, args.proposals),
                            min_agreement=0.0, quant=QuantSettings(float_parts=parts))
        report = result.report
        rows.append({"checkpoint": str(path), "model": model.pixelwise_spec["name"], "float_parts": list(parts),
                     "calibration": result.calibration, **report.to_dict(),
                     "seconds": time.perf_counter() - start})
        change = report.miou_change
        print(f"{path} [float: {'+'.join(parts) or 'none'}]: agreement {100 * report.agreement:.2f} %, mean IU "
              f"{100 * report.miou_fp32:.2f} -> {100 * report.miou_int8:.2f} ({change:+.2f} points) on "
              f"{report.source} ({report.images} images)" if change is not None else
              f"{path} [float: {'+'.join(parts) or 'none'}]: agreement {100 * report.agreement:.2f} %", flush=True)
    return rows


def main(argv: list[str] | None = None) -> int:
    """Measure every checkpoint; print (and with ``--output`` write JSON); return 0."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoints", type=Path, nargs="+")
    p.add_argument("--calibrate-images", type=int, default=8)
    p.add_argument("--check-images", type=int, default=20)
    p.add_argument("--check", default=None, help="held-out data, as export --int8 --check (default: the validation split)")
    p.add_argument("--proposals", default=None, help="DeconvNet's proposals (default: export --int8's; none: whole images)")
    p.add_argument("--data-root", default=None, help="dataset root (default: each checkpoint's)")
    p.add_argument("--output", type=Path, default=None)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="pixelwise-int8-accuracy-") as cache:
        os.environ["PIXELWISE_CACHE"] = cache
        os.environ["PIXELWISE_ENGINE_CACHE"] = "1"
        rows = [row for path in args.checkpoints for row in measure(path, args)]
    if args.output:
        from pixelwise.runtime import cpu_model

        args.output.write_text(json.dumps({"cpu": cpu_model(), "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
