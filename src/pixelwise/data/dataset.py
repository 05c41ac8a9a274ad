"""The torch Dataset wrapper: raw numpy samples -> transformed, normalised tensors.

Randomness is a pure function of ``(seed, epoch, index)``: sample ``i`` of epoch ``e`` is
transformed with ``numpy.random.default_rng([seed, e, i])``, whatever the worker, the batch
order or whether training was interrupted and resumed. Call :meth:`SegmentationDataset.set_epoch`
at the start of every epoch (as with ``DistributedSampler``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from pixelwise.convention import CAFFE_BGR, InputConvention, get_convention
from pixelwise.data.transforms import Transform, normalize_image

EXTRA_KEYS = ("size_map", "instances", "boxes", "box_labels")
"""Sample keys passed on in ``extras`` (with ``return_extras=True``) when a sample has them."""


class SegmentationDataset(Dataset):
    """Wrap a pixelwise dataset (``base[i]`` -> sample dict) for training and evaluation.

    ``__getitem__`` returns ``(image (3, H, W) float32, mask (H, W) int64)``, or with
    ``return_extras=True`` ``(image, mask, extras)`` where ``extras`` holds ``name`` (str) and, when
    the sample has them, ``size_map`` (H, W) int64, ``instances`` (H, W) int64, ``boxes`` (K, 4)
    float32 and ``box_labels`` (K,) int64 tensors.
    """

    def __init__(
        self,
        base: Any,
        transform: Transform | None = None,
        convention: InputConvention | str | dict = CAFFE_BGR,
        seed: int = 0,
        *,
        return_extras: bool = False,
    ) -> None:
        self.base = base
        self.transform = transform
        self.convention = get_convention(convention)
        self.seed = int(seed)
        self.epoch = 0
        self.return_extras = bool(return_extras)

    @property
    def num_classes(self) -> int:
        """Number of classes of the wrapped dataset."""
        return int(self.base.num_classes)

    @property
    def class_names(self) -> list[str]:
        """Class names of the wrapped dataset."""
        return list(self.base.class_names)

    @property
    def names(self) -> list[str]:
        """Sample ids of the wrapped dataset."""
        return list(self.base.names)

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random transforms ``__getitem__`` reproduces."""
        self.epoch = int(epoch)

    def rng(self, index: int) -> np.random.Generator:
        """Return the generator used for sample ``index`` in the current epoch."""
        return np.random.default_rng([self.seed, self.epoch, int(index)])

    def sample(self, index: int) -> dict:
        """Return the transformed (not yet normalised) sample dict ``index``."""
        sample = self.base[index]
        if self.transform is not None:
            sample = self.transform(sample, self.rng(index))
        return sample

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, index: int) -> tuple:
        """Return ``(image, mask)`` or ``(image, mask, extras)`` (see the class docstring)."""
        sample = self.sample(index)
        image = normalize_image(sample["image"], self.convention)
        mask = torch.from_numpy(np.ascontiguousarray(sample["mask"]).astype(np.int64))
        if not self.return_extras:
            return image, mask
        extras: dict[str, Any] = {"name": sample.get("name", str(index))}
        for key in EXTRA_KEYS:
            if key in sample:
                arr = np.ascontiguousarray(sample[key])
                dtype = np.float32 if key == "boxes" else np.int64
                extras[key] = torch.from_numpy(arr.astype(dtype))
        return image, mask, extras

    def __repr__(self) -> str:
        return (
            f"SegmentationDataset({self.base!r}, transform={self.transform!r}, "
            f"convention={self.convention.name!r}, seed={self.seed})"
        )

