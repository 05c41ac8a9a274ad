"""Where DeconvNet's proposals lose time: every layer of the prepared network timed alone, against
the whole forward pass and the 3x3 conv peak, all measured in one run.

    .venv/bin/python benchmarks/deconv_layers.py                 # batch 8 (a batch of proposals)
    .venv/bin/python benchmarks/deconv_layers.py --engine eager  # NCHW instead of channels_last

The paper-width DeconvNet is prepared with the given engine (default ``channels_last``, the
engine ``auto`` picks for proposals). One forward pass of a batch of 224x224 proposals records
every convolution's and transposed convolution's input; each layer is then timed alone on a
tensor of that shape and layout; the 3x3 conv peak, the layers and the whole forward are measured in
``--rounds`` interleaved rounds and the best of each kept (best of ``--repeats`` calls per round).
Printed per layer shape: count, time, GFLOP/s and % of the peak; then the **kernel ceiling**:
all the network's FLOPs over the sum of its layers' lone times, i.e. the fraction of the peak the
network could reach if everything between the layers (pooling with switches, unpooling, ReLU,
copies) cost nothing. Also ``--transposed``: each decoder shape as a transposed convolution and as
the equivalent convolution (same function; they run at the same speed in oneDNN).
"""

from __future__ import annotations

import argparse
import time
from collections import defaultdict

import torch
import torch.nn.functional as F
from torch import nn


def best_s(fn, repeats: int) -> float:
    """Return the shortest wall time of ``fn()`` in seconds over ``repeats`` calls after two
    warm-up calls (the best case: layers alone and the whole network are compared alike, and the
    shortest time is the one least disturbed by other jobs on a shared machine)."""
    fn()
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def layer_inputs(module: nn.Module, x: torch.Tensor) -> list[tuple[nn.Module, torch.Tensor]]:
    """Return ``(layer, input)`` for every Conv2d/ConvTranspose2d/Linear in one forward of ``x``."""
    seen: list[tuple[nn.Module, torch.Tensor]] = []
    hooks = [m.register_forward_pre_hook(lambda m, args: seen.append((m, args[0].detach().clone(
        memory_format=torch.preserve_format))))
        for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear))]
    with torch.no_grad():
        module(x)
    for h in hooks:
        h.remove()
    return seen


def layer_flop(layer: nn.Module, x: torch.Tensor) -> float:
    """Return 2 x multiply-adds of ``layer`` on ``x`` (conv: per output pixel; transposed: per input pixel)."""
    if isinstance(layer, nn.Linear):
        return 2.0 * x.numel() // x.shape[-1] * layer.in_features * layer.out_features
    k = layer.weight[0].numel()  # in/groups * kh * kw (conv) or out/groups * kh * kw (transposed)
    with torch.no_grad():
        out = layer(x)
    if isinstance(layer, nn.ConvTranspose2d):
        return 2.0 * x.numel() * k
    return 2.0 * out.numel() * k


def shape_label(layer: nn.Module, x: torch.Tensor) -> str:
    """Return e.g. ``conv 3x3 64->64 @224`` for a layer and its input."""
    if isinstance(layer, nn.Linear):
        return f"linear {layer.in_features}->{layer.out_features}"
    kind = "deconv" if isinstance(layer, nn.ConvTranspose2d) else "conv"
    if type(layer) not in (nn.Conv2d, nn.ConvTranspose2d):  # the fc fast path (pixelwise.fast.fc)
        kind += " as GEMM"
    cin, cout = (layer.in_channels, layer.out_channels)
    return f"{kind} {layer.kernel_size[0]}x{layer.kernel_size[1]} {cin}->{cout} @{x.shape[-1]}"


