"""The held-out-sequence protocol on the real CamVid data: splits disjoint by sequence."""
from __future__ import annotations

import pytest

from fplnet.data import DatasetError, build_dataset
from fplnet.data.camvid import sequence_of

from conftest import CAMVID

pytestmark = pytest.mark.skipif(not CAMVID.exists(), reason=f"real CamVid data not found at {CAMVID}")


def sequences(dataset) -> set[str]:
    return {sequence_of(image) for image, _ in dataset.files}


def test_heldout_splits_are_disjoint_by_sequence_and_cover_train_plus_val():
    train = build_dataset("camvid", CAMVID, "heldout_train")
    val = build_dataset("camvid", CAMVID, "heldout_val")
    everything = build_dataset("camvid", CAMVID, "trainval")
    assert sequences(val) == {"0006R0"}
    assert sequences(train) == {"0001TP", "0016E5"}
    train_files = {image.name for image, _ in train.files}
    val_files = {image.name for image, _ in val.files}
    assert not train_files & val_files
    assert train_files | val_files == {image.name for image, _ in everything.files}
    assert (len(train), len(val)) == (367, 101)


def test_any_sequence_can_be_held_out():
    for sequence in ("0001TP", "0016E5"):
        held = build_dataset("camvid", CAMVID, f"sequence_{sequence}")
        rest = build_dataset("camvid", CAMVID, f"trainval_minus_{sequence}")
        assert sequences(held) == {sequence} and sequence not in sequences(rest)
        assert len(held) + len(rest) == 468


@pytest.mark.parametrize("split, message", [
    ("sequence_Seq05VD", "no frames of sequence 'Seq05VD'"),
    ("trainval_minus_", "unknown CamVid split"),
    ("holdout", "unknown CamVid split"),
])
def test_bad_split_names_say_what_exists(split, message):
    with pytest.raises(DatasetError, match=message):
        build_dataset("camvid", CAMVID, split)
