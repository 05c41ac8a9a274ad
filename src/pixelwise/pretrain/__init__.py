"""``pixelwise pretrain``: the ImageNet of the built-in world.

Both papers fine-tune a VGG16 that was first trained to classify ImageNet images. Nothing can be
downloaded here, so pixelwise trains the same network, at the same width as the segmentation
models, to classify object crops of the built-in world (:mod:`pixelwise.data.synthetic`, its own
``pretrain`` scenes), and saves it as a torchvision VGG16-BN state dict: the file
``--backbone-weights`` takes, so that FCN is built by the paper's surgery (fc6/fc7 from the
classifier, BN folded into the convolutions, new score layers at zero) and DeconvNet's encoder
starts from it.

- :mod:`pixelwise.pretrain.classifier`: the classifier and its torchvision export;
- :mod:`pixelwise.pretrain.crops`: the object-crop classification data;
- :mod:`pixelwise.pretrain.run`: settings, training, and the on-disk cache.
"""

from pixelwise.pretrain.run import PretrainConfig, PretrainResult, cached_pretrain, pretrain

__all__ = ["PretrainConfig", "PretrainResult", "cached_pretrain", "pretrain"]
