"""Resumable training checkpoints on top of :mod:`pixelwise.checkpoint`.

A training checkpoint is a normal pixelwise checkpoint (model spec, weights, input convention,
class names, the full config, metrics) whose ``training`` entry holds everything needed to
continue exactly: optimiser, lr scheduler and AMP scaler states, the RNG states of every process
(torch, CUDA, numpy, Python), and :class:`Progress` (step, data epoch and position, best score).
"""

from __future__ import annotations

import dataclasses
import os
import random
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from pixelwise.checkpoint import atomic_file, load_checkpoint, make_checkpoint, save_checkpoint
from pixelwise.errors import CheckpointError, one_line


@dataclass
class Progress:
    """Where a run stands: optimiser ``step``, data ``epoch`` and ``position`` (samples of this
    epoch already consumed by each process), the best validation mean IU and its step, the world
    size the data order was sharded for, and whether the run completed (``finished``)."""

    step: int = 0
    epoch: int = 0
    position: int = 0
    best_miou: float = -1.0
    best_step: int = -1
    world_size: int = 1
    finished: bool = False

    def to_dict(self) -> dict:
        """Return a plain dict."""
        return dataclasses.asdict(self)

    @staticmethod
    def from_dict(d: dict) -> "Progress":
        """Rebuild from :meth:`to_dict` (unknown keys ignored)."""
        names = {f.name for f in dataclasses.fields(Progress)}
        return Progress(**{k: v for k, v in d.items() if k in names})


def capture_rng_state() -> dict:
    """Return this process's RNG states (torch CPU, CUDA when present, numpy, Python) as
    checkpoint-safe values (tensors, numbers, lists)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": _to_lists(random.getstate()),
    }
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict) -> None:
    """Restore the RNG states saved by :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    npst = state["numpy"]
    np.random.set_state((npst["kind"], npst["keys"].numpy().astype(np.uint32), npst["pos"], npst["has_gauss"],
                         npst["cached"]))
    random.setstate(_to_tuples(state["python"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _to_lists(x):
    return [_to_lists(v) for v in x] if isinstance(x, (tuple, list)) else x


def _to_tuples(x):
    return tuple(_to_tuples(v) for v in x) if isinstance(x, (tuple, list)) else x


def training_checkpoint(
    model: nn.Module,
    *,
    config: dict,
    class_names: list[str] | None,
    optimizer: torch.optim.Optimizer,
    scheduler,
    scaler,
    progress: Progress,
    rng_states: list[dict],
    metrics: dict | None = None,
) -> dict:
    """Return a checkpoint dict with the full training state (``rng_states``: one per process)."""
    training = {
        "optimizer": optimizer.state_dict(),
        "scheduler": scheduler.state_dict() if scheduler is not None else None,
        "scaler": scaler.state_dict() if scaler is not None else None,
        "rng": rng_states,
        "progress": progress.to_dict(),
    }
    return make_checkpoint(model, class_names=class_names, config=config, training=training, metrics=metrics)


def save_training_checkpoint(path: str | os.PathLike, ckpt: dict) -> Path:
    """Write ``ckpt`` atomically (temporary file + rename); returns the path."""
    return save_checkpoint(path, ckpt)


def copy_atomic(src: str | os.PathLike, dst: str | os.PathLike) -> Path:
    """Copy a checkpoint file to ``dst`` atomically (``best.pt`` from ``last.pt``)."""
    with atomic_file(dst) as tmp:
        shutil.copyfile(src, tmp)
    return Path(dst)


def load_training_checkpoint(path: str | os.PathLike) -> dict:
    """Load a checkpoint to resume from; raise :class:`CheckpointError` (one line) if it is
    unreadable or holds no training state."""
    ckpt = load_checkpoint(path)
    training = ckpt.get("training")
    if not isinstance(training, dict) or "progress" not in training or "optimizer" not in training:
        raise CheckpointError(
            f"{path}: holds weights but no training state, so it cannot be resumed; start a new run from "
            "its weights with --init-from"
        )
    if not isinstance(ckpt.get("config"), dict):
        raise CheckpointError(f"{path}: holds no training config; start a new run with --init-from")
    return ckpt


def restore_training(
    ckpt: dict,
    *,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler,
    scaler,
    rank: int = 0,
    world_size: int = 1,
    source: str = "checkpoint",
) -> tuple[Progress, bool]:
    """Load weights and training state from ``ckpt`` into the given objects and restore this
    process's RNG state. Returns ``(progress, exact)``; ``exact`` is False when the data order cannot
    be continued exactly (different number of processes)."""
    try:
        model.load_state_dict(ckpt["state_dict"], strict=True)
    except RuntimeError as exc:
        raise CheckpointError(f"{source}: weights do not fit the configured model: {one_line(exc)}") from None
    training = ckpt["training"]
    try:
        optimizer.load_state_dict(training["optimizer"])
    except (ValueError, KeyError) as exc:
        raise CheckpointError(f"{source}: optimiser state does not fit this model/config: {exc}") from None
    if scheduler is not None and training.get("scheduler") is not None:
        scheduler.load_state_dict(training["scheduler"])
    if scaler is not None and training.get("scaler") is not None:
        scaler.load_state_dict(training["scaler"])
    progress = Progress.from_dict(training["progress"])
    states = training.get("rng") or []
    exact = progress.world_size == world_size and len(states) == world_size
    if states:
        restore_rng_state(states[rank] if rank < len(states) else states[0])
    return progress, exact
