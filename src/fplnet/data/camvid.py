"""CamVid (Brostow et al. 2009) as prepared for SegNet, the FPLNet paper's second data set
(Sec. IV-A: 367 train / 101 val / 233 test, 360x480, 11 classes)::

    root/{split}/NAME.png        RGB frames
    root/{split}annot/NAME.png   single-channel labels 0..10, 11 = void

Images and labels are paired by file name. The ``train.txt``-style lists that come with the data
hold absolute paths from the SegNet tutorial machine, so they are not read at all.
``trainval`` is train + val, the usual training set before a final test-set run. Void (11) -> 255.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, Optional

import numpy as np

from .base import DatasetError, SegmentationDataset, list_image_files, require_folder
from .info import CAMVID, CAMVID_VOID_LABEL

SPLITS = ("train", "val", "test", "trainval")
_LAYOUT_HINT = ("CamVid is read in the SegNet layout: root/train, root/trainannot, root/val, "
                "root/valannot, root/test, root/testannot.")


def _label_table() -> np.ndarray:
    table = np.full(256, -1, dtype=np.int16)
    table[:CAMVID.num_classes] = np.arange(CAMVID.num_classes)
    table[CAMVID_VOID_LABEL] = 255
    table[255] = 255   # some CamVid copies already use 255 for void
    return table


def _pairs(root: Path, split: str) -> list[tuple[Path, Path]]:
    image_folder = require_folder(root / split, _LAYOUT_HINT)
    label_folder = require_folder(root / f"{split}annot", _LAYOUT_HINT)
    pairs = []
    for image_path in list_image_files(image_folder):
        # Pair by stem so that re-encoded copies (frames saved as .jpg) still find their .png labels.
        label_path = label_folder / image_path.name
        if not label_path.is_file():
            label_path = label_folder / f"{image_path.stem}.png"
        if not label_path.is_file():
            raise DatasetError(f"image {image_path} has no label: expected {label_folder / image_path.name}")
        pairs.append((image_path, label_path))
    if not pairs:
        raise DatasetError(f"CamVid split {split!r}: no images in {image_folder}")
    return pairs


class CamVidDataset(SegmentationDataset):
    def __init__(self, root, split: str = "train", transform: Optional[Callable] = None):
        if split not in SPLITS:
            raise DatasetError(f"unknown CamVid split {split!r}; choose one of {', '.join(SPLITS)}")
        root = Path(root)
        parts = ("train", "val") if split == "trainval" else (split,)
        files = [pair for part in parts for pair in _pairs(root, part)]
        super().__init__(root, split, files, CAMVID, _label_table(), transform)
