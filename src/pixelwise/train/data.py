"""Training and validation data for a run: datasets, transforms, a resumable sharded sampler, loaders.

The data order is a pure function of ``(seed, epoch)``: :class:`ShardedSampler` permutes the
indices with ``numpy.random.default_rng([seed, epoch])`` and gives process ``r`` of ``W`` every
``W``-th index from ``r``. A checkpoint stores ``(epoch, position)``; the sampler restarts there,
and the augmentation of every sample depends only on ``(seed, epoch, index)``
(:class:`pixelwise.data.dataset.SegmentationDataset`), so a resumed run sees the same batches.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Sampler

from pixelwise.convention import InputConvention
from pixelwise.data import build_dataset
from pixelwise.data.dataset import EXTRA_KEYS, SegmentationDataset
from pixelwise.data.transforms import Compose, RandomCrop, RandomHorizontalFlip, RandomScale, Rescale
from pixelwise.errors import DataError
from pixelwise.train.config import TrainConfig
from pixelwise.train.deconvnet_sampling import ObjectCrop, ProposalCrop


class SubsetView:
    """The first ``limit`` samples of a dataset, keeping ``num_classes``/``class_names``/``names``."""

    def __init__(self, base: Any, limit: int | None) -> None:
        self.base = base
        self.length = len(base) if limit is None else min(int(limit), len(base))
        self.num_classes = base.num_classes
        self.class_names = list(base.class_names)
        self.names = list(base.names)[: self.length]
        self.palette = getattr(base, "palette", None)  # the dataset's class colours, when it has them

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < self.length:
            raise IndexError(index)
        return self.base[index]


class CachedView(SubsetView):
    """Like :class:`SubsetView`, keeping each decoded/generated sample in memory after first use."""

    def __init__(self, base: Any, limit: int | None = None) -> None:
        super().__init__(base, limit)
        self._cache: dict[int, dict] = {}

    def __getitem__(self, index: int) -> dict:
        if index not in self._cache:
            self._cache[index] = super().__getitem__(index)
        return self._cache[index]


class ShardedSampler(Sampler[int]):
    """Deterministic, resumable, optionally sharded index order.

    ``shuffle``: a fresh permutation per epoch from ``(seed, epoch)``; ``drop_uneven`` (training)
    cuts the order to a multiple of ``world_size`` so that every process gets as many samples
    (evaluation keeps all, the shards then differ by at most one). :meth:`set_start` skips the
    first ``position`` indices of this process's shard (resume).
    """

    def __init__(self, length: int, *, shuffle: bool, seed: int = 0, rank: int = 0, world_size: int = 1,
                 drop_uneven: bool = True) -> None:
        self.length = int(length)
        self.shuffle = shuffle
        self.seed = int(seed)
        self.rank = int(rank)
        self.world_size = int(world_size)
        self.drop_uneven = drop_uneven
        self.epoch = 0
        self.start = 0

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (the permutation)."""
        self.epoch = int(epoch)

    def set_start(self, position: int) -> None:
        """Skip the first ``position`` indices of this process's shard."""
        self.start = int(position)

    def shard(self) -> np.ndarray:
        """Return this process's indices of the current epoch, in order."""
        order = (np.random.default_rng([self.seed, self.epoch]).permutation(self.length) if self.shuffle
                 else np.arange(self.length))
        if self.drop_uneven:
            order = order[: len(order) - len(order) % self.world_size]
        return order[self.rank :: self.world_size]

    def __iter__(self) -> Iterator[int]:
        return iter(self.shard()[self.start :].tolist())

    def __len__(self) -> int:
        return max(0, len(self.shard()) - self.start)


_MEMORY: dict[str, CachedView] = {}
"""The cached views of this process, by what they hold: runs in a row (staged training, the demo,
``reproduce``) decode or generate each sample once."""


def base_dataset(cfg: TrainConfig, split: str, limit: int | None) -> Any:
    """Return the raw dataset of ``split`` (limited and cached as the config says; a cached view
    is shared by every run of this process that asks for the same data)."""
    options = dict(cfg.data_options)
    if cfg.cache_data:
        key = repr((cfg.dataset, cfg.data_root, split, sorted(options.items()), limit))
        if key not in _MEMORY:
            _MEMORY[key] = CachedView(build_dataset(cfg.dataset, root=cfg.data_root, split=split, **options), limit)
        view = _MEMORY[key]
    else:
        view = SubsetView(build_dataset(cfg.dataset, root=cfg.data_root, split=split, **options), limit)
    if len(view) == 0:
        raise DataError(f"dataset {cfg.dataset!r} split {split!r} is empty")
    return view


