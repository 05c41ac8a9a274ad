"""Optimiser, parameter groups, learning-rate schedules and the lr / loss-normalisation check.

Parameter groups follow the Caffe prototxts of both papers: weights get the base lr and weight
decay; biases get ``bias_lr_mult`` x lr (2 in the papers) and no decay; batch-norm scales/shifts
get the base lr, and weight decay only with ``norm_decay`` (the DeconvNet release decays them).
Frozen parameters (FCN's fixed bilinear upsampling) are left out.

``caffe_sgd`` is SGD with Caffe's arithmetic (the solvers of both releases): the weight decay is
added to the gradient *summed* over ``iter_size`` before the division by ``iter_size``, so its
effective value is ``weight_decay / iter_size``; and the learning rate goes into the momentum
history (``h = lr * g + m * h; w -= h``), so an lr drop slows the step gradually, where torch's SGD
(``b = g + m * b; w -= lr * b``) rescales the whole history at once. With a constant lr and
``iter_size`` 1 the two are the same update.
"""

from __future__ import annotations

import torch
from torch import nn

from pixelwise.train.config import TrainConfig

NORM_TYPES = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm, nn.LayerNorm, nn.InstanceNorm2d)

# The effective step-size range outside which the lr / loss pairing is almost surely wrong
# (see effective_step_size): above it SGD blows up to NaN, below it nothing moves.
STEP_SIZE_TOO_HIGH = 1.0
STEP_SIZE_TOO_LOW = 1e-7


def param_groups(
    model: nn.Module,
    *,
    lr: float,
    weight_decay: float,
    bias_lr_mult: float = 1.0,
    bias_decay: bool = True,
    norm_decay: bool = True,
) -> list[dict]:
    """Return optimiser parameter groups ``[{"params", "lr", "weight_decay", "name"}, ...]``:
    weights, biases and normalisation parameters (empty groups are dropped)."""
    norm_params = set()
    for module in model.modules():
        if isinstance(module, NORM_TYPES):
            norm_params.update(id(p) for p in module.parameters(recurse=False))
    weights, biases, norms = [], [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if id(param) in norm_params:
            norms.append(param)
        elif name.endswith("bias"):
            biases.append(param)
        else:
            weights.append(param)
    groups = [
        {"name": "weights", "params": weights, "lr": lr, "weight_decay": weight_decay},
        {"name": "biases", "params": biases, "lr": lr * bias_lr_mult,
         "weight_decay": weight_decay if bias_decay else 0.0},
        {"name": "norms", "params": norms, "lr": lr, "weight_decay": weight_decay if norm_decay else 0.0},
    ]
    return [g for g in groups if g["params"]]


class CaffeSGD(torch.optim.Optimizer):
    """SGD with momentum as Caffe's ``SGDSolver`` computes it, per parameter::

        g = grad + weight_decay * w      (grad: the gradient averaged over the accumulated passes)
        h = lr * g + momentum * h
        w = w - h

    :func:`build_optimizer` divides the decay by ``iter_size`` (see the module docstring).
    """

    def __init__(self, params, lr: float, momentum: float = 0.9, weight_decay: float = 0.0) -> None:
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay))

    @torch.no_grad()
    def step(self, closure=None):
        """Apply one update to every parameter with a gradient; returns ``closure()`` if given."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, momentum, decay = group["lr"], group["momentum"], group["weight_decay"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                g = p.grad.add(p, alpha=decay) if decay else p.grad
                state = self.state[p]
                if "history" not in state:
                    state["history"] = torch.zeros_like(p)
                history = state["history"]
                history.mul_(momentum).add_(g, alpha=lr)
                p.sub_(history)
        return loss


def build_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    """Return the SGD, Caffe SGD or Adam optimiser over :func:`param_groups` of ``model``."""
    # Caffe adds the decay to the gradient summed over iter_size, then divides the sum by iter_size
    decay = cfg.weight_decay / cfg.iter_size if cfg.optimizer == "caffe_sgd" else cfg.weight_decay
    groups = param_groups(
        model,
        lr=cfg.lr,
        weight_decay=decay,
        bias_lr_mult=cfg.bias_lr_mult,
        bias_decay=cfg.bias_decay,
        norm_decay=cfg.norm_decay,
    )
    if cfg.optimizer == "adam":
        # Adam's weight decay is plain L2 here (like SGD's), decoupled decay would change the recipe
        return torch.optim.Adam(groups, lr=cfg.lr, betas=(cfg.momentum, 0.999))
    if cfg.optimizer == "caffe_sgd":
        return CaffeSGD(groups, lr=cfg.lr, momentum=cfg.momentum)
    return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum)


def lr_factor(step: int, cfg: TrainConfig) -> float:
    """Return the multiplier of the base lr at optimiser step ``step`` (0-based)."""
    if cfg.warmup_steps and step < cfg.warmup_steps:
        warm = (step + 1) / cfg.warmup_steps
    else:
        warm = 1.0
    if cfg.lr_policy == "step":
        return warm * cfg.lr_gamma ** sum(1 for s in cfg.lr_steps if step >= s)
    if cfg.lr_policy == "periodic":  # Caffe's "step": x gamma every lr_stepsize steps
        return warm * cfg.lr_gamma ** (step // cfg.lr_stepsize)
    if cfg.lr_policy == "poly":
        return warm * max(0.0, 1.0 - step / max(1, cfg.steps)) ** cfg.poly_power
    return warm


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig) -> torch.optim.lr_scheduler.LambdaLR:
    """Return a per-step scheduler applying :func:`lr_factor` to every group's lr."""
    # a closure (not an object) so that LambdaLR's state_dict stays plain (no pickled callables)
    def factor(step: int) -> float:
        return lr_factor(step, cfg)

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def effective_step_size(lr: float, *, momentum: float, loss_reduction: str, pixels_per_image: int,
                        optimizer: str = "sgd") -> float:
    """Return the step size an lr amounts to once the loss normalisation is taken into account.

    The rule: with a *summed* loss every pixel adds its own gradient, so the update is about
    ``pixels_per_image`` times larger than with a *mean* loss at the same lr; SGD momentum ``m``
    multiplies the long-run step by ``1 / (1 - m)``. So::

        effective = lr x (pixels_per_image if summed else 1) / (1 - momentum)

    Paper settings land between 1e-7 and 1: ``paper`` 1e-4 / 0.1 = 1e-3; ``heavy`` fcn32s at
    500x500: 1e-10 x 250000 / 0.01 = 2.5e-3, fcn8s 1e-14 -> 2.5e-7; ``deconvnet`` 0.01 / 0.1 = 0.1.
    A summed loss with lr 1e-4 gives about 2500 (diverges to NaN); a mean loss with lr 1e-10 gives
    1e-9 (learns nothing). Adam normalises gradient scale, so the rule does not apply to it.
    """
    scale = pixels_per_image if loss_reduction == "sum" else 1
    if optimizer == "adam":
        return lr
    return lr * scale / max(1e-12, 1.0 - momentum)


