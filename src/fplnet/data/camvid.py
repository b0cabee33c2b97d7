"""CamVid (Brostow et al. 2009) as prepared for SegNet, the FPLNet paper's second data set
(Sec. IV-A: 367 train / 101 val / 233 test, 360x480, 11 classes)::

    root/{split}/NAME.png        RGB frames
    root/{split}annot/NAME.png   single-channel labels 0..10, 11 = void

Images and labels are paired by file name. The ``train.txt``-style lists that come with the data
hold absolute paths from the SegNet tutorial machine, so they are not read at all.
``trainval`` is train + val, the usual training set before a final test-set run. Void (11) -> 255.

Held-out-sequence protocol (our addition; the paper validates on CamVid val). The SegNet val
frames are all from sequence 0016E5 and each lies within half a second of a training frame of
the same sequence, so val rewards memorising that sequence. A frame's sequence is its file-name
prefix (``0006R0_f02400.png`` -> ``0006R0``), and two split forms select by it:

* ``trainval_minus_SEQ``: every train + val frame except those of sequence SEQ;
* ``sequence_SEQ``: every train + val frame of sequence SEQ.

``heldout_train`` / ``heldout_val`` name the default pair, ``trainval_minus_0006R0`` /
``sequence_0006R0``: 0006R0 is the one sequence with no frames in val (101 frames, a different
day and part of town), and the remaining 367 frames are exactly as many as the usual train split.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .base import DatasetError, SegmentationDataset, list_image_files, require_folder
from .info import CAMVID, CAMVID_VOID_LABEL

SPLITS = ("train", "val", "test", "trainval")
HELDOUT_SEQUENCE = "0006R0"
HELDOUT_ALIASES = {"heldout_train": f"trainval_minus_{HELDOUT_SEQUENCE}",
                   "heldout_val": f"sequence_{HELDOUT_SEQUENCE}"}
_MINUS, _SEQUENCE = "trainval_minus_", "sequence_"
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


def sequence_of(path: Path) -> str:
    """The recording sequence of a CamVid frame: its file-name prefix before the first "_"."""
    return path.name.split("_", 1)[0]


def _split_files(root: Path, split: str) -> list[tuple[Path, Path]]:
    """The (image, label) pairs of a plain split or of a held-out-sequence split."""
    split = HELDOUT_ALIASES.get(split, split)
    if split in SPLITS:
        parts = ("train", "val") if split == "trainval" else (split,)
        return [pair for part in parts for pair in _pairs(root, part)]
    for prefix, keep in ((_MINUS, False), (_SEQUENCE, True)):
        if split.startswith(prefix) and len(split) > len(prefix):
            sequence = split[len(prefix):]
            pool = _split_files(root, "trainval")
            found = sorted({sequence_of(image) for image, _ in pool})
            if sequence not in found:
                raise DatasetError(f"CamVid split {split!r}: no frames of sequence {sequence!r} under {root} "
                                   f"(train + val hold {', '.join(found)})")
            return [pair for pair in pool if (sequence_of(pair[0]) == sequence) == keep]
    raise DatasetError(f"unknown CamVid split {split!r}; choose one of {', '.join(SPLITS)}, "
                       f"{', '.join(HELDOUT_ALIASES)}, {_MINUS}SEQ or {_SEQUENCE}SEQ")


class CamVidDataset(SegmentationDataset):
    def __init__(self, root, split: str = "train"):
        root = Path(root)
        super().__init__(root, split, _split_files(root, split), CAMVID, _label_table())
