"""scripts/ship_weights.py: the shipped file records the figure `fplnet evaluate` gives, and a
held-out sibling's figure only when that sibling shares the shipped run's recipe."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from fplnet.checkpoint import load_checkpoint
from fplnet.cli import main as cli

from _helpers import load_script


def tiny_run(root: Path, out: Path, train_split: str, lr: str = "0.02") -> Path:
    assert cli(["train", "--model", "fplnet_encoder", "--dataset", "camvid", "--data-root", str(root),
                "--train-split", train_split, "--val-split", "none", "--crop-size", "96x128", "--batch-size", "4",
                "--lr", lr, "--epochs", "1", "--no-tensorboard", "--output", str(out)]) == 0
    return out / "last.pt"


@pytest.fixture(scope="module")
def runs(tiny_camvid, tmp_path_factory):
    base = tmp_path_factory.mktemp("ship_runs")
    return {"shipped": tiny_run(tiny_camvid, base / "trainval", "trainval"),
            "sibling": tiny_run(tiny_camvid, base / "train", "train"),
            "other_recipe": tiny_run(tiny_camvid, base / "other", "train", lr="0.05")}


def test_ships_with_the_heldout_siblings_figure(runs, tiny_camvid, tmp_path, capsys):
    out = tmp_path / "shipped.safetensors"
    assert load_script("ship_weights").main([str(runs["shipped"]), str(out), "--data-root", str(tiny_camvid), "--split", "val",
                               "--heldout", str(runs["sibling"]), "--heldout-split", "val"]) == 0
    meta = load_checkpoint(out)
    heldout = meta["heldout"]
    assert heldout["split"] == "val" and heldout["train_split"] == "train" and heldout["epochs"] == 1
    assert set(heldout["iou"]) == set(meta["metrics"]["val_iou"])
    # The demo says what the weights saw and quotes the sibling's unseen-frames figure.
    capsys.readouterr()
    assert cli(["demo", "--checkpoint", str(out), "--output", str(tmp_path / "demo"), "--no-fast", "--repeats", "0"]) == 0
    text = capsys.readouterr().out
    assert "HAS seen these frames" in text
    assert f"the same recipe trained on train (1 epochs) scores {heldout['miou']:.2f} mIoU on camvid val" in text
    # Both figures are what `fplnet evaluate` gives for each model.
    for checkpoint, recorded in ((out, meta["metrics"]["val_miou"]), (runs["sibling"], heldout["miou"])):
        report = tmp_path / "eval.json"
        assert cli(["evaluate", "--checkpoint", str(checkpoint), "--dataset", "camvid", "--data-root",
                    str(tiny_camvid), "--split", "val", "--json", str(report)]) == 0
        assert json.loads(report.read_text())["miou"] == pytest.approx(recorded, abs=1e-3)


def test_refuses_a_sibling_of_another_recipe_or_the_same_split(runs, tiny_camvid, tmp_path):
    script = load_script("ship_weights")
    out = tmp_path / "never.safetensors"
    with pytest.raises(SystemExit, match="another recipe.*lr: 0.02 vs 0.05"):
        script.main([str(runs["shipped"]), str(out), "--data-root", str(tiny_camvid),
                     "--heldout", str(runs["other_recipe"]), "--heldout-split", "val"])
    with pytest.raises(SystemExit, match="same split"):
        script.main([str(runs["shipped"]), str(out), "--data-root", str(tiny_camvid),
                     "--heldout", str(runs["shipped"]), "--heldout-split", "val"])
    assert not out.exists()
    assert script.recipe_differences({"lr": 1, "device": "cuda", "train_split": "a"},
                                     {"lr": 1, "device": "cpu", "train_split": "b"}) == []