def train_transform(cfg: TrainConfig):
    """Return the paired transform of the config's sampling mode (None: whole images as they are),
    after a resize to the config's ``input_scale`` when it is not 1."""
    steps = [Rescale(cfg.input_scale)] if cfg.input_scale != 1.0 else []
    if cfg.sampling == "objects":
        steps.append(ObjectCrop(cfg.crop_size, cfg.object_resize, tuple(cfg.object_enlarge),
                                min_side=cfg.object_min_side, pad=cfg.crop_pad))
    elif cfg.sampling == "proposals":
        steps.append(ProposalCrop(cfg.crop_size, cfg.object_resize, tuple(cfg.object_enlarge),
                                  iou_range=tuple(cfg.proposal_iou), min_side=cfg.object_min_side,
                                  pad=cfg.crop_pad))
    else:
        steps += _whole_image_steps(cfg)
    if len(steps) == 1 and cfg.sampling != "whole":
        return steps[0]
    return Compose(steps) if steps else None


def _whole_image_steps(cfg: TrainConfig) -> list:
    """The random rescale, crop and flip of whole-image sampling, as the config sets them."""
    steps = []
    if cfg.scale_range:
        steps.append(RandomScale(*cfg.scale_range))
    if cfg.crop_size:
        steps.append(RandomCrop(cfg.crop_size, mask_fill=cfg.ignore_index))
    if cfg.hflip:
        steps.append(RandomHorizontalFlip())
    return steps


def train_dataset(cfg: TrainConfig) -> SegmentationDataset:
    """Return the training :class:`SegmentationDataset` (``(image, mask)`` items)."""
    base = base_dataset(cfg, cfg.train_split, cfg.train_limit)
    return SegmentationDataset(base, train_transform(cfg), cfg.convention, cfg.seed)


def val_dataset(cfg: TrainConfig, split: str | None = None, limit: int | None = None,
                convention: InputConvention | None = None) -> SegmentationDataset:
    """Return a whole-image evaluation dataset (``(image, mask, extras)`` items, no augmentation),
    normalised with ``convention`` (default: the config's; a checkpoint's model brings its own)."""
    split = cfg.val_split if split is None else split
    base = base_dataset(cfg, split, cfg.val_limit if limit is None else limit)
    # at an input scale, only the image shrinks: the upsampled scores are judged on the full-size labels
    resize = Rescale(cfg.input_scale, labels=False) if cfg.input_scale != 1.0 else None
    return SegmentationDataset(base, resize, convention or cfg.convention, cfg.seed, return_extras=True)


def pad_collate(batch: list[tuple]) -> tuple:
    """Batch evaluation items of different sizes: images zero-padded (zero = the mean colour after
    normalisation) at the bottom/right to the largest size, masks and size maps padded with 255.
    Returns ``(images (N, 3, H, W), masks (N, H, W), extras)``; ``extras["sizes"]`` holds the
    original ``(h, w)`` of each image."""
    def pad(t: torch.Tensor, value: float, like: int) -> torch.Tensor:
        # to the largest size of element ``like`` in the batch (images are smaller than their
        # masks when the model runs at an input scale below 1)
        h = max(item[like].shape[-2] for item in batch)
        w = max(item[like].shape[-1] for item in batch)
        return F.pad(t, (0, w - t.shape[-1], 0, h - t.shape[-2]), value=value)

    images = torch.stack([pad(item[0], 0.0, 0) for item in batch])
    masks = torch.stack([pad(item[1], 255, 1) for item in batch])
    extras: dict[str, Any] = {"name": [item[2].get("name") for item in batch],
                              "sizes": [tuple(item[0].shape[-2:]) for item in batch]}
    for key in EXTRA_KEYS:
        values = [item[2].get(key) for item in batch]
        if all(v is not None for v in values) and key in ("size_map",):
            extras[key] = torch.stack([pad(v, 255, 1) for v in values])
    return images, masks, extras


def train_loader(dataset: SegmentationDataset, cfg: TrainConfig, sampler: ShardedSampler) -> DataLoader:
    """Return the training loader (full batches only; its own generator so that creating it never
    draws from the global torch RNG, which dropout uses)."""
    per_rank = len(sampler.shard())
    if per_rank < cfg.batch_size:
        raise DataError(
            f"training set has {len(dataset)} images ({per_rank} per process), fewer than batch_size "
            f"{cfg.batch_size}; lower --batch-size or use more data"
        )
    return DataLoader(dataset, batch_size=cfg.batch_size, sampler=sampler, drop_last=True,
                      num_workers=cfg.workers, generator=torch.Generator().manual_seed(cfg.seed),
                      persistent_workers=False)


def eval_loader(dataset: SegmentationDataset, batch_size: int, *, rank: int = 0, world_size: int = 1,
                workers: int = 0) -> DataLoader:
    """Return a sharded, ordered evaluation loader with :func:`pad_collate`."""
    sampler = ShardedSampler(len(dataset), shuffle=False, rank=rank, world_size=world_size, drop_uneven=False)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, collate_fn=pad_collate,
                      num_workers=workers, generator=torch.Generator().manual_seed(0))
