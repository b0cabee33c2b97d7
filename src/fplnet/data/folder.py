"""Your own data: a folder of images and masks plus a file naming the classes.

Layout, flat or with split subfolders::

    root/classes.yaml          (or classes.json)
    root/images/NAME.jpg       root/images/train/NAME.jpg    any of .png .jpg .jpeg .bmp .tif
    root/masks/NAME.png        root/masks/train/NAME.png     .tiff .webp .ppm for images

``classes.yaml``::

    names: [background, road, car]       # required; class index = position in this list
    colors: [[0, 0, 0], [128, 64, 128], [0, 0, 142]]   # optional RGB per class, for visualisation
    ignore_index: 255                    # optional; the mask value meaning "not labelled"
    name: my_roads                       # optional; defaults to the folder's name

Masks are single-channel 8-bit PNGs of class indices (a palette PNG's indices count, its colours
do not), paired with images by file stem and the same size as their image. ``ignore_index`` must
lie outside 0..len(names)-1; it is turned into 255 on load, like every other data set here.

Splits: if ``images/`` has subfolders, each is a split (``images/train`` with ``masks/train``
...) and ``split`` must name one. A flat ``images/`` is a single set, loaded with ``split=None``
or ``split="all"``; asking a flat folder for "train" or "val" is an error rather than silently
returning the same images for both.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import numpy as np
import yaml

from .base import DatasetError, SegmentationDataset, list_image_files, require_folder
from .info import DatasetInfo, default_palette

WHOLE_FOLDER_SPLITS = (None, "all")
_LAYOUT_HINT = "A folder dataset needs root/images/, root/masks/ and root/classes.yaml (see fplnet.data.folder)."


def read_classes_file(root: Path) -> tuple[DatasetInfo, int]:
    """The dataset's info and the value that means "ignore" in its mask files."""
    for candidate in ("classes.yaml", "classes.yml", "classes.json"):
        path = root / candidate
        if path.is_file():
            break
    else:
        raise DatasetError(f"no classes file in {root}: expected {root / 'classes.yaml'} (or "
                           "classes.json) with at least `names: [...]`")
    try:
        text = path.read_text(encoding="utf-8")
        spec = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as error:
        raise DatasetError(f"cannot parse {path}: {error}") from error

    if not isinstance(spec, dict) or "names" not in spec:
        raise DatasetError(f"{path} must be a mapping with a `names` list of class names")
    names = spec["names"]
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise DatasetError(f"{path}: `names` must be a non-empty list of strings, got {names!r}")

    ignore_index = spec.get("ignore_index", 255)
    if not isinstance(ignore_index, int) or not len(names) <= ignore_index <= 255:
        raise DatasetError(f"{path}: ignore_index must be an integer from {len(names)} to 255 (outside "
                           f"the {len(names)} class indices), got {ignore_index!r}")

    colors = spec.get("colors")
    if colors is None:
        palette = default_palette(len(names))
    else:
        valid = (isinstance(colors, list) and len(colors) == len(names)
                 and all(isinstance(c, (list, tuple)) and len(c) == 3
                         and all(isinstance(v, int) and 0 <= v <= 255 for v in c) for c in colors))
        if not valid:
            raise DatasetError(f"{path}: `colors` must list one [R, G, B] triple of 0..255 per class "
                               f"({len(names)} classes)")
        palette = tuple(tuple(c) for c in colors)

    # info.ignore_index stays 255: that is what the loader's masks hold, whatever the files use.
    info = DatasetInfo(name=str(spec.get("name", root.resolve().name)), class_names=tuple(names),
                       palette=palette)
    return info, ignore_index


def _split_folders(root: Path, split: Optional[str]) -> tuple[Path, Path]:
    images = require_folder(root / "images", _LAYOUT_HINT)
    masks = require_folder(root / "masks", _LAYOUT_HINT)
    available = sorted(p.name for p in images.iterdir() if p.is_dir())
    if not available:
        if split not in WHOLE_FOLDER_SPLITS:
            raise DatasetError(f"{images} has no split subfolders, so split {split!r} does not exist. "
                               f"Use split=None for all images, or create {images / str(split)} and "
                               f"{masks / str(split)}.")
        return images, masks
    if split not in available:
        raise DatasetError(f"split {split!r} not found: {images} has the splits {', '.join(available)}")
    return images / split, require_folder(masks / split, f"Masks for split {split!r} belong in {masks / split}.")


class FolderDataset(SegmentationDataset):
    def __init__(self, root, split: Optional[str] = None):
        root = Path(root)
        require_folder(root, _LAYOUT_HINT)
        info, ignore_in_files = read_classes_file(root)
        image_folder, mask_folder = _split_folders(root, split)

        files = []
        for image_path in list_image_files(image_folder):
            mask_path = mask_folder / f"{image_path.stem}.png"
            if not mask_path.is_file():
                raise DatasetError(f"image {image_path} has no mask: expected {mask_path} "
                                   "(masks are PNGs with the image's file stem)")
            files.append((image_path, mask_path))
        stems = [image_path.stem for image_path, _ in files]
        if len(set(stems)) != len(stems):
            duplicate = next(stem for stem in stems if stems.count(stem) > 1)
            raise DatasetError(f"{image_folder} has several images named {duplicate}.*; "
                               "each image stem must be unique to pair it with its mask")
        if not files:
            raise DatasetError(f"no images in {image_folder}")

        table = np.full(256, -1, dtype=np.int16)
        table[:info.num_classes] = np.arange(info.num_classes)
        table[ignore_in_files] = 255
        super().__init__(root, "all" if split is None else split, files, info, table)
