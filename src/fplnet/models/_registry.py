"""Models by name (timm-style registry).

``register_model`` records a builder ``fn(num_classes, **overrides) -> nn.Module`` together with
the paper figures it should be checked against. ``create_model`` is the one entry point the
CLI, the trainer and ``torch.hub`` use.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable, Optional

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
    tags: tuple = field(default_factory=tuple)


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
        raise KeyError(f"unknown model {name!r}. Registered models: {', '.join(_REGISTRY)}")
    return _REGISTRY[name]


def create_model(name: str, num_classes: Optional[int] = None, pretrained: Optional[str] = None,
                 **overrides) -> nn.Module:
    """Build a registered model.

    ``overrides`` replace fields of the model's config (e.g. ``dilations=(1, 2, 3, 5)``).
    ``pretrained`` names shipped weights (``"camvid"``) or a checkpoint / safetensors path; the
    class count then comes from the weights unless given explicitly.
    """
    entry = get_model_entry(name)
    if pretrained is not None:
        from ..checkpoint import load_pretrained_into
        return load_pretrained_into(name, pretrained, num_classes=num_classes, **overrides)
    num_classes = DEFAULT_NUM_CLASSES if num_classes is None else num_classes
    model = entry.builder(num_classes=num_classes, **overrides)
    # Checkpoints and exporters read these two attributes; every family gets them here.
    model.num_classes = num_classes
    model.model_name = name
    return model


def register_variants(model_cls, variants: dict, tags: tuple = ()) -> None:
    """Register a family's variants, given as data: name -> (config, paper parameter count,
    where the paper gives it, paper mIoU, description). Each builder is
    ``model_cls(replace(config, **overrides), num_classes=...)``."""
    for name, (cfg, params, source, miou, description) in variants.items():
        def build(num_classes: int, _cfg=cfg, **overrides) -> nn.Module:
            return model_cls(replace(_cfg, **overrides), num_classes=num_classes)
        register_model(name, build, description=description, paper_params=params, paper_source=source,
                       paper_miou=miou, tags=tags)
