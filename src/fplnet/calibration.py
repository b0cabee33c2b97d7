"""Calibration frames for INT8 post-training quantization (``openvino+int8``, ``fplnet export --int8``).

Quantization ranges are set from what the network sees on real frames of the kind it was
trained on, so the frames come from the model's training split, preprocessed exactly as at
inference (``fplnet.spec``: normalized with the checkpoint's statistics, resized to its network
size):

* by default, the data set and training split recorded in the checkpoint's run config
  (``dataset``, ``data_root``, ``train_split``), when that folder is reachable from here;
* otherwise a folder the user passes (``--calib-data``, ``calib_data=``): a root of the
  checkpoint's data set (its training split is used), or any folder of images (searched
  recursively, in file-name order).

``count`` frames are taken evenly spaced in file-name order over the split (every frame when it
has fewer), so that on a data set stored sequence by sequence, as CamVid is, every sequence is
represented. Frames the quantized model is then scored on (``exclude``: the split ``fplnet
evaluate`` evaluates, the check frames of ``fplnet export --int8``) are taken out of the pool
first: a model trained on train + val calibrates on its train frames when val is what is scored.

A folder that looks like a data set root (``trainannot/``, ``gtFine/``, ...) is never read as "every
image below" (that would calibrate on label maps and on the evaluated split): it must be read as
the data set the checkpoint records, or the user passes its training image folder.

The set's ``description`` names the source, split and files; it is recorded wherever the
quantized model is reported (export metadata, ``evaluate --json``, benchmark JSON).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional, Union

import numpy as np

from .data import DatasetError, build_dataset
from .data.base import is_image_file, read_rgb_image
from .spec import InferenceSpec

DEFAULT_CALIBRATION_FRAMES = 300


@dataclass
class CalibrationSet:
    frames: list                     # normalized float32 numpy (1, 3, H, W), at the network's size
    description: dict                # JSON-able: source, data set, root, split, count, files
    data_root: Optional[Path] = None # the data set root the frames came from (None: a plain folder)
    files: list = field(default_factory=list)


def refuse_unused_calib_data(calib_data, variant, calib_size: Optional[int] = None) -> None:
    """Calibration frames (or a number of them) given for a variant that does not quantize are a
    mistake (the user meant an INT8 variant), not something to ignore silently: a ValueError that
    says so. ``calib_size`` None is "not given" (the default number applies)."""
    if variant.needs_calibration:
        return
    for flag, keyword, value in (("--calib-data", "calib_data", calib_data), ("--calib-size", "calib_size", calib_size)):
        if value is not None:
            raise ValueError(f"{flag} ({keyword}=) {value} sets INT8 calibration; variant {variant} does not "
                             f"quantize (use openvino+int8, or leave {flag} out)")


def recorded_data(ckpt: dict) -> dict:
    """Where a checkpoint says it was trained: dataset, data_root, train_split, val_split (None
    where it does not say; shipped weights record their run config too)."""
    run = ckpt.get("run_config") or {}
    return {"dataset": run.get("dataset"), "data_root": run.get("data_root"),
            "train_split": run.get("train_split") or "train", "val_split": run.get("val_split") or "val"}


def evenly_spaced(total: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``range(total)`` (all of them if count >= total)."""
    if count >= total:
        return list(range(total))
    return sorted({int(round(i)) for i in np.linspace(0, total - 1, count)})


# Folders that mark a data set root (CamVid's SegNet layout, Cityscapes): never "a folder of images".
_DATASET_FOLDERS = ("train", "trainannot", "val", "valannot", "leftImg8bit", "gtFine")


