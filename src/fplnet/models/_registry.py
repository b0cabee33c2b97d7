"""Models by name (timm-style registry).

``register_model`` records a builder ``fn(num_classes, **overrides) -> nn.Module`` together with
the paper figures it should be checked against. ``create_model`` (in ``_factory``) is the one
entry point the CLI, the trainer and ``torch.hub`` use.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Callable, Optional

from torch import nn

DEFAULT_NUM_CLASSES = 19  # Cityscapes train ids; the paper's own counts use 20 (19 + void).


@dataclass(frozen=True)
class ModelEntry:
    name: str
    builder: Callable[..., nn.Module]
    description: str = ""
    paper_params: Optional[float] = None       # parameters as printed by its paper (count, not millions)
    paper_source: str = ""                      # e.g. "Table VIII"
    paper_miou: Optional[float] = None          # mIoU printed next to it, for reference only


@dataclass(frozen=True)
class ModelVariant:
    """One named variant of a model family, as the family's file lists it: the config that
    builds it and the figures its paper prints for it."""
    config: Any                                 # the family's frozen config dataclass
    description: str
    paper_params: Optional[float] = None       # parameters as printed (count, not millions)
    paper_source: str = ""                      # where the paper prints them, e.g. "Table VIII"
    paper_miou: Optional[float] = None          # mIoU printed next to them


class UnknownModelError(KeyError, ValueError):
    """A model name that is not registered; the message lists the registered ones. A ValueError
    too, so that command-line code reports it like every other bad value."""

    def __str__(self) -> str:   # KeyError would print the message in quotes
        return str(self.args[0])


_REGISTRY: dict[str, ModelEntry] = {}


def register_model(name: str, builder: Callable[..., nn.Module], **info) -> ModelEntry:
    if name in _REGISTRY:
        raise ValueError(f"model {name!r} is registered twice")
    entry = ModelEntry(name, builder, **info)
    _REGISTRY[name] = entry
    return entry


def list_models(pattern: str = "") -> list[str]:
    """Registered names containing ``pattern``, in registration order."""
    return [name for name in _REGISTRY if pattern in name]


def get_model_entry(name: str) -> ModelEntry:
    if name not in _REGISTRY:
        raise UnknownModelError(f"unknown model {name!r}; registered models: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def register_variants(model_cls, variants: dict[str, ModelVariant]) -> None:
    """Register a family's variants, given as data (name -> ``ModelVariant``). Each builder is
    ``model_cls(replace(variant.config, **overrides), num_classes=...)``."""
    for name, variant in variants.items():
        def build(num_classes: int, _cfg=variant.config, **overrides) -> nn.Module:
            return model_cls(replace(_cfg, **overrides), num_classes=num_classes)
        register_model(name, build, description=variant.description, paper_params=variant.paper_params,
                       paper_source=variant.paper_source, paper_miou=variant.paper_miou)