def check_lr_loss(cfg: TrainConfig, pixels_per_image: int) -> str | None:
    """Return a warning when ``cfg.lr`` does not fit ``cfg.loss_reduction`` (see
    :func:`effective_step_size`), else None."""
    if cfg.optimizer == "adam":
        return None
    eff = effective_step_size(cfg.lr, momentum=cfg.momentum, loss_reduction=cfg.loss_reduction,
                              pixels_per_image=pixels_per_image)
    where = (f"lr {cfg.lr:g} with a {cfg.loss_reduction} loss over {pixels_per_image} pixels per image and "
             f"momentum {cfg.momentum:g} is an effective step of {eff:.3g}")
    if eff > STEP_SIZE_TOO_HIGH:
        if cfg.loss_reduction == "sum":
            fix = ("use --loss-reduction mean (--recipe paper, lr 1e-4) or a summed-loss lr near "
                   f"{STEP_SIZE_TOO_HIGH * 1e-3 * (1 - cfg.momentum) / pixels_per_image:.0e} (--recipe heavy)")
        else:
            fix = "lower --lr"
        return f"{where}, above {STEP_SIZE_TOO_HIGH:g}: training will likely diverge to NaN; {fix}"
    if eff < STEP_SIZE_TOO_LOW:
        if cfg.loss_reduction == "mean":
            fix = ("a mean loss needs an lr near 1e-4 (--recipe paper); lrs like 1e-10 belong to the summed "
                   "loss of --recipe heavy (--loss-reduction sum)")
        else:
            fix = "raise --lr"
        return f"{where}, below {STEP_SIZE_TOO_LOW:g}: the model will barely change; {fix}"
    return None
