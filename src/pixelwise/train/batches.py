"""The training batch stream: epochs, shuffling and the resume position in one place.

The stream reads and advances ``progress.epoch`` / ``progress.position`` (images of this process's
shard already consumed in the current epoch), so a checkpoint of ``progress`` is enough to continue
the data order exactly.
"""

from __future__ import annotations

from collections.abc import Iterator

from pixelwise.train import data as tdata
from pixelwise.train.checkpointing import Progress
from pixelwise.train.config import TrainConfig


class BatchStream:
    """An endless stream of ``(images (N, 3, H, W), labels (N, H, W))`` training batches.

    Each epoch reshuffles (seeded by ``cfg.seed`` and the epoch) and tells the dataset its epoch
    (for epoch-dependent augmentation); a resumed stream starts mid-epoch at ``progress.position``.
    """

    def __init__(self, dataset: tdata.SegmentationDataset, cfg: TrainConfig, progress: Progress, *,
                 rank: int = 0, world_size: int = 1) -> None:
        self.dataset = dataset
        self.progress = progress
        self.batch_size = cfg.batch_size
        self.sampler = tdata.ShardedSampler(len(dataset), shuffle=True, seed=cfg.seed, rank=rank,
                                            world_size=world_size, drop_uneven=True)
        self.loader = tdata.train_loader(dataset, cfg, self.sampler)
        self._it: Iterator | None = None

    def _start_epoch(self) -> None:
        self.sampler.set_epoch(self.progress.epoch)
        self.sampler.set_start(self.progress.position)
        self.dataset.set_epoch(self.progress.epoch)
        self._it = iter(self.loader)

    def next(self) -> tuple:
        """Return the next batch, moving to a new epoch when this one is used up."""
        if self._it is None:
            self._start_epoch()
        try:
            batch = next(self._it)
        except StopIteration:
            self.progress.epoch += 1
            self.progress.position = 0
            self._start_epoch()
            batch = next(self._it)
        self.progress.position += self.batch_size
        return batch

    def take(self, count: int) -> list[tuple]:
        """Return the next ``count`` batches (one optimiser step's micro-batches)."""
        return [self.next() for _ in range(count)]
