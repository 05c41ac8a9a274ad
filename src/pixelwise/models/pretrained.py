"""The pretrained weights pixelwise can download: a table beside the model entries.

Each :class:`Weights` names its file (:class:`~pixelwise.download.Remote`: URL, file name, hash,
size), the model it builds (None for an ImageNet backbone, which initialises any VGG16 model),
its classes, where it comes from, and how :mod:`pixelwise.weights.convert` reads it. Hashes are
the ones published alongside (torchvision's SHA-256) or by a project that pins the same file
(OpenCV's ``testdata/dnn/download_models.py`` pins SHA-1s of three of the caffemodels); the
others get the SHA-256 of their first download recorded (:func:`pixelwise.download.fetch`).
Downloading, converting and loading are :mod:`pixelwise.weights.zoo`'s work; tests substitute
entries (``dataclasses.replace``) to point them at a local server.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pixelwise.download import Remote
from pixelwise.errors import PixelwiseError

BERKELEY = "http://dl.caffe.berkeleyvision.org"
POSTECH = "http://cvlab.postech.ac.kr/research/deconvnet/model"


@dataclass(frozen=True)
class Weights:
    """One downloadable set of weights.

    ``name``: what ``weights=`` and ``--backbone-weights`` take; ``remote``: the file; ``model``:
    the registered model it is (None: an ImageNet VGG16 backbone for any model); ``num_classes``
    and ``classes``: its output classes (``voc``: background + 20; ``imagenet``: the backbone's
    1000, dropped); ``source``: who released it and what it scores; ``file_format``:
    ``caffemodel`` or ``torchvision``; ``convert``: options of
    :func:`pixelwise.weights.convert.convert_weights`; ``aliases``: other names for it.
    """

    name: str
    remote: Remote
    model: str | None
    num_classes: int | None
    classes: str
    source: str
    file_format: str = "caffemodel"
    convert: dict = field(default_factory=dict)
    aliases: tuple[str, ...] = ()

    @property
    def is_backbone(self) -> bool:
        """Whether these are ImageNet backbone weights (they initialise a model, not replace it)."""
        return self.model is None


PRETRAINED: dict[str, Weights] = {
    w.name: w
    for w in (
        Weights("vgg16", Remote("https://download.pytorch.org/models/vgg16-397923af.pth", "vgg16-397923af.pth",
                                "sha256:397923af8e79cdbb6a7127f12361acd7a2f83e06b05044ddf496e83de57a5bf0", 553_433_881),
                None, None, "imagenet", "torchvision's ImageNet VGG16 (RGB, 0..1, ImageNet mean/std)",
                file_format="torchvision", aliases=("imagenet",)),
        Weights("vgg16-caffe", Remote("http://www.robots.ox.ac.uk/~vgg/software/very_deep/caffe/"
                                      "VGG_ILSVRC_16_layers.caffemodel", "VGG_ILSVRC_16_layers.caffemodel",
                                      "sha1:9363e1f6d65f7dba68c4f27a1e62105cdf6c4e24", 553_432_081),
                None, None, "imagenet", "Simonyan & Zisserman's Caffe VGG16 (BGR, mean subtracted), the one both "
                "papers fine-tune", aliases=("imagenet-caffe",)),
        Weights("vgg16-conv-caffe", Remote(f"{POSTECH}/VGG_conv/VGG_ILSVRC_16_layers_conv.caffemodel",
                                           "VGG_ILSVRC_16_layers_conv.caffemodel", None, 553_432_081),
                None, None, "imagenet", "the DeconvNet release's Caffe VGG16 with fc6/fc7 as convolutions"),
        Weights("voc-fcn32s", Remote(f"{BERKELEY}/fcn32s-heavy-pascal.caffemodel", "fcn32s-heavy-pascal.caffemodel",
                                     "sha1:05eb922d7829c39448f57e5ab9d8cd75d6c0be6d", 544_610_000),
                "fcn32s", 21, "voc", "FCN release (heavy, PAMI): 63.6 mean IU on seg11valid"),
        Weights("voc-fcn16s", Remote(f"{BERKELEY}/fcn16s-heavy-pascal.caffemodel", "fcn16s-heavy-pascal.caffemodel",
                                     None, 539_260_000),
                "fcn16s", 21, "voc", "FCN release (heavy, PAMI): 65.0 mean IU on seg11valid"),
        Weights("voc-fcn8s", Remote(f"{BERKELEY}/fcn8s-heavy-pascal.caffemodel", "fcn8s-heavy-pascal.caffemodel",
                                    "sha1:c449ea74dd7d83751d1357d6a8c323fcf4038962", 537_960_000),
                "fcn8s", 21, "voc", "FCN release (heavy, PAMI): 65.5 mean IU on seg11valid, 67.2 on VOC2012 test"),
        Weights("voc-fcn8s-atonce", Remote(f"{BERKELEY}/fcn8s-atonce-pascal.caffemodel",
                                           "fcn8s-atonce-pascal.caffemodel", None, 537_960_000),
                "fcn8s_atonce", 21, "voc", "FCN release (all at once): 65.4 mean IU on seg11valid"),
        Weights("fcn-8s-pascal", Remote(f"{BERKELEY}/fcn-8s-pascal.caffemodel", "fcn-8s-pascal.caffemodel", None,
                                        537_960_000),
                "fcn8s", 21, "voc", "CVPR 2015 Model Zoo FCN-8s (62.2 mean IU on VOC2012 test), the DeconvNet "
                "release's EDeconvNet member", convert={"layout": "fcn-pascal"}),
        Weights("voc-deconvnet", Remote(f"{POSTECH}/DeconvNet/DeconvNet_trainval_inference.caffemodel",
                                        "DeconvNet_trainval_inference.caffemodel", None, 1_007_350_000),
                "deconvnet", 21, "voc", "DeconvNet release (BN folded for inference): 69.6 mean IU on VOC2012 test "
                "with proposals"),
    )
}
"""Every downloadable weights entry by name."""


def weights_names(*, aliases: bool = False) -> list[str]:
    """Return the weights names (with ``aliases``: their other names too)."""
    names = list(PRETRAINED)
    return names + [a for w in PRETRAINED.values() for a in w.aliases] if aliases else names


def find_weights(name: str) -> Weights | None:
    """Return the entry called ``name`` (or one of its aliases); None when there is none."""
    if name in PRETRAINED:
        return PRETRAINED[name]
    return next((w for w in PRETRAINED.values() if name in w.aliases), None)


def get_weights(name: str | Weights) -> Weights:
    """Return the entry ``name`` (an entry passes through); an unknown name lists the valid ones."""
    if isinstance(name, Weights):
        return name
    found = find_weights(name)
    if found is None:
        raise PixelwiseError(f"unknown weights {name!r}; valid: {', '.join(weights_names(aliases=True))} "
                             "(see `pixelwise weights list`)")
    return found


def weights_for(model: str) -> list[Weights]:
    """Return the full-model weights of the registered model ``model``."""
    return [w for w in PRETRAINED.values() if w.model == model]


__all__ = ["PRETRAINED", "Weights", "find_weights", "get_weights", "weights_for", "weights_names"]
