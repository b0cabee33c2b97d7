"""Class weights for the cross-entropy loss, ENet's scheme (Paszke et al. 2016), which the FPLNet
paper adopts (Sec. IV-B): w_class = 1 / ln(c + p_class), with p_class the class's share of all
labelled pixels of the training split and c = 1.02. Ignored pixels count for nothing; a class
with no pixels gets the largest weight, 1 / ln(c).

Counting a full split means decoding every label, so ``cached_class_weights`` keeps the counts in
a small JSON file per (data set, root, split).
"""
from __future__ import annotations

import hashlib
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Iterable, Optional, Union

import numpy as np
import torch

from ..io import atomic_write_json

ENET_C = 1.02


def _is_counts(values) -> bool:
    if isinstance(values, (torch.Tensor, np.ndarray)):
        return values.ndim == 1
    return isinstance(values, (list, tuple)) and all(isinstance(v, (int, float)) for v in values)


def count_mask_pixels(masks: Iterable, num_classes: int, ignore_index: int = 255) -> torch.Tensor:
    """Pixels per class (int64, length num_classes) over masks given as tensors or arrays."""
    counts = torch.zeros(num_classes, dtype=torch.int64)
    for mask in masks:
        mask = torch.as_tensor(np.asarray(mask) if not isinstance(mask, torch.Tensor) else mask)
        values = mask[mask != ignore_index].flatten().long().cpu()
        if values.numel() and (values.min() < 0 or values.max() >= num_classes):
            raise ValueError(f"mask holds values outside 0..{num_classes - 1} and {ignore_index}: "
                             f"{torch.unique(values[(values < 0) | (values >= num_classes)]).tolist()[:10]}")
        counts += torch.bincount(values, minlength=num_classes)
    return counts


def enet_class_weights(masks_or_counts: Union[Iterable, torch.Tensor, np.ndarray, list], num_classes: int,
                       ignore_index: int = 255, c: float = ENET_C) -> torch.Tensor:
    """ENet weights, float32 (num_classes,). Pass either per-class pixel counts (a 1-D sequence
    of length num_classes) or an iterable of HxW masks."""
    if _is_counts(masks_or_counts):
        counts = torch.as_tensor(masks_or_counts, dtype=torch.float64).cpu()
        if counts.shape != (num_classes,):
            raise ValueError(f"expected {num_classes} class counts, got {tuple(counts.shape)}")
        if (counts < 0).any():
            raise ValueError("class pixel counts must not be negative")
    else:
        counts = count_mask_pixels(masks_or_counts, num_classes, ignore_index).double()
    total = counts.sum()
    if total <= 0:
        raise ValueError("no labelled pixels: every pixel is ignored, so class frequencies are undefined")
    if c <= 1:
        raise ValueError(f"c must be greater than 1 so that every weight is finite and positive, got {c}")
    return (1.0 / torch.log(c + counts / total)).float()


def pixel_counts(dataset, num_workers: Optional[int] = None) -> torch.Tensor:
    """Pixels per class over a whole dataset split (int64), decoding labels only."""
    num_classes = dataset.info.num_classes

    def count(index):
        mask = dataset.load_label(index)
        return np.bincount(mask.ravel(), minlength=256)[:num_classes]

    workers = num_workers or min(16, (os.cpu_count() or 1) + 4)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        total = sum(pool.map(count, range(len(dataset))), np.zeros(num_classes, dtype=np.int64))
    return torch.from_numpy(total.astype(np.int64))


def _cache_path(dataset, cache_dir: Path) -> Path:
    # The number of files is part of the key so that adding or removing images invalidates it.
    identity = json.dumps([dataset.info.name, str(Path(dataset.root).resolve()), dataset.split,
                           len(dataset.files)])
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return cache_dir / f"class_weights_{dataset.info.name}_{dataset.split}_{digest}.json"


def _read_cached_counts(path: Path, dataset) -> Optional[list[int]]:
    try:
        cached = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None   # missing or half-written by an older, non-atomic writer: count again
    if not isinstance(cached, dict) or cached.get("class_names") != list(dataset.info.class_names):
        return None
    counts = cached.get("counts")
    if not (isinstance(counts, list) and len(counts) == dataset.info.num_classes
            and all(isinstance(v, int) and v >= 0 for v in counts)):
        return None
    return counts


def cached_class_weights(dataset, cache_dir, c: float = ENET_C) -> torch.Tensor:
    """``enet_class_weights`` of a dataset split, counting its pixels only the first time.

    The cache stores the pixel counts (the expensive part); the weights are recomputed from them,
    so changing ``c`` needs no recount.
    """
    cache_dir = Path(cache_dir)
    cache_dir.mkdir(parents=True, exist_ok=True)
    path = _cache_path(dataset, cache_dir)
    counts = _read_cached_counts(path, dataset)
    if counts is None:
        counts = pixel_counts(dataset).tolist()
        weights = enet_class_weights(counts, dataset.info.num_classes, c=c)
        # Atomic, so concurrent runs never read a partial file.
        atomic_write_json(path, {
            "dataset": dataset.info.name,
            "root": str(Path(dataset.root).resolve()),
            "split": dataset.split,
            "num_files": len(dataset.files),
            "class_names": list(dataset.info.class_names),
            "counts": counts,
            "c": c,
            "weights": [round(w, 6) for w in weights.tolist()],   # for people reading the file
        })
        return weights
    return enet_class_weights(counts, dataset.info.num_classes, c=c)
