"""Where INT8 calibration frames come from: the training split of a data set root, or a plain
folder of images; a data set root that cannot be read is an error, never "every image below"
(its label maps and its other splits would be calibrated on)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

import fplnet.data.info
from fplnet.calibration import calibration_set

CKPT = {"num_classes": 11, "dataset": fplnet.data.info.CAMVID.to_dict(),
        "run_config": {"dataset": "camvid", "train_split": "train"}}


def test_frames_come_from_the_training_split_of_a_root(tiny_camvid):
    chosen = calibration_set(CKPT, tiny_camvid, count=3)
    assert chosen.description["source"] == "dataset" and chosen.description["split"] == "train"
    assert [path.parent.name for path in chosen.files] == ["train"] * 3


def test_a_plain_folder_of_images(tmp_path):
    for i in range(4):
        Image.fromarray(np.full((24, 32, 3), 40 * i, np.uint8)).save(tmp_path / f"frame{i}.png")
    chosen = calibration_set(CKPT, tmp_path, count=2)
    assert chosen.description["source"] == "folder" and len(chosen.frames) == 2


def test_a_broken_data_set_root_is_an_error_not_a_folder_of_images(tiny_camvid, tmp_path):
    root = tmp_path / "camvid"
    shutil.copytree(tiny_camvid, root, symlinks=True)
    shutil.rmtree(root / "trainannot")          # the training labels are missing
    with pytest.raises(ValueError, match="looks like a camvid root but cannot be read as one"):
        calibration_set(CKPT, root, count=2)
    # A model trained on trainval (no folder of its own) is refused the same way.
    trainval = {**CKPT, "run_config": {"dataset": "camvid", "train_split": "trainval"}}
    with pytest.raises(ValueError, match="looks like a camvid root but cannot be read as one"):
        calibration_set(trainval, root, count=2)
