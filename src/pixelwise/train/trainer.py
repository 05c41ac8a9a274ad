"""One training run: build everything from a :class:`TrainConfig`, loop, validate, save.

:func:`fit` is the whole run as one function; the pieces it calls (data, loop, optim,
checkpointing, distributed) are plain functions in their own modules. Output folder::

    last.pt       the latest state (resumable), written at validations, every save_every steps,
                  on Ctrl-C and at the end
    best.pt       the state with the best validation mean IU so far
    config.yaml   the resolved config (usable with --config)
    log.jsonl     training and validation records
    curves.png    loss, lr and validation mean IU per step
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from pixelwise.checkpoint import load_checkpoint
from pixelwise.convention import get_convention
from pixelwise.errors import CheckpointError, PixelwiseError
from pixelwise.models.fcn import init_from
from pixelwise.models.registry import create_model, get_entry
from pixelwise.train import data as tdata
from pixelwise.train import distributed as dist_utils
from pixelwise.train.bn_recalibration import recalibrate_bn
from pixelwise.train.checkpointing import (
    Progress,
    capture_rng_state,
    copy_atomic,
    restore_training,
    save_training_checkpoint,
    training_checkpoint,
)
from pixelwise.train.config import TrainConfig, save_yaml
from pixelwise.train.diagnose import validation_note
from pixelwise.train.loop import AnySize, AuxOutputs, evaluate, finite, train_step
from pixelwise.train.losses import build_loss, resolve_class_weights
from pixelwise.train.optim import build_optimizer, build_scheduler, check_lr_loss
from pixelwise.train.runlog import read_log
from pixelwise.train.tblog import TensorBoardRunLog, require_tensorboard
from pixelwise.viz.curves import plot_curves


class TrainingDiverged(PixelwiseError):
    """The loss became NaN or infinite."""


ENSEMBLE_HELP = (
    "EDeconvNet is an ensemble of two separately trained models: train them with `pixelwise train "
    "--model fcn8s ...` and `pixelwise train --model deconvnet --recipe deconvnet ...`, then combine "
    "the two checkpoints with `pixelwise ensemble` (see docs/training.md)"
)


@dataclass
class RunResult:
    """What :func:`fit` returns: the output folder, the final step, ``status`` (``finished`` or
    ``interrupted``), the last validation metrics, per-step losses of this call, and timings."""

    out: Path
    step: int
    status: str
    metrics: dict | None = None
    losses: list[tuple[int, float]] = field(default_factory=list)
    seconds: float = 0.0
    copied_tensors: int | None = None


def say(message: str) -> None:
    """Print a status line to stderr on rank 0 (tqdm-safe)."""
    if dist_utils.is_main():
        tqdm.write(f"pixelwise train: {message}", file=sys.stderr)


class StopRequest:
    """Turns the first Ctrl-C (SIGINT) into a request to stop after the current step and save;
    a second Ctrl-C aborts at once. Only in the main thread (signal handlers live there)."""

    def __init__(self) -> None:
        self.requested = False
        self._old = None

    def _handler(self, signum, frame) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True
        say("Ctrl-C: finishing this step and saving last.pt (press Ctrl-C again to abort without saving)")

    def __enter__(self) -> "StopRequest":
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGINT, self._handler)
        return self

    def __exit__(self, *exc) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)


def model_kwargs(cfg: TrainConfig) -> dict:
    """Return the extra :func:`create_model` arguments the config implies for its model family."""
    family = get_entry(cfg.model).family
    if family == "ensemble":
        raise PixelwiseError(ENSEMBLE_HELP)
    kwargs = {} if cfg.min_channels is None else {"min_channels": cfg.min_channels}
    if family == "fcn":
        kwargs.update(pad100=cfg.pad100, upsampling=cfg.upsampling)
        if cfg.dropout is not None:
            kwargs["dropout"] = cfg.dropout
        if cfg.fc6_kernel is not None:
            kwargs["fc6_kernel"] = cfg.fc6_kernel
    if family == "deconvnet":
        if cfg.input_size is not None:
            kwargs["input_size"] = cfg.input_size
        if cfg.deep_supervision:
            kwargs["deep_supervision"] = True
        if cfg.caffe_bn:
            kwargs["caffe_bn"] = True
        if cfg.crop_pad != "mean":
            kwargs["proposal_pad"] = cfg.crop_pad  # inference pads proposals as training padded crops
    elif cfg.deep_supervision:
        raise PixelwiseError(f"--deep-supervision is a DeconvNet option; {cfg.model} has no decoder stages to supervise")
    return kwargs


def build_model(cfg: TrainConfig, num_classes: int) -> nn.Module:
    """Return the configured model (seeded with ``cfg.seed``), with its input convention set."""
    kwargs = model_kwargs(cfg)
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.model, num_classes=num_classes, width=cfg.width, **kwargs)
    model.input_convention = get_convention(cfg.convention)
    return model


def apply_backbone_weights(model: nn.Module, cfg: TrainConfig, datasets: list) -> TrainConfig:
    """Load ImageNet VGG16 weights into the backbone (``pixelwise.weights.load_backbone_weights``);
    the weights' input convention replaces ``cfg.convention`` (for the datasets, and in the saved
    config and checkpoints). Returns the config to use from here on."""
    from pixelwise.weights import load_backbone_weights

    report = load_backbone_weights(model, cfg.backbone_weights)
    convention = report.input_convention
    say(f"backbone weights {cfg.backbone_weights}: {len(report.rows)} layers loaded, input convention "
        f"{convention.name}")
    if convention.name != cfg.convention:
        say(f"--convention {cfg.convention} replaced by {convention.name}: the weights decide it")
        cfg = cfg.replace(convention=convention.name)
        for ds in datasets:
            ds.convention = convention
    return cfg


def apply_init_from(model: nn.Module, path: str) -> int:
    """Copy the matching tensors of checkpoint ``path`` into ``model``; return how many. Raises a
    one-line error when nothing matches; warns when the checkpoint's input convention differs."""
    ckpt = load_checkpoint(path)
    theirs = (ckpt.get("input_convention") or {}).get("name")
    ours = getattr(model, "input_convention", None)
    if theirs and ours is not None and theirs != ours.name:
        say(f"warning: --init-from {path} was trained with input convention {theirs!r} but this run uses "
            f"{ours.name!r}; pass --convention {theirs} unless you mean to retrain the first layers")
    copied = init_from(model, ckpt["state_dict"])
    total = len(model.state_dict())
    if not copied:
        spec = ckpt.get("model_spec", {})
        raise CheckpointError(
            f"--init-from {path}: no tensor matches the model ({spec.get('name')} width {spec.get('width')} "
            f"vs {model.pixelwise_spec['name']} width {model.pixelwise_spec['width']}); use a checkpoint of the "
            "same width and classes"
        )
    new = sorted(k for k in model.state_dict() if k not in set(copied))
    detail = f" ({len(new)} new: {', '.join(new[:6])}{' ...' if len(new) > 6 else ''})" if new else ""
    say(f"init-from {path}: copied {len(copied)} of {total} tensors{detail}")
    return len(copied)


