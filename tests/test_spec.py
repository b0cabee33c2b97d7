"""The inference spec (fplnet.spec): one resize for training and inference, and a network size
(a fixed ``eval_size``, or an ``eval_short_side`` with the aspect ratio kept) that a trained
model carries into its shipped weights and that predict, evaluate, export and the hub honour."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

import fplnet
from fplnet.checkpoint import load_checkpoint, save_safetensors
from fplnet.cli import main
from fplnet.data import build_dataset
from fplnet.data.resize import resize_images, resize_logits, resize_uint8_image
from fplnet.exported import load_exported, read_metadata
from fplnet.engine.train import load_config, train
from fplnet.models import load_model
from fplnet.spec import InferenceSpec

from _helpers import camvid_image, camvid_images, normalized

EVAL_SIZE = (180, 240)


@pytest.mark.parametrize("size", [(180, 240), (256, 320), (500, 700)])
def test_image_resize_is_pillows_bilinear(size):
    """Antialiased bilinear reproduces Pillow's BILINEAR to one grey level, shrinking or enlarging;
    a plain (aliased) F.interpolate would be off by tens of levels on edges when shrinking."""
    image = camvid_image(0)
    ours = resize_uint8_image(image, size).astype(int)
    pillow = np.asarray(Image.fromarray(image).resize(size[::-1], Image.Resampling.BILINEAR)).astype(int)
    assert ours.shape == (*size, 3)
    assert np.abs(ours - pillow).max() <= 1


def test_train_size_resizes_with_the_same_call(tiny_camvid):
    dataset = build_dataset("camvid", tiny_camvid, "train")
    full, _ = dataset.load_raw(0)
    resized, mask = dataset.load_raw(0, EVAL_SIZE)
    np.testing.assert_array_equal(resized, resize_uint8_image(full, EVAL_SIZE))
    assert mask.shape == EVAL_SIZE


def train_and_ship(root, folder, **size):
    """A model trained one epoch with ``size`` (eval_size or eval_short_side) in its config,
    shipped as safetensors the way scripts/ship_weights.py does (save_safetensors)."""
    train(load_config(None, {"model": "fplnet_encoder", "dataset": "camvid", "data_root": str(root),
                             "crop_size": (96, 128), "batch_size": 4, "epochs": 1, "lr": 0.02, **size,
                             "val_split": "none", "tensorboard": False,
                             "save_every_minutes": 1000.0, "output": str(folder / "run")}))
    path = folder / "tiny.safetensors"
    save_safetensors(load_checkpoint(folder / "run" / "last.pt"), path)
    return path


@pytest.fixture(scope="module")
def shipped(tiny_camvid, tmp_path_factory):
    return train_and_ship(tiny_camvid, tmp_path_factory.mktemp("eval_size_run"), eval_size=EVAL_SIZE)


@pytest.fixture(scope="module")
def labels(shipped):
    """Segmenter's label map of a real 360x480 frame."""
    return fplnet.Segmenter(shipped, fast=False).predict(camvid_images()[7])


def test_shipped_weights_keep_the_eval_size(shipped):
    assert load_checkpoint(shipped)["eval_size"] == list(EVAL_SIZE)
    spec = InferenceSpec.from_checkpoint(load_checkpoint(shipped))
    assert spec.eval_size == EVAL_SIZE
    assert InferenceSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
    # torch.hub and create_model(pretrained=) hand the same spec over with the model.
    assert fplnet.create_model("fplnet_encoder", pretrained=str(shipped)).inference_spec == spec


def test_segmenter_runs_at_the_eval_size(shipped, labels):
    image = camvid_image(7)
    assert labels.shape == image.shape[:2]
    model, _ = load_model(shipped)
    x = normalized(image)
    with torch.no_grad():
        at_eval_size = resize_logits(model(resize_images(x, EVAL_SIZE)), x.shape[-2:]).argmax(1)[0].numpy()
        at_native_size = model(x).argmax(1)[0].numpy()
    np.testing.assert_array_equal(labels, at_eval_size)
    # The size matters to this network: running it at 360x480 would label pixels differently.
    assert (at_native_size != at_eval_size).mean() > 0.001
    assert len(np.unique(labels)) > 1


