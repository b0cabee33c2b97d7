"""Confusion matrix and IoU against cases computed by hand."""
from __future__ import annotations

import math

import pytest
import torch

from fplnet.metrics import ConfusionMatrix


def matrix_of(pred, target, num_classes=3):
    matrix = ConfusionMatrix(num_classes)
    matrix.update(torch.tensor(pred), torch.tensor(target))
    return matrix


def test_hand_computed_iou_with_ignored_pixels():
    # Ground truth 0 0 1 1 | 255 255, prediction 0 1 1 1 | 2 0: the ignored pixels count for nothing.
    matrix = matrix_of([[0, 1, 1, 1, 2, 0]], [[0, 0, 1, 1, 255, 255]], num_classes=2)
    assert matrix.matrix.tolist() == [[1, 1], [0, 2]]
    result = matrix.compute()
    # class 0: TP 1, FN 1, FP 0 -> 1/2; class 1: TP 2, FP 1, FN 0 -> 2/3
    assert torch.allclose(result["iou"], torch.tensor([1 / 2, 2 / 3], dtype=torch.float64))
    assert result["miou"] == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert result["pixel_accuracy"] == pytest.approx(3 / 4)
    assert result["mean_accuracy"] == pytest.approx((1 / 2 + 1) / 2)


def test_class_absent_from_ground_truth_and_prediction_is_excluded():
    matrix = matrix_of([0, 0, 1, 1], [0, 0, 1, 0])
    result = matrix.compute()
    assert math.isnan(result["iou"][2])
    # class 0: TP 2, FN 1 -> 2/3; class 1: TP 1, FP 1 -> 1/2; class 2 left out of the mean
    assert result["miou"] == pytest.approx((2 / 3 + 1 / 2) / 2)


def test_class_predicted_but_never_in_ground_truth_counts_as_zero():
    result = matrix_of([0, 2, 1, 1], [0, 0, 1, 1]).compute()
    assert result["iou"][2] == 0
    assert math.isnan(result["accuracy"][2])
    # class 0: 1/2, class 1: 1, class 2: 0
    assert result["miou"] == pytest.approx((1 / 2 + 1 + 0) / 3)


def test_perfect_prediction_is_100_percent_and_updates_accumulate():
    target = torch.tensor([[0, 1], [2, 255]])
    matrix = ConfusionMatrix(3)
    matrix.update(target.clone().clamp(max=2), target)
    matrix.update(target.clone().clamp(max=2), target)
    assert matrix.matrix.sum() == 6
    result = matrix.compute()
    assert result["miou"] == 1.0 and result["pixel_accuracy"] == 1.0
    assert result["mean_accuracy"] == 1.0
    assert matrix.format_table(["road", "car", "sky"]).splitlines()[-1] == "mIoU: 100.00"


def test_format_table_layout():
    table = matrix_of([0, 0, 1, 1], [0, 0, 1, 0]).format_table(["road", "sidewalk", "sky"])
    header, separator, values, last = table.splitlines()
    assert [c.strip() for c in header.strip("|").split("|")] == ["road", "sidewalk", "sky", "mIoU"]
    assert [c.strip() for c in values.strip("|").split("|")] == ["66.67", "50.00", "-", "58.33"]
    assert set(separator) <= {"|", "-", ":"}
    assert last == "mIoU: 58.33"
    with pytest.raises(ValueError, match="2 class names for 3 classes"):
        matrix_of([0], [0]).format_table(["a", "b"])


def test_bad_inputs_are_refused():
    matrix = ConfusionMatrix(3)
    with pytest.raises(ValueError, match="argmax"):
        matrix.update(torch.zeros(2, 3, 4, 4), torch.zeros(2, 4, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="outside 0..2"):
        matrix.update(torch.tensor([3]), torch.tensor([0]))
    with pytest.raises(ValueError, match="outside 0..2"):
        matrix.update(torch.tensor([0]), torch.tensor([7]))
    with pytest.raises(ValueError, match="also a class"):
        ConfusionMatrix(3, ignore_index=1)


def test_empty_matrix_and_reduce_without_distributed():
    matrix = ConfusionMatrix(2)
    matrix.reduce_from_all_processes()   # a no-op outside torchrun
    result = matrix.compute()
    assert math.isnan(result["miou"]) and math.isnan(result["pixel_accuracy"])
    matrix.update(torch.tensor([1]), torch.tensor([1]))
    matrix.reset()
    assert matrix.matrix.sum() == 0
