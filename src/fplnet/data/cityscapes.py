"""Cityscapes (Cordts et al. 2016) in the official folder layout, the FPLNet paper's main data set
(Sec. IV-A: 2975 train / 500 val / 1525 test frames, 19 classes)::

    root/leftImg8bit/{split}/{city}/{city}_{seq}_{frame}_leftImg8bit.png
    root/gtFine/{split}/{city}/{city}_{seq}_{frame}_gtFine_labelIds.png

The 34 official label ids are mapped to the 19 train ids on load with ``info.CITYSCAPES_LABEL_TABLE``
(a value that is no label id is refused); ``*_labelTrainIds.png`` files made by cityscapesScripts
are not needed.

The test split: its annotations are withheld by the benchmark, so ``split="test"`` lists the
images only (``files`` pairs hold ``None`` for the label) and every mask is all 255. It exists for
writing test-server predictions; evaluating on it yields no IoU.
"""
from __future__ import annotations

from pathlib import Path

from .base import DatasetError, SegmentationDataset, require_folder
from .info import CITYSCAPES, CITYSCAPES_LABEL_TABLE

SPLITS = ("train", "val", "test")
IMAGE_SUFFIX = "_leftImg8bit.png"
LABEL_SUFFIX = "_gtFine_labelIds.png"
_LAYOUT_HINT = ("Cityscapes must be in its official layout: download leftImg8bit_trainvaltest.zip "
                "and gtFine_trainvaltest.zip from cityscapes-dataset.com and unzip both into the "
                "same root folder.")


class CityscapesDataset(SegmentationDataset):
    def __init__(self, root, split: str = "train"):
        if split not in SPLITS:
            raise DatasetError(f"unknown Cityscapes split {split!r}; choose one of {', '.join(SPLITS)}")
        root = Path(root)
        image_root = require_folder(root / "leftImg8bit" / split, _LAYOUT_HINT)
        label_root = None if split == "test" else require_folder(root / "gtFine" / split, _LAYOUT_HINT)

        files = []
        for image_path in sorted(image_root.glob(f"*/*{IMAGE_SUFFIX}")):
            if label_root is None:
                files.append((image_path, None))
                continue
            frame = image_path.name[:-len(IMAGE_SUFFIX)]
            label_path = label_root / image_path.parent.name / f"{frame}{LABEL_SUFFIX}"
            if not label_path.is_file():
                raise DatasetError(f"image {image_path} has no label: expected {label_path}. "
                                   f"{_LAYOUT_HINT}")
            files.append((image_path, label_path))
        if not files:
            raise DatasetError(f"no *{IMAGE_SUFFIX} files in {image_root}/<city>/. {_LAYOUT_HINT}")
        super().__init__(root, split, files, CITYSCAPES, CITYSCAPES_LABEL_TABLE)
