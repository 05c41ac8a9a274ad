"""Object crops of the built-in world as a classification task (the stand-in for ImageNet).

Every visible object of every scene is one example: the crop DeconvNet's stage 1 trains on
(:class:`pixelwise.train.deconvnet_sampling.ObjectCrop`: the object's box enlarged 1.2-1.5x, made
square, resized, randomly cropped and mirrored), labelled with the object's class. Like ImageNet
photographs, a crop is centred on one object and may show others around or inside it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from pixelwise.convention import InputConvention, get_convention
from pixelwise.data.transforms import normalize_image
from pixelwise.train.deconvnet_sampling import ObjectCrop

MIN_VISIBLE_PIXELS = 16
"""Objects with fewer visible pixels are left out: there is nothing to classify in them."""


class ObjectCropClassification(Dataset):
    """``(image (3, S, S) float32, label int)`` for every visible object of ``scenes``.

    ``scenes``: a dataset of samples with ``boxes``/``box_labels`` (the synthetic scenes);
    ``label = class - 1`` (the classifier has no background class, as ImageNet has none). The crop
    of item ``i`` in epoch ``e`` is a pure function of ``(seed, e, i)``.
    """

    def __init__(self, scenes: Any, crop: ObjectCrop, convention: InputConvention | str = "torchvision_rgb",
                 seed: int = 0, *, min_visible: int = MIN_VISIBLE_PIXELS) -> None:
        self.scenes = scenes
        self.crop = crop
        self.convention = get_convention(convention)
        self.seed = int(seed)
        self.epoch = 0
        self.items: list[tuple[int, int]] = []
        for i in range(len(scenes)):
            sample = scenes[i]
            visible = np.bincount(np.asarray(sample["instances"]).ravel(), minlength=len(sample["boxes"]) + 1)
            self.items += [(i, k) for k in range(len(sample["boxes"])) if visible[k + 1] >= min_visible]
        self.num_classes = int(scenes.num_classes) - 1
        self.class_names = list(scenes.class_names)[1:]

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose random crops ``__getitem__`` reproduces."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        """Return ``(image (3, S, S), label)``."""
        scene, k = self.items[index]
        rng = np.random.default_rng([self.seed, self.epoch, int(index)])
        out = self.crop.crop_object(self.scenes[scene], k, rng)
        return normalize_image(out["image"], self.convention), int(out["target_label"]) - 1

    def label_counts(self) -> np.ndarray:
        """Return the number of examples of each class, ``(num_classes,)``."""
        labels = [int(self.scenes[i]["box_labels"][k]) - 1 for i, k in self.items]
        return np.bincount(labels, minlength=self.num_classes)
