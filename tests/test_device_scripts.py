"""The scripts that carry CamVid to the device machine and plan its campaign: the lossless WebP
round trip gives back every pixel, and the campaign's chains run the paper's two stages with the
recipe flags and their time budgets."""
from __future__ import annotations

import numpy as np
from PIL import Image

from _helpers import load_script


def test_pack_then_unpack_gives_back_every_pixel_and_file(tiny_camvid, tmp_path):
    device_data = load_script("device_data")
    source = tmp_path / "source"
    source.mkdir()
    for item in tiny_camvid.iterdir():   # real files, not the fixture's links: pack reads sizes
        (source / item.name).mkdir()
        for f in item.iterdir():
            (source / item.name / f.name).write_bytes(f.resolve().read_bytes())
    # Parts of about two frames each, so the split into parts is exercised too.
    device_data.pack(source, tmp_path / "packed", part_mb=0.4, workers=1)
    parts = sorted((tmp_path / "packed").glob("part*"))
    assert len(parts) > 2
    for part in parts:
        device_data.unpack(part, tmp_path / "back", workers=1)
    originals = sorted(p.relative_to(source) for p in source.rglob("*.png"))
    assert sorted(p.relative_to(tmp_path / "back") for p in (tmp_path / "back").rglob("*.png")) == originals
    for relative in originals:
        assert np.array_equal(np.array(Image.open(source / relative)), np.array(Image.open(tmp_path / "back" / relative)))


def test_campaign_chains_are_the_two_stages_with_the_recipe_and_a_budget(tmp_path, capsys):
    campaign = load_script("gpu_campaign")
    assert campaign.main(["--data-root", "/data", "--work", str(tmp_path), "--out", str(tmp_path / "out"),
                          "--seconds", "100", "--recipes", "adam", "--dry-run"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 4   # heldout and trainval, encoder then full model
    heldout_encoder, heldout_full, trainval_encoder, trainval_full = (line.split() for line in lines)
    for command in (heldout_encoder, heldout_full):
        assert command[command.index("--train-split") + 1] == "heldout_train"
        assert command[command.index("--val-split") + 1] == "heldout_val"
    assert trainval_encoder[trainval_encoder.index("--val-split") + 1] == "none"
    assert heldout_encoder[heldout_encoder.index("--epochs") + 1] == "500"
    assert heldout_full[heldout_full.index("--epochs") + 1] == "1000"
    assert heldout_full[heldout_full.index("--init-from") + 1] == str(tmp_path / "chains/heldout_adam/encoder/last.pt")
    for command in (heldout_encoder, heldout_full, trainval_encoder, trainval_full):
        assert command[command.index("--optimizer") + 1] == "adam" and "--time-budget-minutes" in command
