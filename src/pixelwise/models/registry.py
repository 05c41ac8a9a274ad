"""The model registry: build any model by name with keyword-only arguments."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from pixelwise.errors import PixelwiseError


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its factory, family and one-line description."""

    name: str
    factory: Callable[..., nn.Module]
    family: str
    description: str


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, *, family: str, description: str):
    """Decorator registering a factory ``f(*, num_classes, width, **kw) -> nn.Module`` by name."""

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        _REGISTRY[name] = ModelEntry(name, factory, family, description)
        return factory

    return wrap


def _ensure_builtins() -> None:
    # importing the catalogue registers the built-in models
    import pixelwise.models.catalogue  # noqa: F401


def list_models() -> list[str]:
    """Return the registered model names, sorted."""
    _ensure_builtins()
    return sorted(_REGISTRY)


def get_entry(name: str) -> ModelEntry:
    """Return the registry entry for ``name``; an unknown name lists the valid ones."""
    _ensure_builtins()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise PixelwiseError(
            f"unknown model {name!r}; valid models: {', '.join(sorted(_REGISTRY))}"
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
