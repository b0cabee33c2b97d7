"""scripts/ship_weights.py: the shipped file records the figure `fplnet evaluate` gives, and a
held-out sibling's figure only when that sibling shares the shipped run's recipe, never trained
on the held-out frames and finished its schedule."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from fplnet.checkpoint import load_checkpoint
from fplnet.cli import main as cli

from _helpers import load_script

# tiny_camvid: 8 train frames of 0001TP, 4 val frames of 0016E5.
HELDOUT = "sequence_0016E5"


def tiny_run(root: Path, out: Path, train_split: str, lr: str = "0.02") -> Path:
    assert cli(["train", "--model", "fplnet_encoder", "--dataset", "camvid", "--data-root", str(root),
                "--train-split", train_split, "--val-split", "none", "--crop-size", "96x128", "--batch-size", "4",
                "--lr", lr, "--epochs", "1", "--no-tensorboard", "--output", str(out)]) == 0
    return out / "last.pt"


def interrupted_copy(checkpoint: Path, out: Path) -> Path:
    """The checkpoint as an interrupted run would have left it: its scheduler one step short."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=True)
    ckpt["scheduler"]["last_epoch"] -= 1
    torch.save(ckpt, out)
    return out


@pytest.fixture(scope="module")
def runs(tiny_camvid, tmp_path_factory):
    base = tmp_path_factory.mktemp("ship_runs")
    runs = {"shipped": tiny_run(tiny_camvid, base / "trainval", "trainval"),
            "sibling": tiny_run(tiny_camvid, base / "train", "train"),
            "other_recipe": tiny_run(tiny_camvid, base / "other", "train", lr="0.05")}
    runs["unfinished"] = interrupted_copy(runs["sibling"], base / "unfinished.pt")
    return runs


def ship(runs, root, out, sibling, split="val", heldout_split=HELDOUT):
    return load_script("ship_weights").main([str(runs["shipped"]), str(out), "--data-root", str(root),
                                             "--split", split, "--heldout", str(runs[sibling]),
                                             "--heldout-split", heldout_split])


def test_ships_with_the_heldout_siblings_figure(runs, tiny_camvid, tmp_path, capsys):
    out = tmp_path / "shipped.safetensors"
    assert ship(runs, tiny_camvid, out, "sibling", split="trainval") == 0
    meta = load_checkpoint(out)
    heldout = meta["heldout"]
    assert heldout["split"] == HELDOUT and heldout["train_split"] == "train" and heldout["epochs"] == 1
    assert heldout["evaluated_on"].startswith(f"camvid {HELDOUT} (4 images")
    assert meta["metrics"]["evaluated_on"].startswith("camvid trainval (12 images")
    # The wall time is what the checkpoint records, unless given.
    assert meta["wall_minutes"] == round(load_checkpoint(runs["shipped"])["wall_seconds"] / 60, 1)
    assert [stage["stage"] for stage in meta["wall_minutes_by_stage"]] == ["this run"]
    # The demo says what the weights saw and quotes the sibling's unseen-frames figure.
    capsys.readouterr()
    assert cli(["demo", "--checkpoint", str(out), "--output", str(tmp_path / "demo"), "--no-fast", "--repeats", "0"]) == 0
    text = capsys.readouterr().out
    assert "HAS seen these frames" in text
    assert f"the same recipe trained on train for 1 epoch scores {heldout['miou']:.2f} mIoU on camvid {HELDOUT}" in text
    # Both figures are what `fplnet evaluate` gives for each model on its split.
    for checkpoint, split, recorded in ((out, "trainval", meta["metrics"]["trainval_miou"]),
                                        (runs["sibling"], HELDOUT, heldout["miou"])):
        report = tmp_path / "eval.json"
        assert cli(["evaluate", "--checkpoint", str(checkpoint), "--dataset", "camvid", "--data-root",
                    str(tiny_camvid), "--split", split, "--json", str(report)]) == 0
        assert json.loads(report.read_text())["miou"] == pytest.approx(recorded, abs=1e-3)


@pytest.mark.parametrize("sibling, message", [
    ("other_recipe", "another recipe.*lr: 0.02 vs 0.05"),
    ("shipped", "trained on 4 of the 4 frames of 'sequence_0016E5'"),
    ("unfinished", "stopped at epoch 1 of 1"),
])
def test_refuses_a_sibling_that_cannot_speak_for_the_shipped_model(runs, tiny_camvid, tmp_path, sibling, message):
    out = tmp_path / "never.safetensors"
    with pytest.raises(SystemExit, match=message):
        ship(runs, tiny_camvid, out, sibling)
    assert not out.exists()


def test_refuses_to_ship_a_run_that_has_not_ended(runs, tiny_camvid, tmp_path):
    out = tmp_path / "never.safetensors"
    with pytest.raises(SystemExit, match="stopped at epoch 1 of 1"):
        load_script("ship_weights").main([str(runs["unfinished"]), str(out), "--data-root", str(tiny_camvid)])
    assert not out.exists()


def test_records_the_short_side_users_images_run_at(runs, tiny_camvid, tmp_path):
    out = tmp_path / "short.safetensors"
    assert load_script("ship_weights").main([str(runs["shipped"]), str(out), "--data-root", str(tiny_camvid),
                                             "--eval-short-side", "360"]) == 0
    meta = load_checkpoint(out)
    assert meta["eval_short_side"] == 360 and meta["eval_size"] is None
    assert "network at short side 360 (aspect kept)" in meta["metrics"]["evaluated_on"]


def test_what_counts_as_the_recipe():
    differences = load_script("ship_weights").recipe_differences
    # How a run ran is not its recipe; what it learnt from is, and a missing key means the default.
    assert differences({"lr": 0.1, "device": "cuda", "compile": "default", "train_split": "a"},
                       {"lr": 0.1, "device": "cpu", "compile": "none", "train_split": "b"}) == []
    assert differences({"lr": 0.045}, {}) == []
    assert differences({"eval_short_side": 360}, {}) == []     # how it is run, not what it learnt
    assert differences({"epochs": 500}, {"epochs": 250}) == ["epochs: 500 vs 250"]
    assert differences({"init_from": "enc/last.pt"}, {"init_from": None}) == ["init_from: 'enc/last.pt' vs None"]
    assert differences({"init_from": "a/last.pt"}, {"init_from": "b/last.pt"}) == []


def test_wall_time_adds_stage_one_from_its_summary(tmp_path):
    stage1 = tmp_path / "encoder"
    stage1.mkdir()
    (stage1 / "summary.json").write_text(json.dumps({"wall_seconds": 600.0, "epochs_done": 250}))
    ckpt = {"wall_seconds": 1200.0, "epoch": 500, "run_config": {"init_from": str(stage1 / "last.pt")}}
    minutes, stages = load_script("ship_weights").training_wall_minutes(ckpt)
    assert minutes == 30.0 and [s["epochs"] for s in stages] == [250, 500]
    (stage1 / "summary.json").unlink()        # stage 1 not on this machine: refused, not halved
    with pytest.raises(SystemExit, match="--wall-minutes"):
        load_script("ship_weights").training_wall_minutes(ckpt)
