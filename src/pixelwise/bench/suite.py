"""Benchmark plans: the full paper-size suite, its tiny ``quick`` version, and single-model plans.

A plan is a list of ``(Case, engines)``. The full suite covers every model at the papers' sizes
(FCN 500x500, FCN-8s also run by the pytorch-fcn peer ``torchfcn``; DeconvNet 1, 8 and 50
proposals of a 500x375 image through the proposal pipeline), an FCN-8s 320x320 training step and
FCN-8s on a 2048x2048 image (tiled, memory), and is sized for the project's 2-core CPU (fewer
repeats at the big sizes): 9 minutes with AMX, 18 without (2026 runs). The quick plan never needs
the network (no peer: its widths are not the paper's).
"""

from __future__ import annotations

from pixelwise.bench.cases import IMAGE_SIZE, Case
from pixelwise.bench.runner import DEFAULT_ENGINES, with_peer

ALL_INFER = list(DEFAULT_ENGINES)  # reference, eager, channels_last, bf16, onnxruntime, int8, cuda
TRAIN = ["reference", "eager", "channels_last", "bf16", "cuda"]
QUICK_WIDTH = 0.0625


def full_plan() -> list[tuple[Case, list[str]]]:
    """Return the paper-size suite (see the module docstring)."""
    h, w = IMAGE_SIZE
    fcn8s = Case("infer", "fcn8s", 500, 500, repeats=3)
    plan = [
        (fcn8s, with_peer(fcn8s, ALL_INFER)),  # + pytorch-fcn
        (Case("proposals", "deconvnet", h, w, batch=1, repeats=5), ALL_INFER),
        (Case("proposals", "deconvnet", h, w, batch=8, repeats=2), ["reference", "channels_last", "bf16", "onnxruntime", "int8", "cuda"]),
        (Case("proposals", "deconvnet", h, w, batch=50, repeats=0), ["channels_last", "bf16", "int8", "cuda"]),
        (Case("train", "fcn8s", 320, 320, repeats=2), TRAIN),
        (Case("tiled", "fcn8s", 2048, 2048, tile=768, repeats=0), ["channels_last"]),
    ]
    for name in ("fcn32s", "fcn16s", "fcn8s_atonce"):
        plan.append((Case("infer", name, 500, 500, repeats=2), ["channels_last"]))
    # the ensemble's members are compared with the reference above; here only its total time
    plan.append((Case("proposals", "edeconvnet", h, w, batch=50, repeats=0, ref=False), ["channels_last"]))
    return plan


def quick_plan() -> list[tuple[Case, list[str]]]:
    """Return the same kinds of cases at tiny widths and sizes (seconds; used by the tests)."""
    q = dict(model_width=QUICK_WIDTH, num_classes=8, warmup=1, repeats=2)
    return [
        (Case("infer", "fcn8s", 96, 96, **q), ALL_INFER),
        (Case("proposals", "deconvnet", 160, 200, batch=3, **q), ALL_INFER),
        (Case("train", "fcn8s", 64, 64, **q), TRAIN),
        (Case("tiled", "fcn8s", 200, 256, tile=128, **{**q, "repeats": 0}), ["channels_last"]),
        (Case("proposals", "edeconvnet", 160, 200, batch=2, **q), ["channels_last"]),
    ]
