"""Config, YAML and recipe resolution: precedence, typing, per-model and per-stage values."""

import pytest
import torch

from pixelwise.errors import PixelwiseError
from pixelwise.train.config import TrainConfig, load_yaml, save_yaml
from pixelwise.train.recipes import HEAVY_LR, RECIPES, resolve_config
from pixelwise.train.staged import stage_dirs, stage_options, stages_from_spec


def test_yaml_round_trip_and_typing(tmp_path):
    cfg = resolve_config({"model": "fcn16s", "lr_steps": [5, 9], "data_options": {"size": 32}})
    path = save_yaml(cfg, tmp_path / "c.yaml")
    again = TrainConfig.from_dict(load_yaml(path))
    assert again == cfg
    # strings from the command line are typed by the field
    (tmp_path / "d.yaml").write_text("lr: '1e-3'\nlr_steps: 3,7\nhflip: yes\nnum_classes: null\n")
    values = load_yaml(tmp_path / "d.yaml")
    assert values == {"lr": 1e-3, "lr_steps": [3, 7], "hflip": True, "num_classes": None}


def test_unknown_and_bad_values_are_one_line_errors(tmp_path):
    (tmp_path / "bad.yaml").write_text("learning_rate: 0.1\n")
    with pytest.raises(PixelwiseError, match="unknown option.*learning_rate"):
        load_yaml(tmp_path / "bad.yaml")
    with pytest.raises(PixelwiseError, match="batch_size must be >= 1"):
        resolve_config({"batch_size": 0})
    with pytest.raises(PixelwiseError, match="lr_policy='cosine' is not one of"):
        resolve_config({"lr_policy": "cosine"})
    with pytest.raises(PixelwiseError, match="unknown recipe 'fast'"):
        resolve_config({"recipe": "fast"})
    with pytest.raises(PixelwiseError, match="needs crop_size"):
        resolve_config({"sampling": "objects"})


def test_precedence_defaults_recipe_overrides():
    assert resolve_config({}).lr == TrainConfig().lr
    paper = resolve_config({"recipe": "paper"})
    assert (paper.lr, paper.momentum, paper.batch_size * paper.iter_size, paper.weight_decay) == (1e-4, 0.9, 20, 5e-4)
    assert paper.loss_reduction == "mean" and paper.bias_lr_mult == 2.0 and not paper.bias_decay
    assert resolve_config({"recipe": "paper", "lr": 3e-4}).lr == 3e-4  # flags beat the recipe


@pytest.mark.parametrize("model", sorted(HEAVY_LR))
def test_heavy_recipe_per_model_lr(model):
    cfg = resolve_config({"recipe": "heavy", "model": model})
    assert cfg.lr == HEAVY_LR[model]
    assert (cfg.batch_size, cfg.momentum, cfg.loss_reduction, cfg.ignore_index) == (1, 0.99, "sum", 255)
    assert cfg.steps == (300_000 if model == "fcn8s_atonce" else 100_000)


def test_heavy_recipe_rejects_models_without_lr():
    with pytest.raises(PixelwiseError, match="give --lr"):
        resolve_config({"recipe": "heavy", "model": "deconvnet"})


def test_deconvnet_recipe_two_stages_scaled():
    cfg = resolve_config({"recipe": "deconvnet", "model": "deconvnet", "schedule_scale": 0.01})
    assert cfg.stages == ["deconvnet:objects", "deconvnet:proposals"]
    ov = {"recipe": "deconvnet", "model": "deconvnet", "schedule_scale": 0.01, "out": "o"}
    plans = stage_options(stages_from_spec(ov, cfg), "o")
    s1, s2 = (resolve_config(p) for p in plans)
    assert (s1.sampling, s1.steps, s1.lr_stepsize, s1.bn_recalib_batches) == ("objects", 200, 90, 0)
    assert (s2.sampling, s2.steps, s2.lr_stepsize) == ("proposals", 400, 100)
    assert s2.bn_recalib_batches == 501 and s2.init_from.endswith("deconvnet_objects/last.pt")
    assert (s1.batch_size, s1.iter_size, s1.lr, s1.crop_size, s1.lr_policy) == (8, 8, 0.01, 224, "periodic")
    # the release's solver and scripts: Caffe SGD, BN decayed, fork BN, black crops, per-batch BN statistics
    assert (s1.optimizer, s1.norm_decay, s1.model_options["caffe_bn"], s1.crop_pad) == ("caffe_sgd", True, True, "black")
    assert (s2.bn_statistics, s2.bn_recalib_batch_size) == ("batch_mean", 28)
    full = resolve_config({"recipe": "deconvnet", "model": "deconvnet", "sampling": "proposals"})
    assert (full.steps, full.lr_stepsize) == (40_000, 10_000)  # drops at 10k, 20k, 30k
    # an explicit sampling means one stage
    assert resolve_config({"recipe": "deconvnet", "model": "deconvnet", "sampling": "objects"}).stages == []
    # explicit steps are not scaled
    assert resolve_config({"recipe": "deconvnet", "sampling": "objects", "schedule_scale": 0.01, "steps": 7}).steps == 7


