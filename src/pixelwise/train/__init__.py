"""Training and evaluation: config and recipes, the loop, checkpoints and resume, DDP helpers,
DeconvNet's crop samplers and batch-norm recalibration. See ``docs/training.md``."""

from pixelwise.train.bn_recalibration import recalibrate_bn
from pixelwise.train.config import TrainConfig, load_yaml, save_yaml
from pixelwise.train.deconvnet_sampling import ObjectCrop, ProposalCrop, jitter_box
from pixelwise.train.loop import EvalSettings, StepSettings, evaluate, segmentation_loss, train_step, train_steps
from pixelwise.train.optim import build_optimizer, build_scheduler, check_lr_loss, param_groups
from pixelwise.train.recipes import RECIPES, list_recipes, resolve_config
from pixelwise.train.staged import launch
from pixelwise.train.trainer import RunResult, TrainingDiverged, fit

__all__ = [
    "EvalSettings",
    "RECIPES",
    "ObjectCrop",
    "ProposalCrop",
    "RunResult",
    "StepSettings",
    "TrainConfig",
    "TrainingDiverged",
    "build_optimizer",
    "build_scheduler",
    "check_lr_loss",
    "evaluate",
    "fit",
    "jitter_box",
    "launch",
    "list_recipes",
    "load_yaml",
    "param_groups",
    "recalibrate_bn",
    "resolve_config",
    "save_yaml",
    "segmentation_loss",
    "train_step",
    "train_steps",
]
