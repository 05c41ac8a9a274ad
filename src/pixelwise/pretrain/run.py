"""Pretraining settings, the training run, and the on-disk cache of its result.

A run writes into its folder ``vgg16_bn.pth`` (or ``vgg16.pth`` without batch norm: a torchvision
VGG16 state dict for ``--backbone-weights``) and ``pretrain.json`` (settings, held-out accuracy,
loss curve, time). :func:`cached_pretrain` keeps one folder per distinct settings in the user's
cache (:func:`pixelwise.cache.cache_dir`), so the demo and ``reproduce`` pay for it once.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from pixelwise import __version__
from pixelwise.cache import cache_dir, settings_key
from pixelwise.checkpoint import atomic_file
from pixelwise.data import build_dataset
from pixelwise.data.synthetic import DEFAULT_WORLD
from pixelwise.errors import PixelwiseError
from pixelwise.models.vgg import MIN_CHANNELS
from pixelwise.pretrain.classifier import VGGClassifier, torchvision_state_dict
from pixelwise.pretrain.crops import ObjectCropClassification
from pixelwise.train.data import CachedView
from pixelwise.train.deconvnet_sampling import ObjectCrop
from pixelwise.train.optim import param_groups

CACHE_FORMAT = 1
"""Bumped whenever the world, the crops or the training change what a cached result would be."""


@dataclass(frozen=True)
class PretrainConfig:
    """Everything a pretraining run depends on (the cache key), plus ``threads``/``progress``."""

    world: str = DEFAULT_WORLD
    image_size: int = 96
    num_classes: int = 8  # of the segmentation task (background + shapes); the classifier has one less
    data_seed: int = 0
    scenes: int = 2000
    val_scenes: int = 200
    crop_size: int = 96
    min_visible: int = 64
    width: float = 0.125
    min_channels: int = MIN_CHANNELS
    batch_norm: bool = True
    dropout: float = 0.0
    optimizer: str = "adam"
    steps: int = 800
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 50
    channels_last: bool = True
    seed: int = 0
    threads: int = field(default=0, compare=False)
    progress: bool = field(default=True, compare=False)

    def key_settings(self) -> dict:
        """Return the settings that decide the result (everything but threads and progress)."""
        values = {f.name: getattr(self, f.name) for f in fields(self) if f.compare}
        return {**values, "cache_format": CACHE_FORMAT, "pixelwise": __version__}

    @property
    def weights_name(self) -> str:
        """File name of the exported weights: ``vgg16_bn.pth`` or ``vgg16.pth``."""
        return "vgg16_bn.pth" if self.batch_norm else "vgg16.pth"


@dataclass
class PretrainResult:
    """Where the weights are, and how good the classifier is on held-out crops."""

    weights: Path
    accuracy: float
    train_accuracy: float
    seconds: float
    cached: bool = False
    info: dict = field(default_factory=dict)


def _datasets(cfg: PretrainConfig) -> tuple[ObjectCropClassification, ObjectCropClassification]:
    scenes = build_dataset("synthetic", split="pretrain", size=cfg.image_size, num_classes=cfg.num_classes,
                           length=cfg.scenes + cfg.val_scenes, seed=cfg.data_seed, world=cfg.world)
    crop = ObjectCrop(cfg.crop_size)
    train = ObjectCropClassification(CachedView(scenes, cfg.scenes), crop, seed=cfg.seed, min_visible=cfg.min_visible)
    val = ObjectCropClassification(_Tail(scenes, cfg.scenes), crop, seed=cfg.seed + 1, min_visible=cfg.min_visible)
    return train, val


class _Tail:
    """The scenes of ``base`` from ``start`` on (the held-out part of the pretrain stream)."""

    def __init__(self, base, start: int) -> None:
        self.base, self.start = base, start
        self.num_classes, self.class_names = base.num_classes, base.class_names

    def __len__(self) -> int:
        return len(self.base) - self.start

    def __getitem__(self, index: int) -> dict:
        return self.base[self.start + index]


def _batches(data: ObjectCropClassification, batch_size: int, seed: int):
    """Yield ``(images, labels)`` batches forever, reshuffled per epoch from ``(seed, epoch)``."""
    epoch = 0
    while True:
        data.set_epoch(epoch)
        order = np.random.default_rng([seed, epoch]).permutation(len(data))
        for start in range(0, len(order) - batch_size + 1, batch_size):
            items = [data[int(i)] for i in order[start : start + batch_size]]
            yield torch.stack([x for x, _ in items]), torch.tensor([y for _, y in items])
        epoch += 1


@torch.no_grad()
def accuracy(model: VGGClassifier, data: ObjectCropClassification, *, limit: int | None = None,
             batch_size: int = 64, channels_last: bool = False) -> float:
    """Return the top-1 accuracy of ``model`` on (the first ``limit`` items of) ``data``."""
    was_training = model.training
    model.eval()
    n = len(data) if limit is None else min(limit, len(data))
    correct = 0
    for start in range(0, n, batch_size):
        items = [data[i] for i in range(start, min(n, start + batch_size))]
        x = torch.stack([x for x, _ in items])
        if channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        pred = model(x).argmax(1)
        correct += int((pred == torch.tensor([y for _, y in items])).sum())
    model.train(was_training)
    return correct / max(1, n)


def pretrain(cfg: PretrainConfig, out: str | Path) -> PretrainResult:
    """Train the classifier as ``cfg`` says and write its weights and report into ``out``."""
    previous = torch.get_num_threads()
    torch.set_num_threads(cfg.threads or previous)
    try:
        return _pretrain(cfg, Path(out))
    finally:
        torch.set_num_threads(previous)


def _pretrain(cfg: PretrainConfig, out: Path) -> PretrainResult:
    start = time.perf_counter()
    train, val = _datasets(cfg)
    if len(train) < cfg.batch_size:
        raise PixelwiseError(f"pretrain: {len(train)} object crops, fewer than batch_size {cfg.batch_size}")
    torch.manual_seed(cfg.seed)
    model = VGGClassifier(num_classes=train.num_classes, width=cfg.width, min_channels=cfg.min_channels,
                          crop_size=cfg.crop_size, batch_norm=cfg.batch_norm, dropout=cfg.dropout)
    if cfg.channels_last:
        model = model.to(memory_format=torch.channels_last)
    groups = param_groups(model, lr=cfg.lr, weight_decay=cfg.weight_decay, bias_decay=False, norm_decay=False)
    if cfg.optimizer == "sgd":
        optimizer = torch.optim.SGD(groups, lr=cfg.lr, momentum=0.9)
    else:
        optimizer = torch.optim.Adam(groups, lr=cfg.lr)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: _lr_factor(s, cfg))
    history = []
    batches = _batches(train, cfg.batch_size, cfg.seed)
    bar = tqdm(range(cfg.steps), desc="pretrain VGG16" + ("-BN" if cfg.batch_norm else ""), file=sys.stderr,
               disable=not cfg.progress or None, dynamic_ncols=True)
    model.train()
    smooth = None
    for step in bar:
        x, y = next(batches)
        if cfg.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        value = loss.item()
        smooth = value if smooth is None else 0.95 * smooth + 0.05 * value
        bar.set_postfix(loss=f"{smooth:.3f}")
        if (step + 1) % 50 == 0 or step + 1 == cfg.steps:
            history.append({"step": step + 1, "loss": smooth})
    bar.close()
    val_acc = accuracy(model, val, channels_last=cfg.channels_last)
    train_acc = accuracy(model, train, limit=len(val), channels_last=cfg.channels_last)
    seconds = time.perf_counter() - start
    info = {"settings": cfg.key_settings(), "class_names": train.class_names, "input_convention": "torchvision_rgb",
            "train_crops": len(train), "val_crops": len(val), "val_accuracy": val_acc, "train_accuracy": train_acc,
            "chance": float(train.label_counts().max() / len(train)), "seconds": seconds, "history": history}
    out.mkdir(parents=True, exist_ok=True)
    weights = out / cfg.weights_name
    with atomic_file(weights) as tmp:
        torch.save(torchvision_state_dict(model.to(memory_format=torch.contiguous_format)), tmp)
    with atomic_file(out / "pretrain.json") as tmp:
        tmp.write_text(json.dumps(info, indent=1), encoding="utf-8")
    return PretrainResult(weights, val_acc, train_acc, seconds, False, info)


def _lr_factor(step: int, cfg: PretrainConfig) -> float:
    """Linear warm-up, then poly (power 0.9) decay to zero at ``cfg.steps``."""
    warm = min(1.0, (step + 1) / cfg.warmup_steps) if cfg.warmup_steps else 1.0
    return warm * max(0.0, 1.0 - step / max(1, cfg.steps)) ** 0.9


def cache_folder(cfg: PretrainConfig) -> Path:
    """Return the cache folder of ``cfg``'s result (``<cache>/pretrain/<key>``)."""
    return cache_dir() / "pretrain" / settings_key(cfg.key_settings())


def cached_pretrain(cfg: PretrainConfig, *, log=None) -> PretrainResult:
    """Return the result of ``cfg`` from the cache, training it first if it is not there (or its
    files are unreadable). ``log(message)`` reports which."""
    folder = cache_folder(cfg)
    weights, report = folder / cfg.weights_name, folder / "pretrain.json"
    if weights.is_file() and report.is_file():
        try:
            info = json.loads(report.read_text(encoding="utf-8"))
            if info.get("settings") == json.loads(json.dumps(cfg.key_settings())):
                if log:
                    log(f"pretrained backbone from the cache: {weights}")
                return PretrainResult(weights, info["val_accuracy"], info["train_accuracy"], info["seconds"], True,
                                      info)
        except (OSError, ValueError, KeyError):
            pass
        if log:
            log(f"cached backbone in {folder} is unusable; training it again")
    if log:
        log(f"pretraining the backbone ({cfg.steps} steps) -> {folder}")
    return pretrain(cfg, folder)
