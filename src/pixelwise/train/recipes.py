"""Named training recipes and the resolution of a run's options into one :class:`TrainConfig`.

All three paper recipes use ``caffe_sgd``, Caffe's own SGD arithmetic (see :mod:`pixelwise.train.optim`).

- ``paper``: FCN, CVPR 2015. SGD, momentum 0.9, minibatch 20 images, lr 1e-4, weight decay 5e-4,
  biases lr x2 without decay, loss averaged over the valid pixels. Whole images differ in size, so
  the 20 images are accumulated one at a time (``batch_size 1``, ``iter_size 20``), as Caffe does
  (Caffe then applies the decay to the summed gradient: 5e-4 / 20 per averaged gradient).
- ``heavy``: FCN, released solvers. Batch 1, momentum 0.99, weight decay 5e-4, *summed* loss, fixed
  lr 1e-10 (fcn32s), 1e-12 (fcn16s), 1e-14 (fcn8s), 1e-10 (fcn8s_atonce); 100k iterations (300k
  at once). In ``--stages`` runs each stage gets its own lr.
- ``deconvnet``: DeconvNet, ICCV 2015, as the authors' solvers and scripts run it. SGD, batch 64
  = 8 x 8 accumulation, lr 0.01, momentum 0.9, weight decay 5e-4 (Caffe: 5e-4 / 8 per averaged
  gradient; BN scales and shifts decayed too), 224x224 crops padded with black outside the image,
  the fork's BN (eps 1e-9, shift 0.001). Caffe's periodic ``step`` policy: stage 1
  (``sampling=objects``) 20k iterations, lr x0.1 every 9k (drops at 9k and 18k); stage 2
  (``sampling=proposals``) 40k iterations, x0.1 every 10k (10k, 20k, 30k); then batch-norm
  population statistics over 501 batches of 28 crops, averaged per batch as the release's
  ``BN_make_INFERENCE_script.py`` does. Without ``--sampling`` the recipe runs both stages.
- ``demo``: the small CPU settings of ``pixelwise demo`` and ``pixelwise reproduce`` on the built-in
  world (not paper-exact): fine-tuning with SGD as the papers do, but at width 1/8, on 96-pixel
  proposals, with deep supervision for DeconvNet.
- ``camvid``: CamVid road scenes from scratch on a CPU (not paper-exact): Adam, poly, 160-px crops of the
  images at half resolution (``input_scale`` 0.5; scored at full resolution), median-frequency class
  weights (as SegNet's CamVid comparison trains), width 1/4, DeconvNet on whole-image crops.

Precedence: dataclass defaults < recipe < YAML < flags. ``schedule_scale`` multiplies the steps,
lr steps and warm-up that the user did not set explicitly.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pixelwise.errors import PixelwiseError
from pixelwise.train.config import TrainConfig, lift_model_options

HEAVY_LR = {"fcn32s": 1e-10, "fcn16s": 1e-12, "fcn8s": 1e-14, "fcn8s_atonce": 1e-10}
"""The released solvers' fixed learning rates (summed loss, batch 1, momentum 0.99)."""



@dataclass(frozen=True)
class Recipe:
    """A named set of option values, with extra values per model and per sampling mode."""

    name: str
    description: str
    values: dict
    per_model: dict = field(default_factory=dict)
    per_sampling: dict = field(default_factory=dict)


_CAFFE_SGD = dict(optimizer="caffe_sgd", weight_decay=5e-4, bias_lr_mult=2.0, bias_decay=False, norm_decay=False,
                  lr_policy="fixed", ignore_index=255)

FCN_MODELS = ("fcn32s", "fcn16s", "fcn8s", "fcn8s_atonce")
_DEMO_FCN = {"pad100": False, "dropout": 0.0, "fc6_kernel": 3}  # pad-free, no dropout, fc6 for 96-px crops

