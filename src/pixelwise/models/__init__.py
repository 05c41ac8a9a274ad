"""Models: the VGG16 backbone, the FCN family, DeconvNet and EDeconvNet, their common interface
(:mod:`pixelwise.models.base`) and their registry."""

from pixelwise.models.base import Family, ModelCard, ModelInterface, SegmentationModel, SizeRule
from pixelwise.models.registry import create_model, get_entry, list_models, register_model

__all__ = ["Family", "ModelCard", "ModelInterface", "SegmentationModel", "SizeRule", "create_model", "get_entry",
           "list_models", "register_model"]