def ceiling(engine: str, batch: int, repeats: int, rounds: int) -> None:
    """Print per-shape lone times and the kernel ceiling of the prepared paper-width DeconvNet.

    The conv peak, every layer alone and the whole forward are measured in each of ``rounds``
    interleaved rounds and the best of each is kept, so that all three are best cases taken in the
    same conditions (on a shared machine the throughput drifts by tens of percent within minutes).
    """
    from pixelwise.bench.cases import Case, build_model, inference_callable
    from pixelwise.bench.peak import conv_gflops

    prepared = inference_callable(build_model(Case("proposals", "deconvnet", 375, 500)), engine)
    x = torch.randn(batch, 3, 224, 224) * 60
    inner = prepared.inner
    recorded = layer_inputs(inner, x.contiguous(memory_format=torch.channels_last) if prepared.channels_last else x)
    rows: dict[str, list[float]] = defaultdict(lambda: [0, 0.0, 0.0])
    whole, peaks = [], []
    with torch.no_grad():
        lone = [float("inf")] * len(recorded)
        for _ in range(rounds):  # interleave: the peak, the layers alone, the whole network
            peaks.append(conv_gflops())
            for i, (layer, inp) in enumerate(recorded):
                lone[i] = min(lone[i], best_s(lambda: layer(inp), repeats))
            whole.append(best_s(lambda: prepared(x), repeats))
    peak = max(peaks)
    for (layer, inp), t in zip(recorded, lone):
        row = rows[shape_label(layer, inp)]
        row[0] += 1
        row[1] += t
        row[2] += layer_flop(layer, inp)
    print(f"DeconvNet width 1.0, {engine}, batch {batch} x 224x224; 3x3 conv peak {peak:.0f} GFLOP/s, the best of "
          f"{rounds} rounds ({', '.join(f'{p:.0f}' for p in peaks)})")
    print(f"{'layer shape':34s} {'n':>3s} {'ms':>8s} {'GFLOP/s':>8s} {'% peak':>7s}")
    for label, (n, t, flop) in rows.items():
        print(f"{label:34s} {n:3d} {1000 * t:8.1f} {flop / t / 1e9:8.0f} {100 * flop / t / 1e9 / peak:6.0f}%")
    total_t = sum(r[1] for r in rows.values())
    total_flop = sum(r[2] for r in rows.values())
    best_whole = min(whole)
    print(f"layers alone: {1000 * total_t:.0f} ms = {total_flop / total_t / 1e9:.0f} GFLOP/s = "
          f"{100 * total_flop / total_t / 1e9 / peak:.0f}% of the peak (the kernel ceiling)")
    print(f"whole forward: {1000 * best_whole:.0f} ms = {total_flop / best_whole / 1e9:.0f} GFLOP/s = "
          f"{100 * total_flop / best_whole / 1e9 / peak:.0f}% of the peak; between the layers: "
          f"{1000 * (best_whole - total_t):.0f} ms ({100 * (best_whole - total_t) / best_whole:.0f}%)")


# (channels in = out, map side) of the paper-width DeconvNet's 3x3 decoder layers on a 224x224 proposal
DECODER = ((512, 14), (512, 28), (256, 56), (128, 112), (64, 224))


def transposed_vs_conv(batch: int, repeats: int) -> None:
    """Print each decoder shape as a transposed convolution and as the equivalent convolution."""
    torch.manual_seed(0)
    for channels, side in DECODER:
        x = torch.randn(batch, channels, side, side).contiguous(memory_format=torch.channels_last)
        w_t = torch.randn(channels, channels, 3, 3)  # ConvTranspose2d layout (in, out, k, k)
        w_c = w_t.flip(2, 3).transpose(0, 1).contiguous(memory_format=torch.channels_last)
        w_t = w_t.contiguous(memory_format=torch.channels_last)
        bias = torch.randn(channels)
        with torch.no_grad():
            a = F.conv_transpose2d(x, w_t, bias, padding=1)
            rel = float((a - F.conv2d(x, w_c, bias, padding=1)).abs().max() / a.abs().max())
            t_deconv = best_s(lambda: F.conv_transpose2d(x, w_t, bias, padding=1), repeats)
            t_conv = best_s(lambda: F.conv2d(x, w_c, bias, padding=1), repeats)
        gflop = 2 * batch * channels * channels * 9 * side * side / 1e9
        print(f"{channels:4d} ch @ {side:3d}x{side:<3d}  transposed {1000 * t_deconv:7.1f} ms {gflop / t_deconv:5.0f} "
              f"GFLOP/s   conv {1000 * t_conv:7.1f} ms {gflop / t_conv:5.0f} GFLOP/s   max rel diff {rel:.1e}")


def main() -> None:
    """Print the layer table (and with ``--transposed`` the decoder comparison)."""
    from pixelwise.runtime import cpu_model

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--engine", default="channels_last", help="eager, channels_last, ...")
    p.add_argument("--rounds", type=int, default=3, help="interleaved rounds of peak, layers and network")
    p.add_argument("--transposed", action="store_true", help="also compare transposed and ordinary convolutions")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    print(f"{cpu_model()}, {args.threads} threads, torch {torch.__version__}")
    ceiling(args.engine, args.batch, args.repeats, args.rounds)
    if args.transposed:
        transposed_vs_conv(args.batch, args.repeats)


if __name__ == "__main__":
    main()
