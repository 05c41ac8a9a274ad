"""Device and precision choices shared by training, evaluation, inference and benchmarks."""

from __future__ import annotations

import contextlib
import platform

import torch

from pixelwise.errors import PixelwiseError

PRECISIONS = ("fp32", "bf16", "fp16")


def resolve_device(name: str = "auto") -> torch.device:
    """Return the torch device for ``auto`` (CUDA when present, else CPU), ``cpu``, ``cuda[:i]``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise PixelwiseError(f"unknown device {name!r}; use auto, cpu or cuda[:N]") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise PixelwiseError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    return device


def model_device(model: torch.nn.Module) -> torch.device:
    """Return the device of the model's first parameter (CPU for a parameter-free module)."""
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def cpu_model() -> str:
    """Return the CPU model name from /proc/cpuinfo (or ``platform.processor()``)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_flags() -> set[str]:
    """Return the CPU feature flags (Linux), or an empty set."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


X86 = ("x86_64", "amd64", "i386", "i686")
NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}  # x86 instructions that compute in bf16


def cpu_supports_bf16() -> bool:
    """Return True when this CPU has native bf16 instructions (AVX512-BF16 or AMX on x86).

    oneDNN's own check (``_is_mkldnn_bf16_supported``) is also True on plain AVX-512 CPUs, where it
    emulates bf16 through fp32: measured on such a CPU (Intel Xeon without AVX512-BF16), the bf16
    engine ran FCN-8s 3.8x *slower* than fp32 channels_last (benchmarks/README.md). So on x86 the
    CPU flags decide; elsewhere, or where the flags cannot be read, oneDNN's check does.
    """
    try:
        if not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()):
            return False
    except (AttributeError, RuntimeError):
        return False
    flags = cpu_flags()
    if platform.machine().lower() in X86 and flags:
        return bool(flags & NATIVE_BF16_FLAGS)
    return True


def autocast(device: torch.device, precision: str = "fp32"):
    """Return a context manager running the forward pass in ``precision`` on ``device``.

    ``fp32`` is a no-op; ``bf16`` works on CPU and CUDA; ``fp16`` only on CUDA.
    """
    if precision not in PRECISIONS:
        raise PixelwiseError(f"unknown precision {precision!r}; valid: {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return contextlib.nullcontext()
    if precision == "fp16" and device.type != "cuda":
        raise PixelwiseError("fp16 needs CUDA; on CPU use --precision bf16")
    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type=device.type, dtype=dtype)
