"""fc6 and deconv-fc6: the convolution vs the matrix-product fast path (pixelwise.fast.fc).

    .venv/bin/python benchmarks/fc6.py            # paper widths
    .venv/bin/python benchmarks/fc6.py --width 0.25

Times, interleaved, DeconvNet's fc6 (7x7 conv on a 7x7 map), its deconv-fc6 (7x7 transposed conv
of a 1x1 map), both for 1 and 8 proposals, and FCN-8s's fc6 on the 22x22 map of a 500x500 image,
and prints one JSON line per layer with the median milliseconds and the maximum relative error.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys

import torch
from torch import nn

from pixelwise.bench.timing import time_interleaved
from pixelwise.fast.fc import MatmulConv2d, MatmulConvTranspose2d
from pixelwise.models.vgg import scaled


def main(argv: list[str] | None = None) -> int:
    """Run the comparisons; return 0."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=float, default=1.0)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args(argv)
    c5, fc = scaled(512, args.width), scaled(4096, args.width)
    torch.manual_seed(0)
    conv, deconv = nn.Conv2d(c5, fc, 7), nn.ConvTranspose2d(fc, c5, 7)
    cases = [
        ("deconvnet fc6, 1 proposal", conv, MatmulConv2d.from_conv(conv), torch.randn(1, c5, 7, 7)),
        ("deconvnet fc6, 8 proposals", conv, MatmulConv2d.from_conv(conv), torch.randn(8, c5, 7, 7)),
        ("deconvnet deconv_fc6, 1 proposal", deconv, MatmulConvTranspose2d.from_conv(deconv), torch.randn(1, fc, 1, 1)),
        ("deconvnet deconv_fc6, 8 proposals", deconv, MatmulConvTranspose2d.from_conv(deconv), torch.randn(8, fc, 1, 1)),
        ("fcn fc6 on 22x22 (500x500 image)", conv, MatmulConv2d.from_conv(conv), torch.randn(1, c5, 22, 22)),
    ]
    with torch.no_grad():
        for name, slow, fast, x in cases:
            ref = slow(x)
            err = float((fast(x) - ref).abs().max() / ref.abs().max())
            times = time_interleaved({"conv": lambda: slow(x), "gemm": lambda: fast(x)}, warmup=1, repeats=args.repeats)
            conv_ms, gemm_ms = (1000 * statistics.median(times[k]) for k in ("conv", "gemm"))
            row = {"layer": name, "conv_ms": round(conv_ms, 2), "gemm_ms": round(gemm_ms, 2),
                   "speedup": round(conv_ms / gemm_ms, 2), "max_rel_err": err, "threads": torch.get_num_threads()}
            print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
