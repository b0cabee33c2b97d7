"""The inference spec (fplnet.spec): one resize for training and inference, and an ``eval_size``
that a trained model carries into its shipped weights and that predict, evaluate, export and the
hub all honour."""
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
from fplnet.engine.export import load_exported, read_metadata
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


@pytest.fixture(scope="module")
def shipped(tiny_camvid, tmp_path_factory):
    """A model trained one epoch with an eval size, shipped as safetensors the way
    scripts/ship_weights.py does (save_safetensors)."""
    folder = tmp_path_factory.mktemp("eval_size_run")
    train(load_config(None, {"model": "fplnet_encoder", "dataset": "camvid", "data_root": str(tiny_camvid),
                             "crop_size": (96, 128), "batch_size": 4, "epochs": 1, "lr": 0.02,
                             "eval_size": EVAL_SIZE, "val_split": "none", "tensorboard": False,
                             "save_every_minutes": 1000.0, "output": str(folder / "run")}))
    path = folder / "tiny.safetensors"
    save_safetensors(load_checkpoint(folder / "run" / "last.pt"), path)
    return path


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
