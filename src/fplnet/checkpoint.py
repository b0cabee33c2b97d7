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

    eval_size     [H, W] the network runs at (None: see eval_short_side); see ``fplnet.spec``
    eval_short_side  without eval_size, the input's shorter side is scaled to this, aspect kept
                  (None: the input's own size)

Shipped weights are safetensors files in ``fplnet/weights``; the same description (the sizes
included) is stored as JSON in the safetensors metadata under the key "fplnet".

This module reads and writes the files only and imports no model code: rebuilding a model
from a checkpoint (``build_model``, ``load_model``, ``create_model(pretrained=...)``) lives in
``fplnet.models``, which builds on this module, so the two never import each other.
"""
from __future__ import annotations

import dataclasses
import json
import zipfile
from pathlib import Path
from typing import Any, Optional, Union

import torch
from torch import nn

from .graph_export import graph_format
from .io import atomic_write, atomic_write_bytes

FORMAT = "fplnet-checkpoint/1"
WEIGHTS_DIR = Path(__file__).parent / "weights"
# name -> (model name, file in WEIGHTS_DIR)
# camvid: trained on train + val (it has seen val); its metadata carries the same recipe's figure
# on a sequence it never saw (`heldout`).
PRETRAINED = {
    "camvid": ("fplnet", "fplnet_camvid.safetensors"),
}


class CheckpointError(ValueError):
    """A file that is not a usable fplnet checkpoint; the message says which and why."""


def model_config(model: nn.Module) -> dict:
    """The model's config dataclass as JSON-able overrides for ``create_model``."""
    cfg = getattr(model, "cfg", None)
    if cfg is None or not dataclasses.is_dataclass(cfg):
        return {}
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(cfg).items()}


def config_overrides(ckpt: dict) -> dict:
    """The checkpoint's ``model_config`` as ``create_model`` overrides. JSON and torch.save turn
    tuples into lists; the config dataclasses are frozen and hold tuples."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in (ckpt.get("model_config") or {}).items()}


def describe(model: nn.Module, model_name: str, dataset: Optional[dict] = None) -> dict:
    """The part of a checkpoint that lets ``build_model`` rebuild ``model``."""
    num_classes = getattr(model, "num_classes", None)
    if num_classes is None:
        raise CheckpointError(f"model {model_name!r} does not expose num_classes")
    return {"format": FORMAT, "model_name": model_name, "model_config": model_config(model),
            "num_classes": int(num_classes), "dataset": dataset or {}}


def atomic_save(obj: Any, path: Union[str, Path]) -> None:
    """``torch.save`` through ``fplnet.io.atomic_write``: a crash never leaves a torn checkpoint."""
    atomic_write(path, lambda file: torch.save(obj, file))


# What to say whenever a file is not usable: where a valid one comes from.
HOW_TO_GET_ONE = (f"use a checkpoint written by `fplnet train` (RUN_FOLDER/last.pt or best.pt), a .safetensors "
                  f"file written by scripts/ship_weights.py, or a shipped name ({', '.join(PRETRAINED)})")


def resolve_weights_path(name_or_path: Union[str, Path]) -> Path:
    """A shipped weights name or a checkpoint path -> the file to read (which must exist)."""
    if str(name_or_path) in PRETRAINED:
        path = WEIGHTS_DIR / PRETRAINED[str(name_or_path)][1]
        if not path.exists():
            raise CheckpointError(f"the shipped weights {path} are missing from this installation; "
                                  "reinstall fplnet (pip install -e .) from a complete clone")
        return path
    path = Path(name_or_path)
    if not path.exists():
        raise CheckpointError(f"checkpoint {path} does not exist; {HOW_TO_GET_ONE}")
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} is a folder, not a file; {HOW_TO_GET_ONE}")
    return path


def _torchscript_archive(path: Path) -> Optional[bool]:
    """None for a file that is not a TorchScript archive; else whether fplnet exported it (the
    extra file fplnet.json). Read from the zip's listing, without loading anything: given a
    TorchScript archive, ``torch.load`` hands it to ``torch.jit.load`` even with
    ``weights_only=True``, which would load the archive's compiled code."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
    except (OSError, zipfile.BadZipFile):
        return None
    if not any("/code/" in name or name.endswith("/constants.pkl") for name in names):
        return None
    return any(name.endswith("/extra/fplnet.json") for name in names)


