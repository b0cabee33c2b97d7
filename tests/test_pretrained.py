"""The shipped CamVid weights: self-description, loading paths, the recorded mIoU, the demo."""
import json

import pytest
import torch
from safetensors import safe_open

import fplnet
from fplnet.checkpoint import PRETRAINED, WEIGHTS_DIR, CheckpointError, load_checkpoint
from fplnet.cli import main as cli

from conftest import CAMVID

WEIGHTS = WEIGHTS_DIR / PRETRAINED["camvid"][1]


def test_weights_ship_small_and_self_describing():
    assert WEIGHTS.stat().st_size < 3 * 1024 * 1024
    with safe_open(str(WEIGHTS), framework="pt") as fh:
        meta = json.loads(fh.metadata()["fplnet"])
    assert meta["model_name"] == "fplnet" and meta["num_classes"] == 11
    assert meta["dataset"]["name"] == "camvid" and len(meta["dataset"]["palette"]) == 11
    assert meta["dataset"]["mean"] and meta["dataset"]["std"]
    # Trained on train (the first weights) or on every frame (the long run's, with its held-out sibling's figure).
    assert meta["run_config"]["train_split"] in ("train", "trainval") and meta["epochs"] > 0
    assert meta["run_config"]["train_split"] == "train" or 0 < meta["heldout"]["miou"] < 100
    assert 0 < meta["metrics"]["val_miou"] < 100 and meta["shipped_git_commit"]
    # Users' images run at CamVid's scale with their aspect ratio kept (ship_weights --eval-short-side 360).
    assert meta["eval_short_side"] == 360 and meta.get("eval_size") is None


def test_create_model_pretrained_and_errors():
    model = fplnet.create_model("fplnet", pretrained="camvid")
    assert model.num_classes == 11
    with pytest.raises(CheckpointError, match="hold model 'fplnet'"):
        fplnet.create_model("espnet", pretrained="camvid")
    with pytest.raises(CheckpointError, match="11 classes"):
        fplnet.create_model("fplnet", pretrained="camvid", num_classes=19)


def test_shipped_weights_under_an_upper_case_suffix_load_alike(tmp_path):
    copy = tmp_path / "CAMVID.SAFETENSORS"
    copy.write_bytes(WEIGHTS.read_bytes())
    loaded, shipped = load_checkpoint(copy), load_checkpoint(WEIGHTS)
    assert loaded["model_name"] == shipped["model_name"] and loaded["state_dict"].keys() == shipped["state_dict"].keys()


def test_pickled_checkpoints_are_refused(tmp_path):
    bad = tmp_path / "bad.pt"
    torch.save({"format": "fplnet-checkpoint/1", "state_dict": {}, "payload": ValueError("pickled")}, bad)
    with pytest.raises(CheckpointError, match="not a valid fplnet checkpoint.*pickled Python objects") as err:
        load_checkpoint(bad)
    # torch's own advice (retry with weights_only=False, i.e. run the file's code) is never passed on.
    assert "weights_only=False" not in str(err.value) and "ship_weights.py" in str(err.value)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a valid fplnet checkpoint.*not a PyTorch file"):
        load_checkpoint(garbage)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


@pytest.mark.skipif(not CAMVID.exists(), reason="shared CamVid missing")
def test_evaluate_reproduces_the_recorded_val_miou(tmp_path, capsys):
    recorded = load_checkpoint("camvid")["metrics"]["val_miou"]
    out = tmp_path / "eval.json"
    assert cli(["evaluate", "--checkpoint", "camvid", "--dataset", "camvid", "--data-root", str(CAMVID),
                "--split", "val", "--json", str(out)]) == 0
    assert abs(json.loads(out.read_text())["miou"] - recorded) < 0.01
    assert capsys.readouterr().out.strip().splitlines()[-1] == f"mIoU: {recorded:.2f}"


def test_demo_writes_masks_overlays_and_grid(tmp_path, capsys):
    meta = load_checkpoint("camvid")
    assert cli(["demo", "--output", str(tmp_path), "--no-fast", "--repeats", "1"]) == 0
    text = capsys.readouterr().out
    # The frames are CamVid val; the demo says what the shipped weights saw of them, from their metadata.
    if meta["run_config"]["train_split"] == "trainval":
        # Trained on every frame: the frames are seen, and the held-out sibling's figure is the unseen one.
        assert "HAS seen these frames" in text
        assert ("On frames never trained on" in text) == bool(meta.get("heldout"))
    else:
        # Not trained on, but val chose the shipped epoch.
        assert "never trained on these frames" in text and "selected on CamVid val" in text
        assert "never saw" not in text
    assert "mIoU: " in text and "latency" in text
    assert len(list(tmp_path.glob("*_mask.png"))) == 5 and len(list(tmp_path.glob("*_overlay.jpg"))) == 5
    assert (tmp_path / "grid.png").exists()

