"""Building models: from the registry (``create_model``) and from checkpoints (``build_model``,
``load_model``, ``create_model(pretrained=...)``).

This is the one place that turns a checkpoint's description into a model. It sits above both
the registry and ``fplnet.checkpoint`` (which only reads and writes files), so neither of those
imports the other.
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional, Union

from torch import nn

from ..checkpoint import CheckpointError, config_overrides, load_checkpoint
from ..runtime import zero_subnormals
from ..spec import InferenceSpec
from ._registry import DEFAULT_NUM_CLASSES, get_model_entry


def create_model(name: str, num_classes: Optional[int] = None, pretrained: Optional[str] = None,
                 **overrides) -> nn.Module:
    """Build a registered model.

    ``overrides`` replace fields of the model's config (e.g. ``dilations=(1, 2, 3, 5)``).
    ``pretrained`` names shipped weights (``"camvid"``) or a checkpoint / safetensors path; the
    class count then comes from the weights unless given explicitly, and the model carries the
    weights' inference spec as ``model.inference_spec`` (``fplnet.spec``: mean, std, classes,
    palette, the network size: ``eval_size`` or ``eval_short_side``).
    """
    entry = get_model_entry(name)
    if pretrained is not None:
        return _load_pretrained(name, pretrained, num_classes, overrides)
    num_classes = DEFAULT_NUM_CLASSES if num_classes is None else num_classes
    model = entry.builder(num_classes=num_classes, **overrides)
    # Checkpoints and exporters read these two attributes; every family gets them here.
    model.num_classes = num_classes
    model.model_name = name
    return model


def _load_pretrained(name: str, pretrained: str, num_classes: Optional[int], overrides: dict) -> nn.Module:
    ckpt = load_checkpoint(pretrained)
    if ckpt["model_name"] != name:
        raise CheckpointError(f"weights {pretrained!r} hold model {ckpt['model_name']!r}, not {name!r}")
    if num_classes is not None and num_classes != ckpt["num_classes"]:
        raise CheckpointError(f"weights {pretrained!r} have {ckpt['num_classes']} classes, not {num_classes}; "
                              "to fine-tune on other classes, build the model without pretrained= and load "
                              "the encoder with `fplnet train --init-from`")
    model = create_model(name, num_classes=ckpt["num_classes"], **{**config_overrides(ckpt), **overrides})
    model.load_state_dict(ckpt["state_dict"])
    zero_subnormals(model)  # as load_model does, for the same reason
    # Ready for inference, as torch.hub users expect of pretrained weights: in training mode the
    # BatchNorms would normalize with the statistics of each input batch. model.train() to fine-tune.
    model.eval()
    model.pretrained_info = {k: v for k, v in ckpt.items() if k != "state_dict"}
    # How to feed it (mean, std, network size) and read it (classes, palette): what Segmenter applies.
    model.inference_spec = InferenceSpec.from_checkpoint(ckpt)
    return model


def build_model(ckpt: dict, load_weights: bool = True) -> nn.Module:
    """The model a checkpoint dict describes, with its weights unless ``load_weights=False``."""
    model = create_model(ckpt["model_name"], num_classes=ckpt["num_classes"], **config_overrides(ckpt))
    if load_weights:
        model.load_state_dict(ckpt["state_dict"])
    return model


def load_model(name_or_path: Union[str, Path], device="cpu") -> tuple[nn.Module, dict]:
    """Rebuild a model from a checkpoint or shipped weights, in eval mode; returns (model, checkpoint).

    Its subnormal weights are set to zero (``fplnet.runtime.zero_subnormals``): trained weights
    hold thousands, which slow Intel CPUs down several times in a process that has not switched on
    flush-to-zero, and change no output. ``build_model`` keeps a checkpoint's values exactly, and
    the file itself is untouched."""
    ckpt = load_checkpoint(name_or_path)
    model = build_model(ckpt)
    zero_subnormals(model)
    return model.to(device).eval(), ckpt