def _torch_load(path: Path, map_location) -> Any:
    if graph_format(path) is not None:
        raise CheckpointError(f"{path} is an exported model (ONNX or OpenVINO IR), not a checkpoint: `fplnet evaluate` "
                              "and `fplnet predict` (and Segmenter) run it as it is, `fplnet benchmark --checkpoint "
                              "CKPT --exported FILE` times it; this needs the checkpoint it was exported from")
    scripted = _torchscript_archive(path)
    if scripted is not None:
        made_by = " (`fplnet export --format torchscript`)" if scripted else ""
        raise CheckpointError(f"{path} is a TorchScript export{made_by}, not a checkpoint, and fplnet does not load "
                              "TorchScript from a file it was given: use the checkpoint it was exported from, or an "
                              ".onnx / OpenVINO .xml export, which `fplnet evaluate` runs as it is")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:
        # torch's own message advises retrying with weights_only=False, which would run whatever
        # code the file carries; that advice is not repeated here, only what the file is not.
        pickled = "unsupported global" in str(err).lower()   # a class or function the file asks to import
        reason = ("it holds pickled Python objects, which fplnet never loads" if pickled
                  else f"it is not a PyTorch file, or it is truncated ({type(err).__name__})")
        raise CheckpointError(f"{path} is not a valid fplnet checkpoint or weights file: {reason}; "
                              f"{HOW_TO_GET_ONE}") from None


def _safetensors_load(path: Path, map_location) -> dict:
    from safetensors import safe_open
    from safetensors.torch import load_file
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = json.loads((fh.metadata() or {}).get("fplnet", "{}"))
        state = load_file(str(path), device=str(map_location))
    except Exception as err:  # safetensors raises its own error types
        raise CheckpointError(f"{path} is not a valid fplnet weights file: safetensors cannot read it "
                              f"({type(err).__name__}); {HOW_TO_GET_ONE}") from None
    return {**meta, "state_dict": state}


def load_checkpoint(name_or_path: Union[str, Path], map_location="cpu") -> dict:
    """Read a training checkpoint (.pt) or shipped weights (.safetensors) into a checkpoint dict.
    To rebuild the model from it, use ``fplnet.models.build_model`` or ``load_model``."""
    path = resolve_weights_path(name_or_path)
    if path.suffix.lower() == ".safetensors":
        ckpt = _safetensors_load(path, map_location)
    else:
        ckpt = _torch_load(path, map_location)
    if not isinstance(ckpt, dict) or ckpt.get("format") != FORMAT or "state_dict" not in ckpt:
        raise CheckpointError(f"{path} is not a valid fplnet checkpoint or weights file (no '{FORMAT}' "
                              f"header); {HOW_TO_GET_ONE}")
    return ckpt


def weights_digest(state_dict: dict) -> str:
    """The sha256 of a model's floating-point weights (names, shapes, dtypes, values, in name
    order): what ``fplnet export`` records of the checkpoint it exported, so that a file can be
    matched to its checkpoint (``fplnet benchmark --exported``). Integer buffers (BN's batch
    counters) are left out: they change no output, and a shipped copy of the weights may drop them."""
    import hashlib
    digest = hashlib.sha256()
    for name in sorted(state_dict):
        tensor = state_dict[name]
        if not (torch.is_tensor(tensor) and tensor.is_floating_point()):
            continue
        tensor = tensor.detach().cpu().contiguous()
        digest.update(f"{name}:{tensor.dtype}:{tuple(tensor.shape)};".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    return digest.hexdigest()


def recorded_eval_size(ckpt: dict) -> Optional[tuple[int, int]]:
    """The fixed (H, W) a checkpoint's network runs at, or None (then its short side, if any,
    decides, ``recorded_eval_short_side``): its ``eval_size``, or for files written before that
    key existed, its run config's."""
    size = ckpt.get("eval_size")
    if size is None:
        size = (ckpt.get("run_config") or {}).get("eval_size")
    if size is None:
        return None
    if len(size) != 2 or min(int(v) for v in size) < 1:
        raise CheckpointError(f"eval_size {size!r} of model {ckpt.get('model_name')!r} is not [height, width]")
    return int(size[0]), int(size[1])


def recorded_eval_short_side(ckpt: dict) -> Optional[int]:
    """The short side a checkpoint's network runs its input at (``fplnet.spec``), or None: its
    ``eval_short_side``, else its run config's."""
    side = ckpt.get("eval_short_side")
    if side is None:
        side = (ckpt.get("run_config") or {}).get("eval_short_side")
    if side is None:
        return None
    if isinstance(side, bool) or not isinstance(side, (int, float)) or int(side) != side or side < 1:
        raise CheckpointError(f"eval_short_side {side!r} of model {ckpt.get('model_name')!r} is not a whole "
                              "number of pixels")
    return int(side)


def save_safetensors(ckpt: dict, path: Union[str, Path], extra: Optional[dict] = None) -> None:
    """Ship a checkpoint's weights as safetensors with its description (and ``extra``) as metadata."""
    from safetensors.torch import save
    meta = {k: ckpt[k] for k in ("format", "model_name", "model_config", "num_classes", "dataset")}
    eval_size = recorded_eval_size(ckpt)
    meta["eval_size"] = None if eval_size is None else list(eval_size)
    meta["eval_short_side"] = recorded_eval_short_side(ckpt)
    meta.update(extra or {})
    state = {k: v.detach().contiguous().cpu() for k, v in ckpt["state_dict"].items()}
    atomic_write_bytes(path, save(state, metadata={"fplnet": json.dumps(meta)}))