def test_heavy_stages_get_their_own_lr():
    ov = {"recipe": "heavy", "stages": ["fcn32s", "fcn16s", "fcn8s"], "out": "runs/x"}
    cfg = resolve_config(ov)
    lrs = [resolve_config(p).lr for p in stage_options(stages_from_spec(ov, cfg), cfg.out)]
    assert lrs == [1e-10, 1e-12, 1e-14]
    assert stage_dirs(["deconvnet:objects", "fcn8s", "fcn8s"]) == ["deconvnet_objects", "fcn8s", "fcn8s_2"]


def test_every_recipe_resolves_and_is_documented():
    for name, recipe in RECIPES.items():
        model = "deconvnet" if name == "deconvnet" else "fcn8s"
        assert resolve_config({"recipe": name, "model": model}).recipe == name
        assert recipe.description


def test_deconvnet_recipe_reaches_the_model_and_the_crops():
    from pixelwise.train.data import train_transform
    from pixelwise.train.model_setup import build_model

    cfg = resolve_config({"recipe": "deconvnet", "model": "deconvnet", "sampling": "proposals", "width": 0.03125})
    model = build_model(cfg, 3)
    assert model.caffe_bn and model.proposal_pad == "black"  # inference pads proposals as training did
    assert all(m.eps == 1e-9 for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d))
    assert train_transform(cfg).pad == "black"
    demo = resolve_config({"recipe": "demo", "model": "deconvnet", "sampling": "objects"})
    assert (demo.optimizer, demo.crop_pad, demo.model_options.get("caffe_bn", False)) == ("sgd", "mean", False)  # the demo is unchanged
    assert build_model(demo, 3).proposal_pad == "mean"


def test_builder_options_live_in_model_options():
    # flags / flat keys are read into model_options and reach the factory unchanged
    cfg = resolve_config({"model": "fcn8s", "pad100": False, "fc6_kernel": "3", "width": 0.03125})
    assert cfg.model_options == {"pad100": False, "fc6_kernel": 3}
    assert "pad100" not in cfg.to_dict()
    from pixelwise.train.model_setup import model_kwargs

    assert model_kwargs(cfg) == {"pad100": False, "fc6_kernel": 3}
    # the recipe's builder options, the given ones on top
    demo = resolve_config({"recipe": "demo", "model": "fcn8s", "model_options": {"fc6_kernel": 5}})
    assert demo.model_options == {"pad100": False, "dropout": 0.0, "fc6_kernel": 5}
    assert resolve_config({"recipe": "demo", "model": "deconvnet"}).model_options == {"input_size": 96}
    # an option of the other family is a one-line error naming it
    with pytest.raises(PixelwiseError, match="input_size: deconvnet option"):
        model_kwargs(resolve_config({"model": "fcn8s", "input_size": 96}))
    # a config written before the split (every builder option at top level, defaults included) still reads
    old = {**TrainConfig().to_dict(), "model": "deconvnet", "pad100": True, "upsampling": "fixed", "dropout": None,
           "fc6_kernel": None, "input_size": 96, "caffe_bn": False}
    old.pop("model_options")
    assert TrainConfig.from_dict(old).model_options == {"input_size": 96}
