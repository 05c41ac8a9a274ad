"""The machine's practical convolution peak, measured in the same run as the benchmarks.

A large 3x3 convolution is the best case for the VGG-style layers that dominate FCN and DeconvNet,
so its throughput is the reference "100%": an engine's ``peak_fraction`` is its achieved
GFLOP/s over this. Both memory layouts are tried and the faster one counts (the higher, stricter
peak). The int8 peak is the same layer quantized as the ``int8`` engine quantizes it (ONNX
Runtime, QDQ, per-channel int8 weights, uint8 activations), four in a row so that the
conversions at the graph's ends weigh little; "GFLOP/s" there counts int8 multiply-adds x 2.
"""

from __future__ import annotations

import time

import torch
from torch import nn

from pixelwise.runtime import cpu_supports_bf16


def conv_gflops(
    dtype: torch.dtype = torch.float32,
    *,
    channels: int = 256,
    side: int = 112,
    device: str = "cpu",
    min_seconds: float = 0.5,
) -> float:
    """Return the best GFLOP/s of a ``channels -> channels`` 3x3 conv on a ``side x side`` map.

    Runs at least ``min_seconds`` per memory layout (median of the timed calls).
    """
    conv = nn.Conv2d(channels, channels, 3, padding=1).to(device=device, dtype=dtype).eval()
    x = torch.randn(1, channels, side, side, device=device, dtype=dtype)
    flop = 2 * channels * channels * 9 * side * side
    best = 0.0
    for fmt in (torch.contiguous_format, torch.channels_last):
        layer, inp = conv.to(memory_format=fmt), x.contiguous(memory_format=fmt)
        times = []
        with torch.no_grad():
            for _ in range(2):
                layer(inp)  # warm-up: oneDNN picks and caches kernels
            start = time.perf_counter()
            while not times or (time.perf_counter() - start < min_seconds and len(times) < 200):
                if device != "cpu":
                    torch.cuda.synchronize()
                t0 = time.perf_counter()
                layer(inp)
                if device != "cpu":
                    torch.cuda.synchronize()
                times.append(time.perf_counter() - t0)
        times.sort()
        best = max(best, flop / times[len(times) // 2] / 1e9)
    return best


def int8_conv_gflops(*, channels: int = 256, side: int = 112, layers: int = 4, min_seconds: float = 0.5,
                     threads: int | None = None) -> float:
    """Return the GFLOP/s (2 x int8 multiply-adds per second) of ``layers`` ``channels -> channels``
    3x3 convolutions (+ ReLU) on a ``side x side`` map, quantized and run as the ``int8`` engine
    runs them (:mod:`pixelwise.fast.int8`; median of the timed calls)."""
    import tempfile
    from pathlib import Path

    from pixelwise.fast.int8 import Calibration, QuantSettings, quantize_graph
    from pixelwise.weights.onnx_engine import OnnxModel
    from pixelwise.weights.onnx_export import INPUT_NAME, OUTPUT_NAME

    torch.manual_seed(0)
    stack = nn.Sequential(*(m for _ in range(layers) for m in (nn.Conv2d(channels, channels, 3, padding=1),
                                                               nn.ReLU()))).eval()
    x = torch.randn(1, channels, side, side)
    with tempfile.TemporaryDirectory(prefix="pixelwise-peak-") as folder:
        raw, out = Path(folder) / "fp32.onnx", Path(folder) / "int8.onnx"
        with torch.no_grad():
            torch.onnx.export(stack, (x,), str(raw), input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamo=False)
        quantize_graph(raw, out, Calibration.from_batches([x]), QuantSettings(), lambda _: "encoder",
                       workdir=Path(folder))
        session = OnnxModel(out, threads=threads).session
        feed = {INPUT_NAME: x.numpy()}
        for _ in range(2):
            session.run(None, feed)
        times: list[float] = []
        start = time.perf_counter()
        while not times or (time.perf_counter() - start < min_seconds and len(times) < 200):
            t0 = time.perf_counter()
            session.run(None, feed)
            times.append(time.perf_counter() - t0)
    times.sort()
    return layers * 2 * channels * channels * 9 * side * side / times[len(times) // 2] / 1e9


def measure_peaks(*, quick: bool = False) -> dict[str, float | None]:
    """Return ``{"fp32": GFLOP/s, "bf16": GFLOP/s or None, "int8": ... or None, "cuda_bf16": ... or None}``.

    ``bf16`` is measured only where the CPU has native bf16, ``int8`` where ONNX Runtime is
    installed, ``cuda_bf16`` only with CUDA. ``quick`` uses a smaller problem and shorter runs (tests).
    """
    from pixelwise.fast.onnx import onnxruntime_available

    kw = dict(channels=64, side=56, min_seconds=0.05) if quick else {}
    peaks: dict[str, float | None] = {"fp32": conv_gflops(torch.float32, **kw)}
    peaks["bf16"] = conv_gflops(torch.bfloat16, **kw) if cpu_supports_bf16() else None
    peaks["int8"] = int8_conv_gflops(**kw) if onnxruntime_available() else None
    peaks["cuda_bf16"] = conv_gflops(torch.bfloat16, device="cuda", **kw) if torch.cuda.is_available() else None
    return peaks
