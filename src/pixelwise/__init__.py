"""pixelwise: FCN and DeconvNet semantic segmentation, paper-exact and practical."""

from pixelwise.models.registry import create_model, list_models

__version__ = "0.1.0"

__all__ = ["create_model", "list_models", "load_model", "__version__"]


def load_model(path, *, map_location="cpu"):
    """Load a pixelwise checkpoint and return the model in eval mode.

    The returned module carries ``.input_convention`` (how images must be normalised) and
    ``.class_names``; see :func:`pixelwise.checkpoint.load_model`.
    """
    from pixelwise.checkpoint import load_model as _load

    return _load(path, map_location=map_location)