def _class_names(dataset, num_classes: int) -> list[str]:
    names = list(dataset.class_names)[:num_classes]
    return names + [f"class_{i}" for i in range(len(names), num_classes)]


def fit(
    cfg: TrainConfig,
    *,
    resume: dict | None = None,
    resume_source: str = "checkpoint",
    on_step: Callable[[int, float], bool | None] | None = None,
) -> RunResult:
    """Train as ``cfg`` says and return a :class:`RunResult`.

    ``resume``: a loaded training checkpoint (:func:`pixelwise.train.checkpointing.load_training_checkpoint`)
    to continue from. ``on_step(step, loss)`` is called after every step; returning True stops the
    run as Ctrl-C does (the state is saved to ``last.pt``). The CPU thread count is set for the
    run and restored afterwards.
    """
    threads = torch.get_num_threads()
    try:
        return _fit(cfg, resume=resume, resume_source=resume_source, on_step=on_step)
    finally:
        torch.set_num_threads(threads)
        torch.set_flush_denormal(False)


def _fit(cfg: TrainConfig, *, resume: dict | None, resume_source: str,
         on_step: Callable[[int, float], bool | None] | None) -> RunResult:
    t_start = time.perf_counter()
    info = dist_utils.init_distributed(cfg.device)
    device = info.device
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", info.world_size if info.distributed else 1))
    torch.set_num_threads(cfg.threads or dist_utils.default_threads(local_world))
    if device.type == "cpu":
        torch.set_flush_denormal(True)  # tiny gradients/moments otherwise hit the slow denormal path
    out = Path(cfg.out)
    main = info.is_main
    if cfg.tensorboard:
        require_tensorboard()  # before any data is read
    if main:
        out.mkdir(parents=True, exist_ok=True)

    # data
    train_ds = tdata.train_dataset(cfg)
    num_classes = cfg.num_classes or train_ds.num_classes
    if num_classes < train_ds.num_classes:
        raise PixelwiseError(
            f"--num-classes {num_classes} is smaller than the dataset's {train_ds.num_classes} classes"
        )
    class_names = _class_names(train_ds, num_classes)
    class_weights = resolve_class_weights(cfg, train_ds.base, num_classes, device=device, rank=info.rank,
                                          world_size=info.world_size, progress=cfg.progress and main,
                                          saved=(resume or {}).get("config", {}).get("class_weights"))
    if class_weights is not None:
        say(class_weights.message(class_names))
        cfg = cfg.replace(class_weights=class_weights.spec())  # config.yaml and checkpoints keep the values
    criterion = build_loss(cfg, num_classes)
    val_loader = None
    if cfg.val_split:
        val_ds = tdata.val_dataset(cfg)
        val_loader = tdata.eval_loader(val_ds, cfg.eval_batch_size, rank=info.rank, world_size=info.world_size,
                                       workers=cfg.workers)

    # model, optimiser
    model = build_model(cfg, num_classes)
    if cfg.backbone_weights and resume is None:
        cfg = apply_backbone_weights(model, cfg, [train_ds] + ([val_ds] if cfg.val_split else []))
    copied = None
    if cfg.init_from and resume is None:
        copied = apply_init_from(model, cfg.init_from)
    model.to(device)
    if cfg.channels_last:
        model.to(memory_format=torch.channels_last)
    optimizer = build_optimizer(model, cfg)
    scheduler = build_scheduler(optimizer, cfg)
    scaler = torch.amp.GradScaler("cuda") if cfg.precision == "fp16" and device.type == "cuda" else None
    if cfg.precision == "fp16" and device.type != "cuda":
        raise PixelwiseError("--precision fp16 needs CUDA; on CPU use --precision bf16")

    log = TensorBoardRunLog(out / "log.jsonl", enabled=main, tensorboard=cfg.tensorboard)
    config_dict = cfg.to_dict()
    if resume is not None:
        progress, exact = restore_training(resume, model=model, optimizer=optimizer, scheduler=scheduler,
                                           scaler=scaler, rank=info.rank, world_size=info.world_size,
                                           source=resume_source)
        if progress.finished and cfg.steps > progress.step:
            progress.finished = False  # a longer schedule was asked for: keep training
        if not exact:
            say(f"resuming with {info.world_size} process(es) but the checkpoint was written by "
                f"{progress.world_size}: the data order continues approximately, not exactly")
            progress.position = progress.position * progress.world_size // info.world_size
            progress.world_size = info.world_size
        log.truncate_after(progress.step)
        log.write({"type": "event", "event": "resume", "step": progress.step, "from": resume_source})
        say(f"resumed from {resume_source} at step {progress.step}/{cfg.steps}")
    else:
        progress = Progress(world_size=info.world_size)
        if (out / "last.pt").is_file():
            say(f"starting a new run in {out}: its last.pt and best.pt will be replaced (--resume auto continues "
                "the old run instead)")
            if main:
                (out / "best.pt").unlink(missing_ok=True)
        log.start_fresh()
        log.write({"type": "event", "event": "start", "step": 0, "model": cfg.model,
                   "world_size": info.world_size, "device": str(device)})
        if info.rank:
            torch.manual_seed(cfg.seed + 1000 * info.rank)  # own dropout stream per process
    if main:
        save_yaml(cfg, out / "config.yaml")
    if class_weights is not None:
        log.write({"type": "event", "step": progress.step, **class_weights.record()})

    if cfg.deep_supervision:
        module: nn.Module = AuxOutputs(model)
    else:
        module = AnySize(model) if hasattr(model, "forward_any_size") else model
    if info.distributed:
        module = nn.parallel.DistributedDataParallel(
            module, device_ids=[device.index] if device.type == "cuda" else None
        )

    sampler = tdata.ShardedSampler(len(train_ds), shuffle=True, seed=cfg.seed, rank=info.rank,
                                   world_size=info.world_size, drop_uneven=True)
    loader = tdata.train_loader(train_ds, cfg, sampler)
    state = {"it": None}

    def start_epoch() -> None:
        sampler.set_epoch(progress.epoch)
        sampler.set_start(progress.position)
        train_ds.set_epoch(progress.epoch)
        state["it"] = iter(loader)

    def next_batch():
        if state["it"] is None:
            start_epoch()
        try:
            batch = next(state["it"])
        except StopIteration:
            progress.epoch += 1
            progress.position = 0
            start_epoch()
            batch = next(state["it"])
        progress.position += cfg.batch_size
        return batch

    def save(metrics: dict | None, *, best: bool = False) -> None:
        rng = [capture_rng_state()]
        if info.distributed:
            gathered = [None] * info.world_size
            torch.distributed.all_gather_object(gathered, rng[0])
            rng = gathered
        if main:
            ckpt = training_checkpoint(model, config=config_dict, class_names=class_names, optimizer=optimizer,
                                       scheduler=scheduler, scaler=scaler, progress=progress, rng_states=rng,
                                       metrics=metrics)
            save_training_checkpoint(out / "last.pt", ckpt)
            if best:
                copy_atomic(out / "last.pt", out / "best.pt")

    def validate() -> dict | None:
        if val_loader is None:
            return None
        results = evaluate(model, val_loader, num_classes, device=device, precision=cfg.precision,
                           ignore_index=cfg.ignore_index, channels_last=cfg.channels_last,
                           progress=cfg.progress and main, desc=f"val {cfg.model}", resize=cfg.eval_resize)
        record = {"type": "val", "step": progress.step,
                  **{k: results[k] for k in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu")}}
        if "size_buckets" in results:
            record["size_buckets"] = {b: r["mean_iu"] for b, r in results["size_buckets"].items()}
        log.write(record)
        say(f"step {progress.step}: val mean IU {100 * results['mean_iu']:.1f}, pixel acc "
            f"{100 * results['pixel_acc']:.1f} ({results['images']} images)")
        note = validation_note(results, cfg.model, class_names, step=progress.step,
                               log_path=out / "log.jsonl" if main else None)
        if note:
            say(note)
            log.write({"type": "event", "event": "collapsed", "step": progress.step, "message": note})
        if main:
            log.validation_details(progress.step, results, class_names, model=model, dataset=val_ds, device=device,
                                   precision=cfg.precision, resize=cfg.eval_resize, note=note)
        return results

    def checkpoint_with(results: dict | None) -> None:
        better = results is not None and results["mean_iu"] > progress.best_miou
        if better:
            progress.best_miou, progress.best_step = float(results["mean_iu"]), progress.step
        save(_summary(results), best=better)
        if main:
            plot_curves(_read(out), out / "curves.png", title=f"{cfg.model} ({out.name})")

    losses: list[tuple[int, float]] = []
    status = "finished"
    images_per_step = cfg.batch_size * cfg.iter_size * info.world_size
    warned = False
    metrics = None
    bar = tqdm(total=cfg.steps, initial=min(progress.step, cfg.steps), desc=f"train {cfg.model}",
               disable=not (cfg.progress and main) or None, dynamic_ncols=True, file=sys.stderr)
    module.train()
    window_loss, window_n, window_t = 0.0, 0, 0.0
    smooth = None
    with StopRequest() as stop:
        while progress.step < cfg.steps and not progress.finished:
            micro = [next_batch() for _ in range(cfg.iter_size)]
            if not warned:
                warned = True
                warning = check_lr_loss(cfg, int(micro[0][1].shape[-2] * micro[0][1].shape[-1]))
                if warning:
                    say(f"warning: {warning}")
                    log.write({"type": "event", "event": "warning", "step": progress.step, "message": warning})
            lr = optimizer.param_groups[0]["lr"]
            t_step = time.perf_counter()
            try:
                loss = train_step(module, optimizer, micro, device=device, reduction=cfg.loss_reduction,
                                  ignore_index=cfg.ignore_index, precision=cfg.precision, scaler=scaler,
                                  channels_last=cfg.channels_last, aux_weight=cfg.deep_supervision,
                                  loss_fn=criterion)
            except ValueError as exc:
                if "more than 1 value per channel" not in str(exc):
                    raise
                raise PixelwiseError(
                    f"{cfg.model}: batch norm needs more than one value per channel, but fc6/fc7 see 1x1 maps of "
                    f"a batch of {cfg.batch_size}; use --batch-size 2 or more (the paper: 8)"
                ) from None
            scheduler.step()
            progress.step += 1
            user_stop = bool(on_step(progress.step, loss)) if on_step is not None else False
            flags = torch.tensor([loss, float(stop.requested or user_stop)], dtype=torch.float64, device=device)
            dist_utils.all_reduce_sum_(flags)
            loss = float(flags[0]) / info.world_size
            if not finite(loss):
                log.write({"type": "event", "event": "diverged", "step": progress.step, "loss": loss})
                raise TrainingDiverged(
                    f"loss became {loss} at step {progress.step} ({cfg.model}, recipe {cfg.recipe or 'none'}, "
                    f"lr {lr:g}, {cfg.loss_reduction} loss): the lr is too high for this loss normalisation; "
                    "use --recipe paper (mean loss, lr 1e-4) or --recipe heavy (summed loss, lr 1e-10/1e-12/1e-14), "
                    "or lower --lr"
                )
            losses.append((progress.step, loss))
            smooth = loss if smooth is None else 0.9 * smooth + 0.1 * loss
            window_loss += loss
            window_n += 1
            window_t += time.perf_counter() - t_step  # training time only (not validation, saving)
            speed = images_per_step * window_n / max(window_t, 1e-9)
            bar.update(1)
            bar.set_postfix(loss=f"{smooth:.4g}", lr=f"{lr:.2g}", img_s=f"{speed:.1f}")
            if progress.step % cfg.log_every == 0 or progress.step == cfg.steps:
                log.write({"type": "train", "step": progress.step, "epoch": progress.epoch,
                           "loss": window_loss / window_n, "lr": lr, "images_per_s": speed})
                window_loss, window_n, window_t = 0.0, 0, 0.0
            if flags[1] > 0:
                status = "interrupted"
                bar.close()
                save(None)
                log.write({"type": "event", "event": "interrupt", "step": progress.step})
                say(f"stopped at step {progress.step}; continue with --resume {out / 'last.pt'}")
                return RunResult(out, progress.step, status, None, losses, time.perf_counter() - t_start, copied)
            if cfg.eval_every and progress.step % cfg.eval_every == 0 and progress.step < cfg.steps:
                checkpoint_with(validate())
                module.train()
            elif cfg.save_every and progress.step % cfg.save_every == 0:
                save(None)
    bar.close()

    if not progress.finished:
        if cfg.bn_recalib_batches:
            _recalibrate(cfg, model, train_ds, info, device)
        metrics = validate()
        progress.finished = True
        checkpoint_with(metrics)
        if val_loader is None and main:
            copy_atomic(out / "last.pt", out / "best.pt")
        log.write({"type": "event", "event": "finish", "step": progress.step,
                   "seconds": time.perf_counter() - t_start})
    else:
        say(f"{out / 'last.pt'} is already finished ({progress.step} steps); raise --steps to train longer")
    return RunResult(out, progress.step, status, metrics, losses, time.perf_counter() - t_start, copied)


def _recalibrate(cfg: TrainConfig, model: nn.Module, train_ds, info, device) -> None:
    """Recompute BN population statistics over ``cfg.bn_recalib_batches`` training batches drawn in
    an order of their own (so the data state of the run is untouched)."""
    sampler = tdata.ShardedSampler(len(train_ds), shuffle=True, seed=cfg.seed + 7919, rank=info.rank,
                                   world_size=info.world_size)
    loader = tdata.train_loader(train_ds, cfg.replace(batch_size=cfg.bn_recalib_batch_size or cfg.batch_size), sampler)

    def batches():
        epoch = 0
        while True:
            sampler.set_epoch(epoch)
            train_ds.set_epoch(10_000 + epoch)
            yield from loader
            epoch += 1

    used = recalibrate_bn(model, batches(), cfg.bn_recalib_batches, device=device, estimator=cfg.bn_statistics,
                          progress=cfg.progress and info.is_main,
                          forward=getattr(model, "forward_any_size", None))
    if used:
        say(f"batch-norm population statistics recomputed over {used} batches")


def _summary(results: dict | None) -> dict | None:
    """The metrics stored in a checkpoint (without the bulky confusion matrix)."""
    if results is None:
        return None
    return {k: v for k, v in results.items() if k != "confusion"}


def _read(out: Path) -> list[dict]:
    return read_log(out / "log.jsonl")
