"""A training run's objects, built once from a :class:`TrainConfig`: process set-up, data, model,
optimiser, schedule, log and progress (fresh or restored from a checkpoint).

The order of the steps is part of the contract: the model is seeded after the datasets are
built, and a fresh run seeds each process's dropout stream last, so a run is deterministic per
seed and a resumed one continues exactly.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from pixelwise.errors import PixelwiseError
from pixelwise.metrics import fallback_class_names
from pixelwise.runtime import cpu_supports_bf16
from pixelwise.train import data as tdata
from pixelwise.train import distributed as dist_utils
from pixelwise.train.batches import BatchStream
from pixelwise.train.checkpointing import Progress, restore_training
from pixelwise.train.config import TrainConfig, save_yaml
from pixelwise.train.console import say
from pixelwise.train.loop import AnySize, AuxOutputs, EvalSettings, LossFn, StepSettings
from pixelwise.train.losses import ClassWeights, build_loss, resolve_class_weights
from pixelwise.train.model_setup import (
    apply_backbone_weights,
    apply_init_from,
    build_model,
    convention_of_backbone,
)
from pixelwise.train.optim import build_optimizer, build_scheduler
from pixelwise.train.tblog import TensorBoardRunLog, require_tensorboard


@dataclass
class TrainingRun:
    """Everything one training run works with. ``model`` is the bare model (saved, validated);
    ``module`` is what the step calls (the model wrapped for any input size / auxiliary outputs /
    DDP). ``cfg`` is the resolved config the checkpoints and ``config.yaml`` store;
    ``step_settings`` and ``eval_settings`` are its values for the training step (with the loss)
    and the validations."""

    cfg: TrainConfig
    dist: dist_utils.DistInfo
    out: Path
    model: nn.Module
    module: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: object
    scaler: torch.amp.GradScaler | None
    step_settings: StepSettings
    eval_settings: EvalSettings
    train_ds: tdata.SegmentationDataset
    val_ds: tdata.SegmentationDataset | None
    val_loader: object | None
    class_names: list[str]
    class_weights: ClassWeights | None
    log: TensorBoardRunLog
    progress: Progress
    batches: BatchStream
    copied_tensors: int | None
    started: float

    @property
    def device(self) -> torch.device:
        return self.dist.device

    @property
    def is_main(self) -> bool:
        return self.dist.is_main


def build_run(cfg: TrainConfig, *, resume: dict | None = None, resume_source: str = "checkpoint") -> TrainingRun:
    """Set up the process and build every object of the run described by ``cfg``; ``resume`` is a
    loaded training checkpoint to continue from (its state is restored into the new objects)."""
    started = time.perf_counter()
    dist = _set_up_process(cfg)
    if cfg.backbone_weights and resume is None:
        cfg = convention_of_backbone(cfg)  # before the datasets: they normalise with it
    train_ds = tdata.train_dataset(cfg)
    num_classes = _num_classes(cfg, train_ds)
    class_names = _class_names(train_ds, num_classes)
    class_weights = resolve_class_weights(cfg, train_ds.base, num_classes, device=dist.device, rank=dist.rank,
                                          world_size=dist.world_size, progress=cfg.progress and dist.is_main,
                                          saved=(resume or {}).get("config", {}).get("class_weights"))
    if class_weights is not None:
        say(class_weights.message(class_names))
        cfg = cfg.replace(class_weights=class_weights.spec())  # config.yaml and checkpoints keep the values
    val_ds = tdata.val_dataset(cfg) if cfg.val_split else None
    val_loader = None if val_ds is None else tdata.eval_loader(
        val_ds, cfg.eval_batch_size, rank=dist.rank, world_size=dist.world_size, workers=cfg.workers)
    model, copied = _initialised_model(cfg, num_classes, dist.device, fresh=resume is None)
    model.input_scale = cfg.input_scale  # the checkpoints record how images are prepared for it
    model.class_colors = train_ds.base.palette
    optimizer, scheduler, scaler = _optimisation(cfg, model, dist.device)
    log = TensorBoardRunLog(Path(cfg.out) / "log.jsonl", enabled=dist.is_main, tensorboard=cfg.tensorboard)
    progress = _start_or_restore(cfg, dist, log, resume, resume_source, model=model, optimizer=optimizer,
                                 scheduler=scheduler, scaler=scaler)
    if dist.is_main:
        save_yaml(cfg, Path(cfg.out) / "config.yaml")
    if class_weights is not None:
        log.write({"type": "event", "step": progress.step, **class_weights.record()})
    return TrainingRun(
        cfg=cfg, dist=dist, out=Path(cfg.out), model=model, module=_step_module(cfg, model, dist),
        optimizer=optimizer, scheduler=scheduler, scaler=scaler,
        step_settings=step_settings(cfg, dist, build_loss(cfg, num_classes)), eval_settings=eval_settings(cfg, dist),
        train_ds=train_ds, val_ds=val_ds, val_loader=val_loader, class_names=class_names,
        class_weights=class_weights, log=log, progress=progress,
        batches=BatchStream(train_ds, cfg, progress, rank=dist.rank, world_size=dist.world_size),
        copied_tensors=copied, started=started,
    )


def step_settings(cfg: TrainConfig, dist: dist_utils.DistInfo, loss_fn: LossFn) -> StepSettings:
    """Return how the run's training steps compute: the config's loss normalisation, precision,
    memory format and deep-supervision weight, on the process's device, with ``loss_fn``."""
    return StepSettings(device=dist.device, reduction=cfg.loss_reduction, ignore_index=cfg.ignore_index,
                        precision=cfg.precision, channels_last=cfg.channels_last, aux_weight=cfg.deep_supervision,
                        loss_fn=loss_fn)