def training_files(ckpt: dict, data: Optional[Union[str, Path]]) -> tuple[list[Path], dict, Optional[Path]]:
    """The pool calibration frames are drawn from: (image files in file-name order, a description
    of the source, the data set root or None for a plain folder of images)."""
    recorded = recorded_data(ckpt)
    name, split = recorded["dataset"], recorded["train_split"]
    if data is None:
        root = recorded["data_root"]
        if not (name and root and Path(root).is_dir()):
            where = f"{name} {split} under {root!r}" if name else "no training data set"
            raise ValueError(f"INT8 calibration uses frames of the model's training split; the checkpoint records "
                             f"{where}, which is not reachable from here. Pass the data set's folder or a folder "
                             "of images with --calib-data (Python: calib_data=)")
        data = root
    root = Path(data)
    if not root.is_dir():
        raise ValueError(f"calibration data {root} is not a folder; pass a data set root or a folder of images")
    if name:
        try:
            dataset = build_dataset(name, root, split)
            return ([image for image, _ in dataset.files],
                    {"source": "dataset", "dataset": name, "root": str(root), "split": split}, root)
        except DatasetError as error:
            # A data set root that cannot be read must not fall back to "every image below": that
            # would calibrate on its label maps and on the frames of the split being evaluated.
            # The recorded split, or any split folder of the known layouts (CamVid's trainval and
            # held-out splits have no folder of their own).
            if any((root / folder).is_dir() for folder in (split, f"{split}annot", *_DATASET_FOLDERS)):
                raise ValueError(f"calibration data {root} looks like a {name} root but cannot be read as one: "
                                 f"{error}") from error
            # Otherwise not a root of that data set: a plain folder of images.
    elif any((root / folder).is_dir() for folder in _DATASET_FOLDERS):
        raise ValueError(f"calibration data {root} looks like a data set root, but the checkpoint records no data "
                         f"set to read it as; pass its training images with --calib-data (e.g. {root / 'train'})")
    files = sorted(p for p in root.rglob("*") if p.is_file() and is_image_file(p))
    if not files:
        raise ValueError(f"calibration data {root}: no images in it, and it is not a {name or 'known'} data set root")
    return files, {"source": "folder", "root": str(root)}, None


def calibration_set(ckpt: dict, data: Optional[Union[str, Path]] = None,
                    count: Optional[int] = None, exclude: Iterable[Union[str, Path]] = (),
                    spec: Optional[InferenceSpec] = None) -> CalibrationSet:
    """``count`` calibration frames (None: ``DEFAULT_CALIBRATION_FRAMES``) for the model of
    ``ckpt``, none of the files in ``exclude`` (module docstring), preprocessed by ``spec``
    (default: the checkpoint's; pass the spec the model will run with when a size overrides the
    recorded one)."""
    count = DEFAULT_CALIBRATION_FRAMES if count is None else count
    if count < 1:
        raise ValueError(f"the calibration set needs at least one frame, got {count}")
    spec = spec or InferenceSpec.from_checkpoint(ckpt)
    pool, description, data_root = training_files(ckpt, data)
    excluded = {Path(path).resolve() for path in exclude}
    files = [path for path in pool if path.resolve() not in excluded]
    if not files:
        raise ValueError(f"calibration data {description['root']}: all {len(pool)} of its frames are frames the "
                         "quantized model is scored on; pass other frames of its training data with --calib-data")
    chosen = [files[i] for i in evenly_spaced(len(files), count)]
    # A plain folder of images is read the way up predict reads it (EXIF orientation applied: the
    # photos a model is deployed on); a data set's frames as stored, as training read them.
    upright = data_root is None
    frames = [spec.to_network(spec.preprocess([read_rgb_image(path, upright=upright)])).numpy() for path in chosen]
    base = Path(description["root"])
    description.update({
        "frames": len(chosen), "available": len(files), "left_out_scored_frames": len(pool) - len(files),
        "selection": "evenly spaced in file-name order",
        "network_size": spec.describe_size(),
        "files": [str(path.relative_to(base)) if path.is_relative_to(base) else str(path) for path in chosen],
    })
    return CalibrationSet(frames, description, data_root, chosen)
