"""Parameter groups, lr schedules, the lr / loss-normalisation rule and the loss itself."""

import math

import pytest
import torch

import pixelwise
from pixelwise.train.config import TrainConfig
from pixelwise.train.loop import segmentation_loss
from pixelwise.train.optim import build_optimizer, build_scheduler, check_lr_loss, effective_step_size, param_groups


def test_param_groups_bias_lr_and_decay_exclusions():
    model = pixelwise.create_model("deconvnet", num_classes=3, width=0.03125)
    groups = {g["name"]: g for g in param_groups(model, lr=0.01, weight_decay=5e-4, bias_lr_mult=2.0,
                                                  bias_decay=False, norm_decay=False)}
    assert groups["weights"]["lr"] == 0.01 and groups["weights"]["weight_decay"] == 5e-4
    assert groups["biases"]["lr"] == 0.02 and groups["biases"]["weight_decay"] == 0.0
    assert groups["norms"]["weight_decay"] == 0.0
    bn = model.backbone.conv1_1_bn
    assert any(p is bn.weight for p in groups["norms"]["params"])
    assert any(p is bn.bias for p in groups["norms"]["params"])
    assert not any(p is bn.bias for p in groups["biases"]["params"])
    n_trainable = sum(1 for p in model.parameters() if p.requires_grad)
    assert sum(len(g["params"]) for g in groups.values()) == n_trainable


def test_frozen_upsampling_is_not_optimised():
    model = pixelwise.create_model("fcn8s", num_classes=3, width=0.03125)
    params = [p for g in param_groups(model, lr=1e-4, weight_decay=0) for p in g["params"]]
    assert not any(p is model.upscore8.weight for p in params)


def lrs(cfg, steps):
    model = torch.nn.Conv2d(1, 1, 1)
    opt = build_optimizer(model, cfg)
    sched = build_scheduler(opt, cfg)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_step_and_poly_schedules():
    step = lrs(TrainConfig(lr=1.0, lr_policy="step", lr_steps=[2, 4], lr_gamma=0.1, steps=6), 6)
    assert step == pytest.approx([1, 1, 0.1, 0.1, 0.01, 0.01])
    poly = lrs(TrainConfig(lr=1.0, lr_policy="poly", poly_power=1.0, steps=4), 4)
    assert poly == pytest.approx([1, 0.75, 0.5, 0.25])
    warm = lrs(TrainConfig(lr=1.0, warmup_steps=4, steps=6), 6)
    assert warm == pytest.approx([0.25, 0.5, 0.75, 1, 1, 1])


def test_effective_step_size_rule_matches_the_papers():
    # paper: mean loss, lr 1e-4, momentum 0.9
    assert effective_step_size(1e-4, momentum=0.9, loss_reduction="mean", pixels_per_image=250000) == pytest.approx(1e-3)
    # heavy FCN-32s on 500x500: 1e-10 * 250000 / 0.01
    assert effective_step_size(1e-10, momentum=0.99, loss_reduction="sum", pixels_per_image=250000) == pytest.approx(2.5e-3)
    ok = [TrainConfig(lr=1e-4), TrainConfig(lr=1e-10, momentum=0.99, loss_reduction="sum"),
          TrainConfig(lr=1e-14, momentum=0.99, loss_reduction="sum"), TrainConfig(lr=0.01)]
    assert all(check_lr_loss(c, 500 * 500) is None for c in ok)
    high = check_lr_loss(TrainConfig(lr=1e-4, momentum=0.99, loss_reduction="sum"), 500 * 500)
    assert "diverge to NaN" in high and "--loss-reduction mean" in high
    low = check_lr_loss(TrainConfig(lr=1e-10, momentum=0.99, loss_reduction="mean"), 500 * 500)
    assert "barely change" in low and "--recipe heavy" in low
    assert check_lr_loss(TrainConfig(lr=1e-10, optimizer="adam"), 500 * 500) is None


def test_loss_normalisations():
    torch.manual_seed(0)
    logits = torch.randn(2, 4, 5, 6)
    target = torch.randint(0, 4, (2, 5, 6))
    target[0, 0, :] = 255
    per_pixel = torch.nn.functional.cross_entropy(logits, target, ignore_index=255, reduction="none")
    valid = (target != 255).sum()
    assert segmentation_loss(logits, target) == pytest.approx(float(per_pixel.sum() / valid))
    assert segmentation_loss(logits, target, reduction="sum") == pytest.approx(float(per_pixel.sum() / 2))
    all_ignored = torch.full_like(target, 255)
    loss = segmentation_loss(logits.requires_grad_(), all_ignored)
    assert loss.item() == 0.0 and not math.isnan(loss.item())
