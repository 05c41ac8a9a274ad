"""pixelwise: FCN and DeconvNet semantic segmentation, paper-exact and practical."""

from pixelwise.models.registry import create_model as _create_model
from pixelwise.models.registry import list_models

__version__ = "0.1.0"

__all__ = ["create_model", "list_models", "load_model", "__version__"]


def create_model(name, *, weights=None, **kwargs):
    """Build model ``name`` (see :func:`list_models`): ``(N, 3, H, W)`` images to ``(N, C, H, W)``
    logits. ``weights``: None (random initialisation), the name of trained weights of that model
    (``voc-fcn8s``: the model is returned in eval mode with their classes and input convention), or
    ImageNet backbone weights (``vgg16`` alias ``imagenet``, ``vgg16-caffe``) for its VGG16; weights
    are downloaded and converted once into the cache (``pixelwise weights list``). Other keyword
    arguments go to :func:`pixelwise.models.create_model` (``num_classes``, ``width``, ...)."""
    if weights is None:
        return _create_model(name, **kwargs)
    from pixelwise.weights.zoo import create_model_with_weights

    return create_model_with_weights(name, weights=weights, **kwargs)


def load_model(path, *, map_location="cpu"):
    """Load a pixelwise checkpoint and return the model in eval mode.

    The returned module carries ``.input_convention`` (how images must be normalised) and
    ``.class_names``; see :func:`pixelwise.checkpoint.load_model`.
    """
    from pixelwise.checkpoint import load_model as _load

    return _load(path, map_location=map_location)
