"""Self-describing checkpoints and shipped weights.

A training checkpoint is a plain dict saved with ``torch.save`` and read back with
``torch.load(weights_only=True)``: only tensors, numbers, strings, lists and dicts, never
pickled objects. It carries everything needed to rebuild the model without the code that
trained it::

    format        "fplnet-checkpoint/1"
    model_name    registry name, e.g. "fplnet"
    model_config  the model's config dataclass as a dict (overrides for create_model)
    num_classes   classifier width
    dataset       DatasetInfo.to_dict(): class names, palette, ignore index, mean/std
    state_dict    model weights
    ... training state (optimizer, scheduler, epoch, step, run config, metrics), see engine/train.py

Shipped weights are safetensors files in ``fplnet/weights``; the same description is stored
as JSON in the safetensors metadata under the key "fplnet".
"""
from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn

FORMAT = "fplnet-checkpoint/1"
WEIGHTS_DIR = Path(__file__).parent / "weights"
# name -> (model name, file in WEIGHTS_DIR)
PRETRAINED = {
    "camvid": ("fplnet", "fplnet_camvid.safetensors"),                     # trained on train; val held out
    "camvid_trainval": ("fplnet", "fplnet_camvid_trainval.safetensors"),   # trained on train + val (has seen val)
}


class CheckpointError(ValueError):
    """A file that is not a usable fplnet checkpoint; the message says which and why."""


def model_config(model: nn.Module) -> dict:
    """The model's config dataclass as JSON-able overrides for ``create_model``."""
    cfg = getattr(model, "cfg", None)
    if cfg is None or not dataclasses.is_dataclass(cfg):
        return {}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def _config_overrides(config: dict) -> dict:
    # JSON and torch.save turn tuples into lists; the config dataclasses are frozen and hold tuples.
    return {k: tuple(v) if isinstance(v, list) else v for k, v in (config or {}).items()}


def describe(model: nn.Module, model_name: str, dataset: Optional[dict] = None) -> dict:
    """The part of a checkpoint that lets ``build_model`` rebuild ``model``."""
    num_classes = getattr(model, "num_classes", None)
    if num_classes is None:
        raise CheckpointError(f"model {model_name!r} does not expose num_classes")
    return {"format": FORMAT, "model_name": model_name, "model_config": model_config(model),
            "num_classes": int(num_classes), "dataset": dataset or {}}


def atomic_save(obj: Any, path: Union[str, Path]) -> None:
    """Write to a temporary file beside ``path`` then rename, so a crash never leaves a torn file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def resolve_weights_path(name_or_path: Union[str, Path]) -> Path:
    if str(name_or_path) in PRETRAINED:
        path = WEIGHTS_DIR / PRETRAINED[str(name_or_path)][1]
        if not path.exists():
            raise CheckpointError(f"the shipped weights {path} are missing from this installation; "
                                  "reinstall fplnet (pip install -e .) from a complete clone")
        return path
    path = Path(name_or_path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist; pass a checkpoint file written by "
                              f"`fplnet train` or one of the shipped names: {', '.join(PRETRAINED)}")
    return path


def load_checkpoint(name_or_path: Union[str, Path], map_location="cpu") -> dict:
    """Read a training checkpoint (.pt) or shipped weights (.safetensors) into a checkpoint dict."""
    path = resolve_weights_path(name_or_path)
    if path.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = json.loads((fh.metadata() or {}).get("fplnet", "{}"))
            state = load_file(str(path), device=str(map_location))
        except Exception as err:  # safetensors raises its own error types
            raise CheckpointError(f"{path} is not a readable safetensors file ({err})") from err
        ckpt = {**meta, "state_dict": state}
    else:
        try:
            ckpt = torch.load(path, map_location=map_location, weights_only=True)
        except Exception as err:
            raise CheckpointError(f"{path} could not be read as an fplnet checkpoint ({type(err).__name__}: {err}). "
                                  "Checkpoints are loaded with weights_only=True: files holding pickled "
                                  "objects are refused on purpose.") from err
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "state_dict" not in ckpt:
        raise CheckpointError(f"{path} is not an fplnet checkpoint (no '{FORMAT}' header); "
                              "use a file written by `fplnet train` or `fplnet export-weights`")
    return ckpt


def build_model(ckpt: dict, load_weights: bool = True) -> nn.Module:
    from .models import create_model
    model = create_model(ckpt["model_name"], num_classes=ckpt["num_classes"], **_config_overrides(ckpt["model_config"]))
    if load_weights:
        model.load_state_dict(ckpt["state_dict"])
    return model


def load_model(name_or_path: Union[str, Path], device="cpu") -> tuple[nn.Module, dict]:
    """Rebuild a model from a checkpoint or shipped weights, in eval mode; returns (model, checkpoint)."""
    ckpt = load_checkpoint(name_or_path)
    model = build_model(ckpt).to(device).eval()
    return model, ckpt


def load_pretrained_into(model_name: str, pretrained: str, num_classes: Optional[int] = None, **overrides) -> nn.Module:
    """``create_model(name, pretrained=...)``: the checkpoint must hold that model."""
    ckpt = load_checkpoint(pretrained)
    if ckpt["model_name"] != model_name:
        raise CheckpointError(f"weights {pretrained!r} hold model {ckpt['model_name']!r}, not {model_name!r}")
    if num_classes is not None and num_classes != ckpt["num_classes"]:
        raise CheckpointError(f"weights {pretrained!r} have {ckpt['num_classes']} classes, not {num_classes}; "
                              "to fine-tune on other classes, build the model without pretrained= and load "
                              "the encoder with `fplnet train --init-from`")
    config = {**_config_overrides(ckpt["model_config"]), **overrides}
    from .models import create_model
    model = create_model(model_name, num_classes=ckpt["num_classes"], **config)
    model.load_state_dict(ckpt["state_dict"])
    model.pretrained_info = {k: v for k, v in ckpt.items() if k != "state_dict"}
    return model


def save_safetensors(ckpt: dict, path: Union[str, Path], extra: Optional[dict] = None) -> None:
    """Ship a checkpoint's weights as safetensors with its description (and ``extra``) as metadata."""
    from safetensors.torch import save_file
    meta = {k: ckpt[k] for k in ("format", "model_name", "model_config", "num_classes", "dataset")}
    meta.update(extra or {})
    state = {k: v.detach().contiguous().cpu() for k, v in ckpt["state_dict"].items()}
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp), metadata={"fplnet": json.dumps(meta)})
    os.replace(tmp, path)
