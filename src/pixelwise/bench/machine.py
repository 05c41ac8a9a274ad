"""A short description of the machine a benchmark ran on (recorded with every result set)."""

from __future__ import annotations

import os

import torch

from pixelwise.runtime import cpu_flags, cpu_model


def machine_info() -> dict:
    """Return ``{cpu, cores, threads, isa, torch, onnxruntime, cuda}`` for the results header."""
    flags = cpu_flags()
    isa = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    try:
        import onnxruntime

        ort_version = onnxruntime.__version__
    except ImportError:
        ort_version = None
    cuda = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    return {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "isa": isa,
        "torch": torch.__version__,
        "onnxruntime": ort_version,
        "cuda": cuda,
    }


def describe(info: dict) -> str:
    """Return a one-line human description of :func:`machine_info`."""
    text = f"{info['cpu']}, {info['cores']} cores, {info['threads']} threads, {'/'.join(info['isa']) or 'no AVX'}"
    text += f"; torch {info['torch']}"
    if info.get("onnxruntime"):
        text += f", onnxruntime {info['onnxruntime']}"
    if info.get("cuda"):
        text += f"; GPU {info['cuda']}"
    return text
