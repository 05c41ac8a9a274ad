"""Parameter and multiply-accumulate counts, measured without allocating weights."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module) -> int:
    """Return the number of parameters (works on meta-device models)."""
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, height: int, width: int, *, batch: int = 1) -> int:
    """Return forward FLOPs (2 x multiply-accumulates) for a ``(batch, 3, height, width)`` input.

    Runs the model on the meta device, so no memory is allocated and nothing is computed.
    """
    meta = model
    if next(model.parameters()).device.type != "meta":
        meta = copy.deepcopy(model).to("meta")  # never touch the caller's weights
    x = torch.empty(batch, 3, height, width, device="meta")
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        meta(x)
    return int(counter.get_total_flops())