def eval_settings(cfg: TrainConfig, dist: dist_utils.DistInfo) -> EvalSettings:
    """Return how the run's validations compute: the config's precision, memory format and
    ``eval_resize``, with the boundary F1 score, a progress bar on the main process only."""
    return EvalSettings(device=dist.device, precision=cfg.precision, ignore_index=cfg.ignore_index,
                        channels_last=cfg.channels_last, resize=cfg.eval_resize, boundary=True,
                        progress=cfg.progress and dist.is_main)


def _set_up_process(cfg: TrainConfig) -> dist_utils.DistInfo:
    """Join the process group (if any), set threads and denormal handling, create the output folder."""
    dist = dist_utils.init_distributed(cfg.device)
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", dist.world_size if dist.distributed else 1))
    torch.set_num_threads(cfg.threads or dist_utils.default_threads(local_world))
    if dist.device.type == "cpu":
        torch.set_flush_denormal(True)  # tiny gradients/moments otherwise hit the slow denormal path
    if cfg.tensorboard:
        require_tensorboard()  # before any data is read
    if cfg.precision == "fp16" and dist.device.type != "cuda":
        raise PixelwiseError("--precision fp16 needs CUDA; on CPU use --precision bf16")
    if cfg.precision == "bf16" and dist.device.type == "cpu" and dist.is_main and not cpu_supports_bf16():
        say("note: this CPU has no native bf16 (AVX512-BF16/AMX): bf16 autocast is emulated and trains "
            "slower than fp32 here (0.4-0.7x in benchmarks/train_precision.py); --channels-last is the fast option")
    if dist.is_main:
        Path(cfg.out).mkdir(parents=True, exist_ok=True)
    return dist


def _num_classes(cfg: TrainConfig, train_ds) -> int:
    num_classes = cfg.num_classes or train_ds.num_classes
    if num_classes < train_ds.num_classes:
        raise PixelwiseError(
            f"--num-classes {num_classes} is smaller than the dataset's {train_ds.num_classes} classes"
        )
    return num_classes


def _class_names(dataset, num_classes: int) -> list[str]:
    return fallback_class_names(list(dataset.class_names)[:num_classes], num_classes)


def _initialised_model(cfg: TrainConfig, num_classes: int, device: torch.device, *,
                       fresh: bool) -> tuple[nn.Module, int | None]:
    """Return the model on ``device`` and how many tensors ``--init-from`` copied (None without it).
    A resumed run skips the initialisations: the checkpoint's weights replace them."""
    model = build_model(cfg, num_classes)
    if cfg.backbone_weights and fresh:
        apply_backbone_weights(model, cfg.backbone_weights)
    copied = apply_init_from(model, cfg.init_from) if cfg.init_from and fresh else None
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    return model, copied


def _optimisation(cfg: TrainConfig, model: nn.Module, device: torch.device) -> tuple:
    """Return ``(optimizer, scheduler, scaler)``; the gradient scaler only for fp16 on CUDA."""
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg)
    scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" and device.type == "cuda" else None
    return optimizer, scheduler, scaler


def _start_or_restore(cfg: TrainConfig, dist: dist_utils.DistInfo, log: TensorBoardRunLog, resume: dict | None,
                      source: str, **state) -> Progress:
    """Return the run's progress: restored from ``resume`` (weights, optimiser, schedule, RNG) or a
    fresh start (an old run in the folder is replaced); the log says which."""
    out = Path(cfg.out)
    if resume is None:
        if (out / "last.pt").is_file():
            say(f"starting a new run in {out}: its last.pt and best.pt will be replaced (--resume auto continues "
                "the old run instead)")
            if dist.is_main:
                (out / "best.pt").unlink(missing_ok=True)
        log.start_fresh()
        log.write({"type": "event", "event": "start", "step": 0, "model": cfg.model,
                   "world_size": dist.world_size, "device": str(dist.device)})
        if dist.rank:
            torch.manual_seed(cfg.seed + 1000 * dist.rank)  # own dropout stream per process
        return Progress(world_size=dist.world_size)
    progress, exact = restore_training(resume, rank=dist.rank, world_size=dist.world_size, source=source, **state)
    if progress.finished and cfg.steps > progress.step:
        progress.finished = False  # a longer schedule was asked for: keep training
    if not exact:
        say(f"resuming with {dist.world_size} process(es) but the checkpoint was written by "
            f"{progress.world_size}: the data order continues approximately, not exactly")
        progress.position = progress.position * progress.world_size // dist.world_size
        progress.world_size = dist.world_size
    log.truncate_after(progress.step)
    log.write({"type": "event", "event": "resume", "step": progress.step, "from": source})
    say(f"resumed from {source} at step {progress.step}/{cfg.steps}")
    return progress


def _step_module(cfg: TrainConfig, model: nn.Module, dist: dist_utils.DistInfo) -> nn.Module:
    """Return what the training step calls: the model returning auxiliary outputs (deep
    supervision) or taking any input size, wrapped in DDP when distributed."""
    module: nn.Module = AuxOutputs(model) if cfg.deep_supervision else AnySize(model)
    if dist.distributed:
        module = nn.parallel.DistributedDataParallel(
            module, device_ids=[dist.device.index] if dist.device.type == "cuda" else None
        )
    return module
