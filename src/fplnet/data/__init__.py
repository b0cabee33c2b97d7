"""Data sets, batched augmentation and class weights.

``build_dataset(name, root, split)`` is the one entry point; items are ``(image float32 3xHxW in
[0, 1], mask int64 HxW with 255 = ignore)``. Normalization is ``transforms.normalize``.
"""
from __future__ import annotations

from typing import Optional

from .base import DatasetError, SegmentationDataset
from .camvid import CamVidDataset
from .cityscapes import CityscapesDataset
from .class_weights import cached_class_weights, enet_class_weights, pixel_counts
from .folder import FolderDataset
from .info import (CAMVID, CITYSCAPES, DatasetInfo, colorize, get_info, label_ids_to_train_ids,
                   train_ids_to_label_ids)
from .transforms import AugmentConfig, augment_batch, normalize

DATASETS = {
    "cityscapes": CityscapesDataset,
    "camvid": CamVidDataset,
    "folder": FolderDataset,
}


def list_datasets() -> list[str]:
    return list(DATASETS)


def build_dataset(name: str, root, split: Optional[str]) -> SegmentationDataset:
    """``split``: cityscapes train/val/test, camvid train/val/test/trainval, folder a subfolder
    name or None (see ``fplnet.data.folder``)."""
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[name](root, split)


__all__ = [
    "AugmentConfig", "CAMVID", "CITYSCAPES", "CamVidDataset", "CityscapesDataset", "DATASETS",
    "DatasetError", "DatasetInfo", "FolderDataset", "SegmentationDataset", "augment_batch",
    "build_dataset", "cached_class_weights", "colorize",
    "enet_class_weights", "get_info", "label_ids_to_train_ids", "list_datasets", "normalize",
    "pixel_counts", "train_ids_to_label_ids",
]
