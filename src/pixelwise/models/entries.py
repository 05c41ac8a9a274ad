"""The table of registered models and the decorator that fills it.

Imported by :mod:`pixelwise.models.catalogue` (the built-in models) and by
:mod:`pixelwise.models.registry` (lookups); it imports neither, so there is no import circle.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from pixelwise.models.base import Family


@dataclass(frozen=True)
class ModelEntry:
    """A registered model: its factory, family and one-line description."""

    name: str
    factory: Callable[..., nn.Module]
    family: Family
    description: str


REGISTRY: dict[str, ModelEntry] = {}
"""Every registered model by name (read it through :mod:`pixelwise.models.registry`)."""


def register_model(name: str, *, family: Family | str, description: str):
    """Decorator registering a factory ``f(*, num_classes, width, **kw) -> nn.Module`` by name
    (``family``: a :class:`Family` or its value)."""

    def wrap(factory: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        if name in REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        REGISTRY[name] = ModelEntry(name, factory, Family(family), description)
        return factory

    return wrap
