"""Parameter groups, lr schedules, the lr / loss-normalisation rule and the loss itself."""

import math

import pytest
import torch

import pixelwise
from pixelwise.errors import PixelwiseError
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


def test_periodic_policy_is_caffes_step():
    # Caffe "step": lr x gamma^(iter // stepsize); the release's stage 1 (stepsize 9k of 20k) drops at 9k and 18k
    cfg = TrainConfig(lr=0.01, lr_policy="periodic", lr_stepsize=9000, lr_gamma=0.1, steps=20000)
    from pixelwise.train.optim import lr_factor

    factors = {step: lr_factor(step, cfg) for step in (0, 8999, 9000, 17999, 18000, 19999)}
    assert factors == pytest.approx({0: 1, 8999: 1, 9000: 0.1, 17999: 0.1, 18000: 0.01, 19999: 0.01})
    assert lrs(TrainConfig(lr=1.0, lr_policy="periodic", lr_stepsize=2, steps=6), 6) == pytest.approx(
        [1, 1, 0.1, 0.1, 0.01, 0.01])
    with pytest.raises(PixelwiseError, match="lr_stepsize"):
        TrainConfig.from_dict({"lr_policy": "periodic"})


def test_one_accumulated_caffe_sgd_step_equals_caffes_arithmetic():
    # Caffe SGDSolver with iter_size 2: diff = g1 + g2 (summed); diff += decay * w; h = lr/iter_size * diff
    # + m * h; w -= h. Two steps, with an lr change between them, so the history term counts too.
    torch.manual_seed(0)
    model = torch.nn.Conv2d(2, 3, 1)
    cfg = TrainConfig(optimizer="caffe_sgd", lr=0.1, momentum=0.9, weight_decay=0.01, iter_size=2, bias_lr_mult=2.0,
                      bias_decay=False, lr_policy="periodic", lr_stepsize=1, lr_gamma=0.5, steps=2)
    opt, sched = build_optimizer(model, cfg), None
    sched = build_scheduler(opt, cfg)
    w, b = model.weight.detach().clone(), model.bias.detach().clone()
    hw, hb = torch.zeros_like(w), torch.zeros_like(b)
    for step in range(2):
        xs = [torch.randn(4, 2, 3, 3) for _ in range(2)]
        grads_w, grads_b = torch.zeros_like(w), torch.zeros_like(b)
        opt.zero_grad()
        for x in xs:  # the training loop's accumulation: each pass's loss divided by iter_size
            loss = model(x).square().mean()
            (loss / cfg.iter_size).backward()
            probe = torch.nn.Conv2d(2, 3, 1)
            probe.load_state_dict({"weight": w, "bias": b})
            probe(x).square().mean().backward()
            grads_w += probe.weight.grad
            grads_b += probe.bias.grad
        rate = 0.1 * 0.5 ** step
        hw = rate / 2 * (grads_w + 0.01 * w) + 0.9 * hw  # weights: lr mult 1, decay mult 1
        hb = 2 * rate / 2 * grads_b + 0.9 * hb  # biases: lr mult 2, decay mult 0
        w, b = w - hw, b - hb
        opt.step()
        sched.step()
        torch.testing.assert_close(model.weight.detach(), w, rtol=1e-6, atol=1e-7)
        torch.testing.assert_close(model.bias.detach(), b, rtol=1e-6, atol=1e-7)
    # torch's SGD differs: full decay, and the lr drop rescales the whole history
    model2 = torch.nn.Conv2d(2, 3, 1)
    assert build_optimizer(model2, cfg.replace(optimizer="sgd")).param_groups[0]["weight_decay"] == 0.01
    assert opt.param_groups[0]["weight_decay"] == 0.005


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
