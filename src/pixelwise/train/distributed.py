"""Distributed data parallel helpers: set-up from ``torchrun`` variables, rank queries, reductions.

Under ``torchrun --nproc_per_node N`` every process trains on its own shard of the data (see
:class:`pixelwise.train.data.ShardedSampler`); gradients are averaged by DDP, the confusion
matrices summed, and only rank 0 writes checkpoints, logs and figures. Backend: NCCL on CUDA,
gloo on CPU. Without the torchrun variables everything runs as a single process.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from pixelwise.errors import PixelwiseError
from pixelwise.runtime import resolve_device


@dataclass(frozen=True)
class DistInfo:
    """This process's place in the job: rank, world size, local rank and device."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        """True on rank 0 (the process that writes files)."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """True when more than one process takes part."""
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    """Return True when the torchrun environment variables are set."""
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def init_distributed(device_name: str = "auto") -> DistInfo:
    """Initialise the process group when launched by torchrun (else a single process); return
    the :class:`DistInfo`. On CUDA each process takes the GPU ``LOCAL_RANK``."""
    device = resolve_device(device_name)
    if not launched_by_torchrun():
        return DistInfo(0, 1, 0, device)
    rank = int(os.environ["RANK"])
    world = int(os.environ["WORLD_SIZE"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if device.type == "cuda":
        if local >= torch.cuda.device_count():
            raise PixelwiseError(
                f"LOCAL_RANK {local} but only {torch.cuda.device_count()} GPUs; lower --nproc_per_node"
            )
        device = torch.device("cuda", local)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return DistInfo(rank, world, local, device)


def current() -> DistInfo:
    """Return rank and world size of the running process group (device left as CPU)."""
    if dist.is_available() and dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", 0)),
                        torch.device("cpu"))
    return DistInfo(0, 1, 0, torch.device("cpu"))


def is_main() -> bool:
    """True on rank 0 or without a process group."""
    return current().rank == 0


def barrier() -> None:
    """Wait for every process (no-op for a single process)."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def cleanup() -> None:
    """Destroy the process group if this module's :func:`init_distributed` created one."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def default_threads(world_size_on_node: int = 1) -> int:
    """Return a sensible ``torch.set_num_threads`` value: the cores shared by the local processes."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // max(1, world_size_on_node))
