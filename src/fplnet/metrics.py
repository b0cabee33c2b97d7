"""Segmentation accuracy: confusion matrix -> IoU per class, mIoU (FPLNet paper, Sec. IV and
Table III).

IoU_c = TP / (TP + FP + FN) over all evaluated pixels (not averaged per image). A class absent
from both ground truth and prediction has IoU 0/0 = NaN and is left out of the mean, the
Cityscapes convention; a class that is predicted but never in the ground truth has IoU 0 and
counts. Pixels whose ground truth is ``ignore_index`` are not evaluated.
"""
from __future__ import annotations

import math
from typing import Optional, Sequence

import torch
import torch.distributed as dist


class ConfusionMatrix:
    """``matrix[t, p]`` counts pixels of ground-truth class t predicted as p."""

    def __init__(self, num_classes: int, ignore_index: int = 255, device: Optional[torch.device] = None):
        if num_classes < 1:
            raise ValueError(f"num_classes must be positive, got {num_classes}")
        if 0 <= ignore_index < num_classes:
            raise ValueError(f"ignore_index {ignore_index} is also a class index (0..{num_classes - 1})")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64, device=device)

    def reset(self) -> None:
        self.matrix.zero_()

    @torch.no_grad()
    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        """``pred`` class indices (e.g. ``logits.argmax(1)``) and ``target`` of the same shape."""
        if pred.shape != target.shape:
            raise ValueError(f"prediction {tuple(pred.shape)} and target {tuple(target.shape)} differ "
                             "in shape; pass class indices (logits.argmax(1)), not logits")
        pred = pred.to(self.matrix.device).flatten().long()
        target = target.to(self.matrix.device).flatten().long()
        valid = target != self.ignore_index
        pred, target = pred[valid], target[valid]
        n = self.num_classes
        # One check for both inputs: an index outside the matrix would land in another class's cell.
        if pred.numel() and bool(((pred < 0) | (pred >= n) | (target < 0) | (target >= n)).any()):
            raise ValueError(f"values outside 0..{n - 1} (other than ignore {self.ignore_index}) in the "
                             "prediction or target")
        self.matrix += torch.bincount(target * n + pred, minlength=n * n).view(n, n)

    def reduce_from_all_processes(self) -> None:
        """Sum the matrices of all ranks (call once, after the last update)."""
        if dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.matrix)

    def compute(self) -> dict:
        """``iou`` (tensor per class, NaN where a class is in neither ground truth nor prediction),
        ``miou``, ``pixel_accuracy``, ``mean_accuracy`` (floats in [0, 1]; NaN if nothing was
        evaluated) and ``accuracy`` (per-class recall, NaN where a class is not in the ground truth)."""
        matrix = self.matrix.double().cpu()
        true_positive = matrix.diag()
        in_target = matrix.sum(1)
        in_pred = matrix.sum(0)
        iou = true_positive / (in_target + in_pred - true_positive)   # 0/0 -> NaN: class absent
        accuracy = true_positive / in_target
        total = matrix.sum()
        return {
            "iou": iou,
            "miou": _nanmean(iou),
            "pixel_accuracy": float(true_positive.sum() / total) if total > 0 else math.nan,
            "mean_accuracy": _nanmean(accuracy),
            "accuracy": accuracy,
        }

    def format_table(self, class_names: Sequence[str]) -> str:
        """Per-class IoU in percent laid out like the paper's Table III (one header row of class
        names, one row of values, mIoU last), then a line ``mIoU: xx.xx``. Classes excluded from
        the mean (NaN) show as "-"."""
        if len(class_names) != self.num_classes:
            raise ValueError(f"{len(class_names)} class names for {self.num_classes} classes")
        result = self.compute()
        headers = list(class_names) + ["mIoU"]
        values = [_percent(v) for v in result["iou"].tolist()] + [_percent(result["miou"])]
        widths = [max(len(h), len(v)) for h, v in zip(headers, values)]

        def row(cells):
            return "| " + " | ".join(cell.rjust(width) for cell, width in zip(cells, widths)) + " |"

        separator = "|" + "|".join("-" * (width + 1) + ":" for width in widths) + "|"
        return "\n".join([row(headers), separator, row(values), f"mIoU: {_percent(result['miou'])}"])


def _nanmean(values: torch.Tensor) -> float:
    present = values[~values.isnan()]
    return float(present.mean()) if present.numel() else math.nan


def _percent(value: float) -> str:
    return "-" if math.isnan(value) else f"{value * 100:.2f}"