RECIPES: dict[str, Recipe] = {
    r.name: r
    for r in (
        Recipe(
            "paper",
            "FCN CVPR 2015: SGD m0.9, 20 images per step (1 x 20 accumulated), lr 1e-4, wd 5e-4, "
            "bias lr x2, mean loss",
            dict(_CAFFE_SGD, lr=1e-4, momentum=0.9, loss_reduction="mean", batch_size=1, iter_size=20,
                 steps=100_000, sampling="whole"),
        ),
        Recipe(
            "heavy",
            "FCN release: batch 1, m0.99, summed loss, lr 1e-10/1e-12/1e-14 (32s/16s/8s), wd 5e-4",
            dict(_CAFFE_SGD, momentum=0.99, loss_reduction="sum", batch_size=1, iter_size=1, steps=100_000,
                 sampling="whole"),
            per_model={
                name: dict(lr=lr, **({"steps": 300_000} if name == "fcn8s_atonce" else {}))
                for name, lr in HEAVY_LR.items()
            },
        ),
        Recipe(
            "deconvnet",
            "DeconvNet ICCV 2015 as released: Caffe SGD, batch 64 (8 x 8), lr 0.01, m0.9, wd 5e-4 (BN decayed), "
            "224 black-padded crops; stage 1 objects 20k (x0.1 every 9k), stage 2 proposals 40k (x0.1 every 10k), "
            "BN statistics over 501 x 28 crops (per-batch averages)",
            dict(_CAFFE_SGD, lr=0.01, momentum=0.9, loss_reduction="mean", batch_size=8, iter_size=8,
                 crop_size=224, lr_policy="periodic", lr_stepsize=9_000, lr_gamma=0.1, norm_decay=True,
                 model_options={"caffe_bn": True}, crop_pad="black", bn_statistics="batch_mean", bn_recalib_batch_size=28,
                 stages=["deconvnet:objects", "deconvnet:proposals"]),
            per_sampling={
                "objects": dict(steps=20_000, lr_stepsize=9_000, bn_recalib_batches=0),
                "proposals": dict(steps=40_000, lr_stepsize=10_000, bn_recalib_batches=501),
            },
        ),
        Recipe(
            "demo",
            "the built-in world on a 2-core CPU: fine-tuning a pretrained backbone (pixelwise pretrain) with SGD "
            "m0.9, lr 0.01, poly, 16 images per step, width 1/8, pad-free FCN without dropout, fc6 3x3 and "
            "96-px DeconvNet proposals with deep supervision (not paper-exact)",
            dict(_CAFFE_SGD, optimizer="sgd", lr=0.01, momentum=0.9, loss_reduction="mean", width=0.125, batch_size=16, iter_size=1, steps=600, lr_policy="poly", poly_power=0.9,
                 warmup_steps=20, hflip=True, cache_data=True, eval_batch_size=20, convention="torchvision_rgb",
                 channels_last=True),
            per_model={
                **{name: dict(model_options=_DEMO_FCN) for name in FCN_MODELS},
                "deconvnet": dict(batch_size=16, model_options={"input_size": 96}, crop_size=96, object_min_side=16,
                                  deep_supervision=1.0, stages=["deconvnet:objects", "deconvnet:proposals"]),
            },
            per_sampling={
                "objects": dict(steps=600, bn_recalib_batches=0),
                "proposals": dict(steps=300, bn_recalib_batches=20, proposal_iou=[0.01, 0.7]),
            },
        ),
        Recipe(
            "camvid",
            "CamVid road scenes from scratch on a CPU (not paper-exact): Adam lr 1e-3, poly, 8 crops of 160 px per "
            "step from the images halved to 180x240 (input_scale 0.5, scored at 360x480), flips, median-frequency "
            "class weights as SegNet's CamVid table, width 1/4, pad-free FCN without dropout, fc6 5x5 / "
            "160-px DeconvNet on the whole image with deep supervision and BN statistics",
            dict(optimizer="adam", lr=1e-3, momentum=0.9, weight_decay=5e-4, bias_lr_mult=1.0, bias_decay=False,
                 loss_reduction="mean", ignore_index=255, width=0.25, batch_size=8, iter_size=1, steps=800,
                 lr_policy="poly", poly_power=0.9, warmup_steps=20, input_scale=0.5, crop_size=160, hflip=True,
                 class_weights="median-freq", cache_data=True, eval_batch_size=8, convention="torchvision_rgb",
                 channels_last=True, sampling="whole"),
            per_model={
                **{name: dict(model_options={"pad100": False, "dropout": 0.0, "fc6_kernel": 5})
                   for name in FCN_MODELS},
                "deconvnet": dict(model_options={"input_size": 160}, deep_supervision=1.0, bn_recalib_batches=20),
            },
        ),
    )
}


def list_recipes() -> list[str]:
    """Return the recipe names."""
    return list(RECIPES)


def get_recipe(name: str) -> Recipe:
    """Return the recipe ``name``; an unknown name lists the valid ones."""
    try:
        return RECIPES[name]
    except KeyError:
        raise PixelwiseError(f"unknown recipe {name!r}; valid: {', '.join(RECIPES)}") from None


def recipe_values(name: str, *, model: str, sampling: str, user_keys: set[str] = frozenset()) -> dict:
    """Return the option values recipe ``name`` sets for ``model`` trained with ``sampling``.

    A recipe's ``stages`` are left out when the user chose ``sampling`` or ``stages`` themselves.
    """
    recipe = get_recipe(name)
    values = dict(recipe.values)
    values.update(recipe.per_model.get(model, {}))
    if name == "heavy" and model not in recipe.per_model and "lr" not in user_keys:
        raise PixelwiseError(
            f"recipe 'heavy' has learning rates for {', '.join(HEAVY_LR)} only; give --lr for {model!r} "
            "(or use --recipe paper / deconvnet)"
        )
    chosen = sampling if "sampling" in user_keys else values.get("sampling", sampling)
    values.update(recipe.per_sampling.get(chosen, {}))
    if "sampling" in user_keys or "stages" in user_keys:
        values.pop("stages", None)
    return values


def resolve_config(overrides: dict, *, source: str = "options") -> TrainConfig:
    """Return the config for ``overrides`` (YAML merged with flags): defaults < recipe < overrides.

    The recipe's schedule (``steps``, ``lr_steps``, ``warmup_steps``) is multiplied by
    ``schedule_scale`` unless the user set that key.
    """
    overrides = lift_model_options(overrides, source=source)
    values = TrainConfig().to_dict()
    name = overrides.get("recipe")
    if name:
        model = overrides.get("model", values["model"])
        sampling = overrides.get("sampling", values["sampling"])
        values.update(recipe_values(name, model=model, sampling=sampling, user_keys=set(overrides)))
    scale = float(overrides.get("schedule_scale", values["schedule_scale"]))
    if scale <= 0:
        raise PixelwiseError(f"{source}: schedule_scale must be > 0, got {scale}")
    if scale != 1.0:
        if "steps" not in overrides:
            values["steps"] = max(1, round(values["steps"] * scale))
        if "lr_steps" not in overrides:
            values["lr_steps"] = [max(1, round(s * scale)) for s in values["lr_steps"]]
        if "lr_stepsize" not in overrides and values["lr_stepsize"]:
            values["lr_stepsize"] = max(1, round(values["lr_stepsize"] * scale))
        if "warmup_steps" not in overrides:
            values["warmup_steps"] = round(values["warmup_steps"] * scale)
    model_options = {**values["model_options"], **(overrides.get("model_options") or {})}
    values.update(overrides)
    values["model_options"] = model_options  # the recipe's builder options, the given ones on top
    return TrainConfig.from_dict(values, source=source)
