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


def test_frames_the_model_is_scored_on_are_left_out(tiny_camvid):
    """A train + val model scored on val calibrates on its train frames only."""
    from fplnet.data import build_dataset
    trainval = {**CKPT, "run_config": {"dataset": "camvid", "train_split": "trainval"}}
    everything = calibration_set(trainval, tiny_camvid, count=1000)
    assert {path.parent.name for path in everything.files} == {"train", "val"}
    val = [image for image, _ in build_dataset("camvid", tiny_camvid, "val").files]
    scored = calibration_set(trainval, tiny_camvid, count=1000, exclude=val)
    assert {path.parent.name for path in scored.files} == {"train"}
    assert scored.description["left_out_scored_frames"] == len(val) > 0
    with pytest.raises(ValueError, match="frames the quantized model is scored on"):
        calibration_set(CKPT, tiny_camvid, count=3, exclude=everything.files)


def test_a_data_set_root_is_refused_when_the_checkpoint_names_no_data_set(tiny_camvid):
    # Read as a folder of images it would calibrate on label maps and on the val frames.
    with pytest.raises(ValueError, match="looks like a data set root, but the checkpoint records no data set"):
        calibration_set({**CKPT, "run_config": {}}, tiny_camvid, count=2)
    assert calibration_set({**CKPT, "run_config": {}}, tiny_camvid / "train", count=2).description["source"] == "folder"


def test_a_folder_of_photos_is_calibrated_the_way_up_predict_reads_it(tmp_path):
    """A phone photo stored landscape with EXIF orientation 6 is upright portrait in predict
    (``read_rgb_image(upright=True)``); calibrating on it sideways would fit the ranges to another image."""
    exif = Image.Exif()
    exif[0x0112] = 6                                  # rotate 90 degrees clockwise to view
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(tmp_path / "photo.jpg", exif=exif)
    assert calibration_set(CKPT, tmp_path, count=1).frames[0].shape == (1, 3, 32, 24)


def test_a_calibration_size_for_a_variant_that_does_not_quantize_is_refused():
    from fplnet.calibration import refuse_unused_calib_data
    from fplnet.fast import Variant
    refuse_unused_calib_data(None, Variant.parse("openvino"), None)
    refuse_unused_calib_data(None, Variant.parse("openvino+int8"), 5)
    with pytest.raises(ValueError, match="--calib-size .* 5 sets INT8 calibration; variant openvino does not"):
        refuse_unused_calib_data(None, Variant.parse("openvino"), 5)
