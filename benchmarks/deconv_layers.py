"""Per-layer speed of DeconvNet's 3x3 layers: transposed convolution vs the equivalent convolution.

    .venv/bin/python benchmarks/deconv_layers.py            # batch 8 (a batch of proposals), 2 threads

For each (channels, map side) of the paper-width network it times ``conv_transpose2d`` and the
``conv2d`` with the flipped, transposed kernel (the same function, checked here), channels_last,
fp32, and prints both GFLOP/s. Shows where DeconvNet's
proposals lose efficiency against the 3x3 conv peak (the wide, low-resolution layers run near
it; the 64-channel 224x224 layers do not), and that writing the decoder as convolutions would
not help on this CPU.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch.nn.functional as F

# (channels in = out, map side) of the paper-width DeconvNet's 3x3 layers on a 224x224 proposal
LAYERS = ((512, 14), (512, 28), (256, 56), (128, 112), (64, 224))


def median_ms(fn, repeats: int) -> float:
    """Return the median wall time of ``fn()`` in ms after two warm-up calls."""
    fn()
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return 1000.0 * sorted(times)[len(times) // 2]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"batch {args.batch}, {args.threads} threads, fp32 channels_last")
    for channels, side in LAYERS:
        x = torch.randn(args.batch, channels, side, side).contiguous(memory_format=torch.channels_last)
        w_t = torch.randn(channels, channels, 3, 3)  # ConvTranspose2d layout (in, out, k, k)
        w_c = w_t.flip(2, 3).transpose(0, 1).contiguous()  # the same map as a Conv2d (out, in, k, k)
        w_t = w_t.contiguous(memory_format=torch.channels_last)
        w_c = w_c.contiguous(memory_format=torch.channels_last)
        bias = torch.randn(channels)
        with torch.no_grad():
            a = F.conv_transpose2d(x, w_t, bias, padding=1)
            b = F.conv2d(x, w_c, bias, padding=1)
            rel = float((a - b).abs().max() / a.abs().max())
            t_deconv = median_ms(lambda: F.conv_transpose2d(x, w_t, bias, padding=1), args.repeats)
            t_conv = median_ms(lambda: F.conv2d(x, w_c, bias, padding=1), args.repeats)
        gflop = 2 * args.batch * channels * channels * 9 * side * side / 1e9
        print(f"{channels:4d} ch @ {side:3d}x{side:<3d}  transposed {t_deconv:7.1f} ms {gflop / t_deconv * 1e3:5.0f} GFLOP/s"
              f"   conv {t_conv:7.1f} ms {gflop / t_conv * 1e3:5.0f} GFLOP/s   max rel diff {rel:.1e}")


if __name__ == "__main__":
    main()
