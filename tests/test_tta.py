"""Test-time augmentation (fplnet.tta): exact where it must be the plain model, mirror passes
undone, every scale brought back to the input's size, and the evaluate / predict paths."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from fplnet.cli import main as cli
from fplnet.engine.evaluate import evaluate_checkpoint
from fplnet.inference import Segmenter
from fplnet.tta import TestTimeAugmentation, parse_scales


def test_one_scale_without_mirror_is_the_softmax_of_the_model():
    torch.manual_seed(0)
    model = nn.Conv2d(3, 5, 3, padding=1)
    x = torch.randn(2, 3, 24, 32)
    with torch.no_grad():
        assert torch.allclose(TestTimeAugmentation(model, (1.0,), flip=False)(x), model(x).softmax(1), atol=1e-6)


def test_the_mirrored_pass_is_flipped_back():
    # A model that looks only left of each pixel: its mirrored pass differs unless flipped back.
    # Averaged with the plain pass, the result must equal the mean of the plain pass and the
    # model's mirror-image prediction put back in place.
    torch.manual_seed(0)
    model = nn.Conv2d(3, 4, (1, 3), padding=(0, 1))
    x = torch.randn(1, 3, 8, 10)
    with torch.no_grad():
        expected = (model(x).softmax(1) + model(x.flip(-1)).flip(-1).softmax(1)) / 2
        assert torch.allclose(TestTimeAugmentation(model, (1.0,), flip=True)(x), expected, atol=1e-6)


def test_every_scale_returns_probabilities_at_the_input_size():
    model = nn.Conv2d(3, 6, 1)
    tta = TestTimeAugmentation(model, (0.5, 0.75, 1.25))
    with torch.no_grad():
        out = tta(torch.randn(2, 3, 37, 51))
    assert out.shape == (2, 6, 37, 51)
    assert torch.allclose(out.sum(1), torch.ones(2, 37, 51), atol=1e-5)
    assert tta.passes == 6 and tta.pixel_cost() == pytest.approx(2 * (0.25 + 0.5625 + 1.5625))


@pytest.mark.parametrize("text", ["", "0", "1,-1", "a", "5"])
def test_bad_scales_are_refused(text):
    with pytest.raises(ValueError, match="scales"):
        parse_scales(text)


def test_evaluate_with_identity_tta_equals_plain_and_default_tta_runs(tiny_camvid):
    plain = evaluate_checkpoint("camvid", "camvid", tiny_camvid, "val", torch.device("cpu"))
    identity = evaluate_checkpoint("camvid", "camvid", tiny_camvid, "val", torch.device("cpu"),
                                   tta_scales=(1.0,), tta_flip=False)
    assert torch.equal(plain.matrix.matrix, identity.matrix.matrix)
    full = evaluate_checkpoint("camvid", "camvid", tiny_camvid, "val", torch.device("cpu"), tta_scales=(0.75, 1.0))
    assert full.tta is not None and full.tta.passes == 4
    assert full.matrix.matrix.sum() == plain.matrix.matrix.sum()   # the same pixels, counted once


def test_cli_evaluate_records_tta_and_predict_accepts_it(tiny_camvid, tmp_path, capsys):
    out = tmp_path / "eval.json"
    assert cli(["evaluate", "--checkpoint", "camvid", "--dataset", "camvid", "--data-root", str(tiny_camvid),
                "--tta", "1", "--no-tta-flip", "--json", str(out)]) == 0
    assert json.loads(out.read_text())["tta"] == {"scales": [1.0], "flip": False}
    image = sorted((tiny_camvid / "val").glob("*.png"))[0]
    assert cli(["predict", "--checkpoint", "camvid", str(image), "--output", str(tmp_path / "pred"),
                "--no-fast", "--tta", "--quiet"]) == 0
    assert (tmp_path / "pred" / f"{image.stem}_mask.png").exists()


def test_segmenter_with_tta_predicts_at_the_input_size(tiny_camvid):
    image = sorted((tiny_camvid / "val").glob("*.png"))[0]
    segmenter = Segmenter("camvid", fast=False, tta=True)
    labels = segmenter.predict(image)
    assert "tta=" in repr(segmenter) and labels.shape == (360, 480) and labels.dtype == np.uint8
