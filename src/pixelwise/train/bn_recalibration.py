"""Recompute batch-norm population statistics after training (DeconvNet, Noh et al. section 4.3).

During training each BN layer normalises with the statistics of its mini-batch and keeps only an
exponential moving average for inference. The paper instead computes the population mean and
variance of every BN input over many training batches once training is done. Here: every BN layer
keeps running in training mode (it normalises each batch with that batch's statistics, as during
training, so deeper layers see the inputs they were trained on), while a hook accumulates the
per-channel sum and sum of squares of its input over all pixels of ``num_batches`` batches, in
float64. At the end each layer's ``running_mean``/``running_var`` become the statistics the
``estimator`` names:

- ``pooled``: the exact mean and unbiased variance over every pixel of every batch (the variance
  includes the spread between batch means);
- ``batch_mean`` (the release's ``BN_make_INFERENCE_script.py``): the mean of the per-batch means and
  the mean of the per-batch biased variances times ``m / (m - 1)``, ``m`` the values per channel in
  one batch (batch x height x width).

Dropout and everything else stay in eval mode; no gradients. Under DDP the sums are added over all
processes, so every process ends with the same statistics.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
from torch import nn
from tqdm import tqdm

from pixelwise.metrics import all_reduce_sum_

BN_TYPES = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm)
ESTIMATORS = ("pooled", "batch_mean")


def batch_norm_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    """Return the batch-norm layers of ``model`` that track running statistics."""
    return [m for m in model.modules() if isinstance(m, BN_TYPES) and m.track_running_stats]


@torch.no_grad()
def recalibrate_bn(
    model: nn.Module,
    batches: Iterable,
    num_batches: int,
    *,
    device: torch.device | str = "cpu",
    forward: Callable[[torch.Tensor], torch.Tensor] | None = None,
    estimator: str = "pooled",
    progress: bool = False,
) -> int:
    """Set every BN layer's running statistics to the population statistics of its input over
    ``num_batches`` batches of ``batches`` (tensors ``(N, 3, H, W)`` or tuples whose first item is
    one), by ``estimator`` (``pooled`` or ``batch_mean``, see the module docstring). ``forward``
    defaults to ``model``. Returns the number of batches used (0 = nothing changed: no BN layer or
    no batch). The model is left in eval mode."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"unknown BN estimator {estimator!r}; valid: {', '.join(ESTIMATORS)}")
    layers = batch_norm_layers(model)
    if not layers or num_batches <= 0:
        return 0
    device = torch.device(device)
    forward = forward or model
    sums = {m: None for m in layers}

    def hook(module: nn.Module, inputs: tuple) -> None:
        x = inputs[0].detach().to(torch.float64)
        dims = [d for d in range(x.dim()) if d != 1]
        n = x.numel() // x.shape[1]
        if estimator == "pooled":  # pixel sums: (sum, sum of squares), count = pixels
            s = torch.stack([x.sum(dims), (x * x).sum(dims)])
        else:  # per-batch statistics: (mean, biased var x m/(m-1)), count = batches
            mean = x.mean(dims)
            s = torch.stack([mean, x.var(dims, unbiased=False) * (n / max(1, n - 1))])
            n = 1
        acc = sums[module]
        sums[module] = (s, n) if acc is None else (acc[0] + s, acc[1] + n)

    model.eval()
    for m in layers:
        m.train()
    handles = [m.register_forward_pre_hook(hook) for m in layers]
    used = 0
    try:
        bar = tqdm(total=num_batches, desc="BN statistics", disable=not progress or None, leave=False)
        for batch in batches:
            if used >= num_batches:
                break
            x = batch[0] if isinstance(batch, (tuple, list)) else batch
            forward(x.to(device))
            used += 1
            bar.update(1)
        bar.close()
    finally:
        for h in handles:
            h.remove()
        model.eval()
    # the sums are reduced over processes in a fixed layer order (same on every rank)
    for m in layers:
        acc = sums[m]
        if acc is None:
            continue
        total = torch.cat([acc[0].flatten(), torch.tensor([float(acc[1])], dtype=torch.float64,
                                                          device=acc[0].device)])
        all_reduce_sum_(total)
        c = m.num_features
        s1, s2, n = total[:c], total[c : 2 * c], total[-1]
        mean = s1 / n
        if estimator == "pooled":
            var = (s2 / n - mean * mean).clamp_min(0) * (n / (n - 1).clamp_min(1))
        else:
            var = s2 / n
        m.running_mean.copy_(mean.to(m.running_mean.dtype))
        m.running_var.copy_(var.to(m.running_var.dtype))
        if m.num_batches_tracked is not None:
            m.num_batches_tracked.fill_(used)
    return used
