"""Models: the VGG16 backbone, the FCN family, DeconvNet and EDeconvNet, and their registry."""

from pixelwise.models.registry import create_model, get_entry, list_models, register_model

__all__ = ["create_model", "get_entry", "list_models", "register_model"]
