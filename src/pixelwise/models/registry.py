"""The model registry: build any model by name with keyword-only arguments.

The table and :func:`register_model` live in :mod:`pixelwise.models.entries`; importing
:mod:`pixelwise.models.catalogue` here fills it with the built-in models.
"""

from __future__ import annotations

from torch import nn

from pixelwise.errors import PixelwiseError
from pixelwise.models import catalogue as _catalogue  # noqa: F401  (registers the built-in models)
from pixelwise.models.entries import REGISTRY, ModelEntry, register_model
from pixelwise.models.pretrained import weights_for

__all__ = ["ModelEntry", "create_model", "get_entry", "list_models", "register_model"]


def list_models(*, pretrained: bool = False) -> list[str]:
    """Return the registered model names, sorted; ``pretrained``: only those with downloadable
    trained weights (:data:`pixelwise.models.pretrained.PRETRAINED`)."""
    if pretrained:
        return sorted(name for name in REGISTRY if weights_for(name))
    return sorted(REGISTRY)


def get_entry(name: str) -> ModelEntry:
    """Return the registry entry for ``name``; an unknown name lists the valid ones."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise PixelwiseError(
            f"unknown model {name!r}; valid models: {', '.join(sorted(REGISTRY))}"
        ) from None


def create_model(name: str, *, num_classes: int = 21, width: float = 1.0, **kwargs) -> nn.Module:
    """Build model ``name`` (see :func:`list_models`); returns an ``nn.Module`` mapping
    ``(N, 3, H, W)`` images to ``(N, num_classes, H, W)`` logits.

    ``width`` scales every hidden channel count (1.0 = paper-exact); other keyword arguments go to
    the model's factory (e.g. ``upsampling="learned"``, ``pad100=False``, ``mode="product"``).
    The returned module records ``model.pixelwise_spec`` (name and arguments) for checkpoints.
    """
    entry = get_entry(name)
    if num_classes < 1:
        raise PixelwiseError(f"num_classes must be >= 1, got {num_classes}")
    if not 0 < width <= 4:
        raise PixelwiseError(f"width must be in (0, 4], got {width}")
    try:
        model = entry.factory(num_classes=num_classes, width=width, **kwargs)
    except (TypeError, ValueError) as exc:
        raise PixelwiseError(f"bad argument for model {name!r}: {exc}") from None
    model.pixelwise_spec = {"name": name, "num_classes": num_classes, "width": width, **kwargs}
    return model