def test_predict_evaluate_and_export_agree(shipped, labels, tmp_path):
    frame = camvid_images()[7]
    out = tmp_path / "predicted"
    assert main(["predict", "--checkpoint", str(shipped), str(frame), "--output", str(out), "--format", "trainid",
                 "--overlay", "0", "--no-fast", "--quiet"]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(out / f"{frame.stem}_trainid.png")), labels)

    # evaluate against the label map as ground truth: every pixel right means the same labels.
    root = tmp_path / "one_frame"
    (root / "val").mkdir(parents=True)
    (root / "valannot").mkdir()
    (root / "val" / frame.name).symlink_to(frame)
    Image.fromarray(labels, mode="L").save(root / "valannot" / frame.name)
    report = tmp_path / "evaluate.json"
    assert main(["evaluate", "--checkpoint", str(shipped), "--dataset", "camvid", "--data-root", str(root),
                 "--split", "val", "--device", "cpu", "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    assert result["eval_size"] == list(EVAL_SIZE)
    assert result["pixel_accuracy"] >= 99.9

    # The exported graph, with the spec from its own metadata.
    exported = tmp_path / "tiny.onnx"
    assert main(["export", "--checkpoint", str(shipped), "--output", str(exported), "--no-verify"]) == 0
    meta = read_metadata(exported)
    assert meta["eval_size"] == list(EVAL_SIZE) and meta["inference_spec"]["eval_size"] == list(EVAL_SIZE)
    spec = InferenceSpec.from_dict(meta["inference_spec"])
    x = spec.preprocess([camvid_image(7)])
    graph_labels = spec.to_input_size(load_exported(exported)(spec.to_network(x)), x.shape[-2:]).argmax(1)[0]
    assert (graph_labels.numpy() == labels).mean() >= 0.999
    # evaluate runs the exported file itself, at the size its metadata records.
    assert main(["evaluate", "--checkpoint", str(exported), "--dataset", "camvid", "--data-root", str(root),
                 "--split", "val", "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    assert result["eval_size"] == list(EVAL_SIZE) and result["pixel_accuracy"] >= 99.9

    # benchmark times the checkpoint at its network size unless told otherwise.
    timing = tmp_path / "benchmark.json"
    assert main(["benchmark", "--checkpoint", str(shipped), "--iters", "1", "--warmup", "0", "--json", str(timing)]) == 0
    assert json.loads(timing.read_text())["size"] == list(EVAL_SIZE)


# --- a short side instead of a fixed size: the aspect ratio is kept ---------------------------
SHORT_SIDE = 180


def test_network_input_size_rule():
    from fplnet.data.resize import network_input_size
    assert network_input_size((1080, 1920), short_side=360) == (360, 640)     # a dashcam frame
    assert network_input_size((1920, 1080), short_side=360) == (640, 360)     # upright, too
    assert network_input_size((1024, 2048), short_side=360) == (360, 720)
    assert network_input_size((360, 480), short_side=360) == (360, 480)       # CamVid: unchanged
    assert network_input_size((1080, 1920), eval_size=(512, 1024), short_side=360) == (512, 1024)
    assert network_input_size((1080, 1920)) == (1080, 1920)


@pytest.fixture(scope="module")
def shipped_short(tiny_camvid, tmp_path_factory):
    return train_and_ship(tiny_camvid, tmp_path_factory.mktemp("short_side_run"), eval_short_side=SHORT_SIDE)


def wide_frame() -> np.ndarray:
    """A 16:9 crop of a real CamVid frame (270 x 480), the shape of a dashcam video frame."""
    return np.ascontiguousarray(camvid_image(7)[45:315])


def test_a_recorded_short_side_keeps_the_aspect_ratio(shipped_short, tmp_path):
    ckpt = load_checkpoint(shipped_short)
    assert ckpt["eval_short_side"] == SHORT_SIDE and ckpt["eval_size"] is None
    spec = InferenceSpec.from_checkpoint(ckpt)
    assert spec.eval_short_side == SHORT_SIDE and spec.network_size((270, 480)) == (180, 320)
    assert InferenceSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec

    image = wide_frame()
    labels = fplnet.Segmenter(shipped_short, fast=False).predict(image)
    model, _ = load_model(shipped_short)
    x = normalized(image)
    with torch.no_grad():
        expected = resize_logits(model(resize_images(x, (180, 320))), x.shape[-2:]).argmax(1)[0].numpy()
        squeezed = resize_logits(model(resize_images(x, (180, 240))), x.shape[-2:]).argmax(1)[0].numpy()
    assert labels.shape == image.shape[:2]
    np.testing.assert_array_equal(labels, expected)
    assert (labels != squeezed).mean() > 0.001      # the aspect ratio matters to the labels

    # predict and evaluate say so and run the same way; an override replaces the recorded size.
    frame = tmp_path / "wide.png"
    Image.fromarray(image).save(frame)
    out = tmp_path / "predicted"
    assert main(["predict", "--checkpoint", str(shipped_short), str(frame), "--output", str(out),
                 "--format", "trainid", "--overlay", "0", "--no-fast", "--quiet"]) == 0
    np.testing.assert_array_equal(np.asarray(Image.open(out / "wide_trainid.png")), labels)
    override = fplnet.Segmenter(shipped_short, fast=False, eval_size=(180, 240))
    assert override.spec.eval_short_side is None
    np.testing.assert_array_equal(override.predict(image), squeezed)
    assert "short side 180 (aspect kept)" in repr(fplnet.Segmenter(shipped_short, fast=False))

    root = tmp_path / "one_frame"
    (root / "val").mkdir(parents=True)
    (root / "valannot").mkdir()
    Image.fromarray(image).save(root / "val" / "wide.png")
    Image.fromarray(labels, mode="L").save(root / "valannot" / "wide.png")
    report = tmp_path / "evaluate.json"
    assert main(["evaluate", "--checkpoint", str(shipped_short), "--dataset", "camvid", "--data-root", str(root),
                 "--split", "val", "--device", "cpu", "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    assert result["eval_short_side"] == SHORT_SIDE and result["eval_size"] is None
    assert result["pixel_accuracy"] >= 99.9

    exported = tmp_path / "tiny_short.onnx"
    assert main(["export", "--checkpoint", str(shipped_short), "--output", str(exported), "--no-verify"]) == 0
    meta = read_metadata(exported)
    assert meta["eval_short_side"] == SHORT_SIDE and meta["inference_spec"]["eval_short_side"] == SHORT_SIDE


def test_eval_size_and_short_side_are_one_choice(shipped_short, capsys):
    with pytest.raises(ValueError, match="not both"):
        fplnet.Segmenter(shipped_short, fast=False, eval_size=(180, 240), short_side=200)
    frame = str(camvid_images()[0])
    assert main(["predict", "--checkpoint", str(shipped_short), frame, "--eval-size", "180x240",
                 "--short-side", "200"]) == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_a_short_side_must_be_whole_pixels():
    from fplnet.engine.train import ConfigError
    with pytest.raises(ConfigError, match="--eval-short-side 0: must be a positive integer"):
        load_config(None, {"model": "fplnet_encoder", "dataset": "camvid", "eval_short_side": 0})
    with pytest.raises(ConfigError, match="--eval-short-side 360: cannot go with --eval-size"):
        load_config(None, {"model": "fplnet_encoder", "dataset": "camvid", "eval_short_side": 360,
                           "eval_size": "360x480"})
    spec = InferenceSpec.from_checkpoint({"num_classes": 11})
    with pytest.raises(ValueError, match="short side 0: must be a positive whole number"):
        spec.with_size(short_side=0)
