"""One training run: build it (:mod:`pixelwise.train.run`), loop, validate, save.

:func:`fit` is the whole run; its pieces are plain functions (:func:`save`, :func:`validate`,
:func:`train_one_step`) over one :class:`~pixelwise.train.run.TrainingRun`. Output folder::

    last.pt       the latest state (resumable), written at validations, every save_every steps,
                  on Ctrl-C and at the end
    best.pt       the state with the best validation mean IU so far
    config.yaml   the resolved config (usable with --config)
    log.jsonl     training and validation records
    curves.png    loss, lr and validation mean IU per step
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from pixelwise.errors import PixelwiseError
from pixelwise.metrics import all_reduce_sum_
from pixelwise.train import data as tdata
from pixelwise.train.bn_recalibration import recalibrate_bn
from pixelwise.train.checkpointing import (
    capture_rng_state,
    copy_atomic,
    save_training_checkpoint,
    training_checkpoint,
)
from pixelwise.train.config import TrainConfig
from pixelwise.train.console import StopRequest, say
from pixelwise.train.diagnose import validation_note
from pixelwise.train.loop import evaluate, finite, train_step
from pixelwise.train.optim import check_lr_loss
from pixelwise.train.run import TrainingRun, build_run
from pixelwise.train.runlog import read_log
from pixelwise.viz.curves import plot_curves


class TrainingDiverged(PixelwiseError):
    """The loss became NaN or infinite."""


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
        run = build_run(cfg, resume=resume, resume_source=resume_source)
        return _loop(run, on_step)
    finally:
        torch.set_num_threads(threads)
        torch.set_flush_denormal(False)


def _loop(run: TrainingRun, on_step: Callable[[int, float], bool | None] | None) -> RunResult:
    """Train until ``cfg.steps`` (or a stop request), validating and saving on the way; then
    recalibrate BN statistics if asked, validate and save the finished state."""
    cfg, progress = run.cfg, run.progress
    meter = StepMeter(run)
    run.module.train()
    with StopRequest() as stop:
        while progress.step < cfg.steps and not progress.finished:
            _, stop_now = train_one_step(run, meter, stop, on_step)
            if stop_now:
                meter.close()
                save(run, None)
                run.log.write({"type": "event", "event": "interrupt", "step": progress.step})
                say(f"stopped at step {progress.step}; continue with --resume {run.out / 'last.pt'}")
                return _result(run, "interrupted", None, meter)
            if cfg.eval_every and progress.step % cfg.eval_every == 0 and progress.step < cfg.steps:
                checkpoint_with(run, validate(run))
                run.module.train()
            elif cfg.save_every and progress.step % cfg.save_every == 0:
                save(run, None)
    meter.close()
    if progress.finished:
        say(f"{run.out / 'last.pt'} is already finished ({progress.step} steps); raise --steps to train longer")
        return _result(run, "finished", None, meter)
    if cfg.bn_recalib_batches:
        _recalibrate(run)
    metrics = validate(run)
    progress.finished = True
    checkpoint_with(run, metrics)
    if run.val_loader is None and run.is_main:
        copy_atomic(run.out / "last.pt", run.out / "best.pt")
    run.log.write({"type": "event", "event": "finish", "step": progress.step,
                   "seconds": time.perf_counter() - run.started})
    return _result(run, "finished", metrics, meter)


def _result(run: TrainingRun, status: str, metrics: dict | None, meter: "StepMeter") -> RunResult:
    return RunResult(run.out, run.progress.step, status, metrics, meter.losses, time.perf_counter() - run.started,
                     run.copied_tensors)


def train_one_step(run: TrainingRun, meter: "StepMeter", stop: StopRequest,
                   on_step: Callable[[int, float], bool | None] | None) -> tuple[float, bool]:
    """Run one optimiser step (``iter_size`` micro-batches) and its bookkeeping; return the loss
    (averaged over processes) and whether any process asked to stop (Ctrl-C or ``on_step``)."""
    cfg, progress = run.cfg, run.progress
    micro = run.batches.take(cfg.iter_size)
    if progress.step == meter.first_step:
        _warn_lr_loss(run, micro[0][1])
    lr = run.optimizer.param_groups[0]["lr"]
    started = time.perf_counter()
    loss = _step(run, micro)
    run.scheduler.step()
    progress.step += 1
    user_stop = bool(on_step(progress.step, loss)) if on_step is not None else False
    flags = torch.tensor([loss, float(stop.requested or user_stop)], dtype=torch.float64, device=run.device)
    all_reduce_sum_(flags)
    loss = float(flags[0]) / run.dist.world_size
    if not finite(loss):
        run.log.write({"type": "event", "event": "diverged", "step": progress.step, "loss": loss})
        raise TrainingDiverged(
            f"loss became {loss} at step {progress.step} ({cfg.model}, recipe {cfg.recipe or 'none'}, "
            f"lr {lr:g}, {cfg.loss_reduction} loss): the lr is too high for this loss normalisation; "
            "use --recipe paper (mean loss, lr 1e-4) or --recipe heavy (summed loss, lr 1e-10/1e-12/1e-14), "
            "or lower --lr"
        )
    meter.record(loss, lr, time.perf_counter() - started)
    return loss, bool(flags[1] > 0)


def _step(run: TrainingRun, micro: list[tuple]) -> float:
    """Forward, backward and update on the micro-batches; a BN layer seeing single values is a
    one-line error naming the fix."""
    cfg = run.cfg
    try:
        return train_step(run.module, run.optimizer, micro, run.step_settings, scaler=run.scaler)
    except ValueError as exc:
        if "more than 1 value per channel" not in str(exc):
            raise
        raise PixelwiseError(
            f"{cfg.model}: batch norm needs more than one value per channel, but fc6/fc7 see 1x1 maps of "
            f"a batch of {cfg.batch_size}; use --batch-size 2 or more (the paper: 8)"
        ) from None


def _warn_lr_loss(run: TrainingRun, labels: torch.Tensor) -> None:
    """Warn once, at the first step of this call, when the lr does not suit the loss normalisation."""
    warning = check_lr_loss(run.cfg, int(labels.shape[-2] * labels.shape[-1]))
    if warning:
        say(f"warning: {warning}")
        run.log.write({"type": "event", "event": "warning", "step": run.progress.step, "message": warning})


class StepMeter:
    """The progress bar, the smoothed loss and the ``log_every`` training records of one call."""

    def __init__(self, run: TrainingRun) -> None:
        cfg = run.cfg
        self.run = run
        self.first_step = run.progress.step
        self.losses: list[tuple[int, float]] = []
        self.images_per_step = cfg.batch_size * cfg.iter_size * run.dist.world_size
        self.smooth: float | None = None
        self._window = [0.0, 0, 0.0]  # loss sum, steps, training seconds since the last record
        self.bar = tqdm(total=cfg.steps, initial=min(run.progress.step, cfg.steps), desc=f"train {cfg.model}",
                        disable=not (cfg.progress and run.is_main) or None, dynamic_ncols=True, file=sys.stderr)

    def record(self, loss: float, lr: float, seconds: float) -> None:
        """Account one finished step: bar, smoothed loss, images/s (training time only) and the log."""
        step, cfg = self.run.progress.step, self.run.cfg
        self.losses.append((step, loss))
        self.smooth = loss if self.smooth is None else 0.9 * self.smooth + 0.1 * loss
        window = self._window
        window[0] += loss
        window[1] += 1
        window[2] += seconds
        speed = self.images_per_step * window[1] / max(window[2], 1e-9)
        self.bar.update(1)
        self.bar.set_postfix(loss=f"{self.smooth:.4g}", lr=f"{lr:.2g}", img_s=f"{speed:.1f}")
        if step % cfg.log_every == 0 or step == cfg.steps:
            self.run.log.write({"type": "train", "step": step, "epoch": self.run.progress.epoch,
                                "loss": window[0] / window[1], "lr": lr, "images_per_s": speed})
            self._window = [0.0, 0, 0.0]

    def close(self) -> None:
        self.bar.close()


def save(run: TrainingRun, metrics: dict | None, *, best: bool = False) -> None:
    """Write ``last.pt`` (every process's RNG state gathered to rank 0); ``best`` also copies it to
    ``best.pt``."""
    rng = [capture_rng_state()]
    if run.dist.distributed:
        gathered = [None] * run.dist.world_size
        torch.distributed.all_gather_object(gathered, rng[0])
        rng = gathered
    if run.is_main:
        ckpt = training_checkpoint(run.model, config=run.cfg.to_dict(), class_names=run.class_names,
                                   optimizer=run.optimizer, scheduler=run.scheduler, scaler=run.scaler,
                                   progress=run.progress, rng_states=rng, metrics=metrics)
        save_training_checkpoint(run.out / "last.pt", ckpt)
        if best:
            copy_atomic(run.out / "last.pt", run.out / "best.pt")


def validate(run: TrainingRun) -> dict | None:
    """Evaluate on the validation split, log and report it (with the collapse note when the
    model predicts one class); return the metrics (None without a validation split)."""
    if run.val_loader is None:
        return None
    cfg, step = run.cfg, run.progress.step
    results = evaluate(run.model, run.val_loader, len(run.class_names), run.eval_settings, desc=f"val {cfg.model}")
    record = {"type": "val", "step": step,
              **{k: results[k] for k in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu", "boundary_f1")}}
    if "size_buckets" in results:
        record["size_buckets"] = {b: r["mean_iu"] for b, r in results["size_buckets"].items()}
    run.log.write(record)
    say(f"step {step}: val mean IU {100 * results['mean_iu']:.1f}, pixel acc "
        f"{100 * results['pixel_acc']:.1f}, BF {100 * results['boundary_f1']:.1f} ({results['images']} images)")
    note = validation_note(results, cfg.model, run.class_names, step=step,
                           log_path=run.out / "log.jsonl" if run.is_main else None)
    if note:
        say(note)
        run.log.write({"type": "event", "event": "collapsed", "step": step, "message": note})
    if run.is_main:
        run.log.validation_details(step, results, run.class_names, model=run.model, dataset=run.val_ds,
                                   settings=run.eval_settings, note=note)
    return results


def checkpoint_with(run: TrainingRun, results: dict | None) -> None:
    """Save ``last.pt`` with ``results``' summary (and ``best.pt`` when its mean IU is the best so
    far) and redraw ``curves.png``."""
    progress = run.progress
    better = results is not None and results["mean_iu"] > progress.best_miou
    if better:
        progress.best_miou, progress.best_step = float(results["mean_iu"]), progress.step
    save(run, _summary(results), best=better)
    if run.is_main:
        plot_curves(read_log(run.out / "log.jsonl"), run.out / "curves.png", title=f"{run.cfg.model} ({run.out.name})")


def _recalibrate(run: TrainingRun) -> None:
    """Recompute BN population statistics over ``cfg.bn_recalib_batches`` training batches drawn in
    an order of their own (so the data state of the run is untouched)."""
    cfg, train_ds = run.cfg, run.train_ds
    sampler = tdata.ShardedSampler(len(train_ds), shuffle=True, seed=cfg.seed + 7919, rank=run.dist.rank,
                                   world_size=run.dist.world_size)
    loader = tdata.train_loader(train_ds, cfg.replace(batch_size=cfg.bn_recalib_batch_size or cfg.batch_size), sampler)

    def batches():
        epoch = 0
        while True:
            sampler.set_epoch(epoch)
            train_ds.set_epoch(10_000 + epoch)
            yield from loader
            epoch += 1

    used = recalibrate_bn(run.model, batches(), cfg.bn_recalib_batches, device=run.device,
                          estimator=cfg.bn_statistics, progress=cfg.progress and run.is_main,
                          forward=run.model.forward_any_size)
    if used:
        say(f"batch-norm population statistics recomputed over {used} batches")


def _summary(results: dict | None) -> dict | None:
    """The metrics stored in a checkpoint (without the bulky confusion matrix)."""
    if results is None:
        return None
    return {k: v for k, v in results.items() if k != "confusion"}


