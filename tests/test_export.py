"""`fplnet export` and BN folding: ONNX (onnxruntime), TorchScript and OpenVINO IR reproduce the
PyTorch logits on a real CamVid image at two input sizes, and the metadata travels with the file."""
import importlib.util
import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

import fplnet.data.info
from fplnet.checkpoint import CheckpointError, load_checkpoint
from fplnet.models import load_model
from fplnet.cli import main
from fplnet.engine.evaluate import calibration_overlap
from fplnet.exported import load_exported, read_metadata
from fplnet.fast import find_conv_bn_pairs, find_shuffle_deconvs, fold_batchnorm, pixel_shuffle_deconvs

from _helpers import camvid_image, camvid_images, make_checkpoint, make_model, normalized

SIZES = [(360, 480), (256, 320)]   # CamVid's own size, and the image resized


@pytest.fixture(scope="module")
def camvid_ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "camvid.pt")


def camvid_inputs():
    image = normalized(camvid_image(4))
    return [image if size == tuple(image.shape[-2:]) else
            F.interpolate(image, size=size, mode="bilinear", align_corners=False) for size in SIZES]


def assert_parity(reference: torch.Tensor, exported: torch.Tensor, tolerance: float = 1e-4) -> None:
    assert exported.shape == reference.shape
    max_diff = (reference - exported).abs().max().item()
    agreement = (reference.argmax(1) == exported.argmax(1)).float().mean().item()
    assert max_diff < tolerance, f"max |logits diff| {max_diff:.2e} (logits up to {reference.abs().max():.1f})"
    assert agreement >= 0.999, f"argmax agrees on {agreement:.4%} of pixels"


# OpenVINO's CPU kernels (its own convolutions, at f32 precision) round differently from PyTorch's
# oneDNN calls: the fp32 backends' bound of issue 9 is 1e-3.
@pytest.mark.parametrize("fmt,suffix,tolerance", [("onnx", ".onnx", 1e-4), ("torchscript", ".pt", 1e-4),
                                                  ("openvino", ".xml", 1e-3)])
def test_export_matches_pytorch_at_two_sizes(camvid_ckpt, tmp_path, capsys, fmt, suffix, tolerance):
    if fmt == "openvino":
        pytest.importorskip("openvino")
    path = tmp_path / f"fplnet{suffix}"
    assert main(["export", "--checkpoint", str(camvid_ckpt), "--format", fmt, "--output", str(path),
                 "--size", "360x480", "--no-verify"]) == 0
    assert "2 of 23 BatchNorm layers folded" in capsys.readouterr().out

    model, _ = load_model(camvid_ckpt)
    run = load_exported(path)
    for x in camvid_inputs():
        with torch.no_grad():
            reference = model(x)
        assert_parity(reference, run(x), tolerance)
    # Dynamic batch too.
    batch = torch.cat([camvid_inputs()[1]] * 2)
    with torch.no_grad():
        assert_parity(model(batch), run(batch), tolerance)

    meta = read_metadata(path)
    camvid = fplnet.data.info.CAMVID
    assert meta["model_name"] == "fplnet" and meta["num_classes"] == 11
    assert meta["class_names"] == list(camvid.class_names)
    assert meta["palette"] == [list(c) for c in camvid.palette]
    assert meta["mean"] == pytest.approx(camvid.mean) and meta["std"] == pytest.approx(camvid.std)
    assert meta["folded_batchnorms"] == 2
    assert meta["eval_size"] is None and meta["inference_spec"]["class_names"] == list(camvid.class_names)


def test_an_existing_export_is_replaced_only_with_overwrite(camvid_ckpt, tmp_path, capsys):
    path = tmp_path / "m.onnx"
    command = ["export", "--checkpoint", str(camvid_ckpt), "--output", str(path), "--no-verify"]
    assert main(command) == 0
    before = path.read_bytes()
    assert main(command) == 2
    assert f"--output: {path} already exist(s); pass --overwrite" in capsys.readouterr().err
    assert path.read_bytes() == before
    assert main(command + ["--overwrite"]) == 0
    assert main(["export", "--checkpoint", str(camvid_ckpt), "--output", str(tmp_path / "n.onnx"),
                 "--calib-data", str(tmp_path)]) == 2
    assert "--calib-data sets up INT8 calibration; add --int8" in capsys.readouterr().err


def test_an_ir_whose_bin_is_not_its_own_is_refused(camvid_ckpt, tmp_path):
    pytest.importorskip("openvino")
    path = tmp_path / "m.xml"
    assert main(["export", "--checkpoint", str(camvid_ckpt), "--format", "openvino", "--output", str(path),
                 "--no-verify"]) == 0
    assert read_metadata(path)["model_name"] == "fplnet"
    weights = bytearray(path.with_suffix(".bin").read_bytes())
    weights[len(weights) // 2] ^= 0xFF                 # as if another export's .bin had landed beside it
    path.with_suffix(".bin").write_bytes(bytes(weights))
    with pytest.raises(ValueError, match="is not the weights file .* was saved with"):
        load_exported(path)


def test_int8_check_frames_are_held_out_of_calibration_and_seen_ones_are_marked(tiny_camvid):
    """A train + val model: its check frames (val) are in its training split, which the metadata
    says, and calibration leaves them out."""
    from fplnet.calibration import calibration_set
    from fplnet.engine.export import check_frames
    ckpt = {"num_classes": 11, "dataset": fplnet.data.info.CAMVID.to_dict(),
            "run_config": {"dataset": "camvid", "train_split": "trainval", "val_split": "val"}}
    images, masks, described, files = check_frames(ckpt, tiny_camvid, 2)
    assert len(images) == len(masks) == len(files) == 2 and described["split"] == "val"
    assert described["seen_in_training"] == 2 and "on data it trained on" in described["note"]
    calibration = calibration_set(ckpt, tiny_camvid, 1000, exclude=files)
    assert not {f.resolve() for f in files} & {f.resolve() for f in calibration.files}
    # A plain folder: half of it at most is held out, the rest calibrates.
    folder = tiny_camvid / "train"
    images, masks, described, files = check_frames({**ckpt, "run_config": {}}, folder, 100)
    assert masks == [] and described["labels"] is False and 0 < len(files) <= len(list(folder.iterdir())) // 2


def test_onnx_graph_has_dynamic_axes_prelu_and_deconv(camvid_ckpt, tmp_path):
    onnx = pytest.importorskip("onnx")
    path = tmp_path / "m.onnx"
    assert main(["export", "--checkpoint", str(camvid_ckpt), "--output", str(path), "--no-verify"]) == 0
    proto = onnx.load(str(path))
    ops = {node.op_type for node in proto.graph.node}
    assert {"PRelu", "ConvTranspose", "Conv"} <= ops
    # Two BNs are folded away; the 21 that follow a concatenation or an addition stay.
    assert sum(node.op_type == "BatchNormalization" for node in proto.graph.node) == 21
    dims = [d.dim_param or d.dim_value for d in proto.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, "height", "width"]
    assert json.loads({p.key: p.value for p in proto.metadata_props}["fplnet"])["dataset"]["name"] == "camvid"


@pytest.mark.parametrize("name,expected_pairs", [("fplnet", 2), ("espnet", 4), ("enet", 83), ("erfnet", 36),
                                                 ("cgnet", 27)])
def test_fold_batchnorm_is_exact(name, expected_pairs):
    model = make_model(name, num_classes=11)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    pairs = find_conv_bn_pairs(model)
    assert len(pairs) == expected_pairs
    folded = fold_batchnorm(model)
    remaining = sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in folded.modules())
    total = sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in model.modules())
    assert remaining == total - expected_pairs
    x = normalized(camvid_image(5)[:97, :131])
    with torch.no_grad():
        reference, out = model(x), folded(x)
    assert (reference - out).abs().max() < 1e-4 * max(1.0, reference.abs().max().item())
    # The original is untouched.
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_fplnet_bn_folding_only_takes_bns_that_follow_a_convolution():
    pairs = dict((bn, conv) for conv, bn in find_conv_bn_pairs(make_model("fplnet")))
    # The decoder's upsamplers crop the deconvolution before BN: a crop commutes with a
    # per-channel affine map, so those two fold; every other BN follows a concat or an add.
    assert pairs == {"head.upsamplers.0.norm_act.0": "head.upsamplers.0.deconv",
                     "head.upsamplers.1.norm_act.0": "head.upsamplers.1.deconv"}


def test_pixel_shuffle_deconv_is_exact():
    model = make_model("fplnet")
    assert find_shuffle_deconvs(model) == ["head.classifier"]
    rewritten = pixel_shuffle_deconvs(model)
    x = normalized(camvid_image(6)[:97, :131])
    with torch.no_grad():
        np.testing.assert_allclose(rewritten(x).numpy(), model(x).numpy(), atol=1e-4)


def test_bn_folding_refuses_what_does_not_commute():
    """A BN after a channel permutation, or after a convolution whose output is also used
    elsewhere, must stay: folding it would change the output."""
    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.permuted, self.shared, self.cropped = (torch.nn.Conv2d(3, 4, 3, padding=1) for _ in range(3))
            self.bn1, self.bn2, self.bn3 = (torch.nn.BatchNorm2d(4) for _ in range(3))

        def forward(self, x):
            a = self.bn1(self.permuted(x)[:, [3, 2, 1, 0]])
            shared = self.shared(x)
            b = self.bn2(shared) + shared
            return a + b + self.bn3(self.cropped(x)[..., 1:, :-1]).mean()

    torch.manual_seed(0)
    model = Toy()
    for bn in (model.bn1, model.bn2, model.bn3):
        bn.running_mean.uniform_(-1, 1)
        bn.running_var.uniform_(0.5, 2)
    model.eval()
    assert find_conv_bn_pairs(model) == [("cropped", "bn3")]
    x = torch.randn(1, 3, 8, 8)
    with torch.no_grad():
        torch.testing.assert_close(fold_batchnorm(model)(x), model(x))


@pytest.mark.parametrize("fmt,suffix", [("onnx", ".onnx"), ("openvino", ".xml")])
def test_evaluate_scores_the_exported_file_as_eager_scores_its_checkpoint(tiny_camvid, tmp_path, fmt, suffix):
    """`fplnet evaluate --checkpoint FILE` runs the deployed graph itself, with the inference spec
    it carries: in fp32 it scores what the checkpoint scores in eager PyTorch."""
    if fmt == "openvino":
        pytest.importorskip("openvino")
    path = tmp_path / f"camvid{suffix}"
    assert main(["export", "--checkpoint", "camvid", "--format", fmt, "--output", str(path), "--no-verify"]) == 0
    reports = {}
    for name, source in (("eager", "camvid"), ("file", str(path))):
        reports[name] = tmp_path / f"{name}.json"
        assert main(["evaluate", "--checkpoint", source, "--dataset", "camvid", "--data-root", str(tiny_camvid),
                     "--split", "val", "--device", "cpu", "--json", str(reports[name])]) == 0
    eager, exported = (json.loads(reports[name].read_text()) for name in ("eager", "file"))
    assert exported["miou"] == pytest.approx(eager["miou"], abs=0.01)
    assert exported["variant"] == f"the exported file as it is ({'openvino' if fmt == 'openvino' else 'onnxruntime'})"
    assert exported["backend"]["exported_file"] == str(path)
    if fmt == "openvino":
        assert exported["backend"]["inference_precision_hint"] == "f32"


def test_evaluate_refuses_what_an_exported_file_cannot_honour(tiny_camvid, tmp_path, capsys, monkeypatch):
    path = tmp_path / "camvid.onnx"
    assert main(["export", "--checkpoint", "camvid", "--output", str(path), "--no-verify"]) == 0
    base = ["evaluate", "--checkpoint", str(path), "--dataset", "camvid", "--data-root", str(tiny_camvid)]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)   # a GPU is visible
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    for extra, said in ((["--variant", "openvino"], "--variant"), (["--calib-data", str(tiny_camvid)], "--calib-data"),
                        (["--device", "cuda"], "runs on the CPU")):
        capsys.readouterr()
        assert main([*base, *extra]) == 2
        assert said in capsys.readouterr().err
    # With a GPU visible, auto still runs the file on the CPU (as --variant onnxruntime would).
    assert main([*base, "--device", "auto"]) == 0
    # A TorchScript export is named as such, not as a broken checkpoint.
    scripted = tmp_path / "camvid_script.pt"
    assert main(["export", "--checkpoint", "camvid", "--format", "torchscript", "--output", str(scripted),
                 "--no-verify"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(scripted), "--dataset", "camvid", "--data-root", str(tiny_camvid)]) == 2
    assert "is a TorchScript export (`fplnet export" in capsys.readouterr().err
    # Any TorchScript archive is refused from its listing, before torch.load (which would hand it to
    # torch.jit.load even with weights_only=True).
    foreign = tmp_path / "foreign.pt"
    torch.jit.save(torch.jit.script(torch.nn.ReLU()), str(foreign))
    with pytest.raises(CheckpointError, match="is a TorchScript export, not a checkpoint"):
        load_checkpoint(foreign)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not a graph")
    assert main(["evaluate", "--checkpoint", str(garbage), "--dataset", "camvid", "--data-root", str(tiny_camvid)]) == 2
    err = capsys.readouterr().err
    assert str(garbage) in err and len(err.strip().splitlines()) == 1


def test_calibration_overlap_matches_frames_by_their_path_under_the_root(tmp_path):
    """An INT8 file records calibration frames relative to its data root; the frames scored are
    matched by their path under the evaluated root, symlinks included (tiny data sets are links)."""
    (tmp_path / "val").mkdir()
    files = []
    for name in ("a.png", "b.png", "c.png"):
        (tmp_path / "val" / name).symlink_to(tmp_path / name)
        files.append((tmp_path / "val" / name, None))
    dataset = SimpleNamespace(root=tmp_path, files=files)
    assert calibration_overlap(["train/a.png", "val/b.png", "val/c.png"], dataset) == {
        "scored_frames_in_calibration": 2, "scored_frames": 3}
    assert calibration_overlap([], dataset) is None


@pytest.fixture(scope="module")
def exported_ir(camvid_ckpt, tmp_path_factory):
    """An fp32 IR of the test checkpoint, exported once; tests copy it before changing it."""
    pytest.importorskip("openvino")
    path = tmp_path_factory.mktemp("ir") / "m.xml"
    assert main(["export", "--checkpoint", str(camvid_ckpt), "--format", "openvino", "--output", str(path),
                 "--no-verify"]) == 0
    return path


def copy_ir(source, folder):
    target = folder / source.name
    for suffix in (".xml", ".bin"):
        target.with_suffix(suffix).write_bytes(source.with_suffix(suffix).read_bytes())
    return target


def test_a_bin_of_another_size_or_none_is_refused_before_openvino_reads_it(exported_ir, tmp_path):
    from fplnet.openvino_backend import read_ir
    path = copy_ir(exported_ir, tmp_path)
    weights = path.with_suffix(".bin")
    weights.write_bytes(weights.read_bytes()[:-4096])            # shortened: OpenVINO's own check would fire first
    with pytest.raises(ValueError, match=r"m\.bin is not the weights file .*m\.xml was saved with"):
        read_ir(path)
    weights.unlink()
    with pytest.raises(ValueError, match=r"its weights file .*m\.bin is missing"):
        read_ir(path)


def test_an_ir_without_its_digest_is_read_with_a_warning(exported_ir, tmp_path):
    from fplnet.openvino_backend import BIN_DIGEST_KEY, read_ir
    path = copy_ir(exported_ir, tmp_path)
    text = path.read_text()
    start = text.index(f"<{BIN_DIGEST_KEY} ")
    path.write_text(text[:start] + text[text.index("/>", start) + 2:])
    with pytest.warns(RuntimeWarning, match="records no digest"):
        assert read_ir(path) is not None


def test_the_metadata_of_an_ir_is_read_from_its_xml_alone(exported_ir, tmp_path, recwarn):
    """Reading the metadata touches neither the weights nor OpenVINO (benchmark --exported reads it
    before it loads the file): it reads an IR whose .bin is gone, and warns nothing."""
    path = copy_ir(exported_ir, tmp_path)
    path.with_suffix(".bin").unlink()
    assert read_metadata(path) == read_metadata(exported_ir) and read_metadata(path)["model_name"] == "fplnet"
    assert not [w for w in recwarn if "digest" in str(w.message)]


def test_an_overwrite_that_fails_between_the_renames_keeps_the_old_pair(exported_ir, tmp_path, monkeypatch):
    import os
    from fplnet import openvino_backend
    path = copy_ir(exported_ir, tmp_path)
    before = {suffix: path.with_suffix(suffix).read_bytes() for suffix in (".xml", ".bin")}
    model = openvino_backend.read_ir(path)
    real_replace, calls = os.replace, []

    def replace_then_fail(source, target):
        calls.append(target)
        if len(calls) == 4:   # old .xml and .bin moved aside, new .bin in place: the new .xml fails
            raise OSError("disk full")
        return real_replace(source, target)
    monkeypatch.setattr(openvino_backend.os, "replace", replace_then_fail)
    with pytest.raises(OSError, match="disk full"):
        openvino_backend.save_ir(model, path, {"model_name": "other"})
    monkeypatch.undo()
    assert {suffix: path.with_suffix(suffix).read_bytes() for suffix in (".xml", ".bin")} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.bin", "m.xml"]   # no staging or backup left
    assert read_metadata(path)["model_name"] == "fplnet"


@pytest.mark.parametrize("extra,said", [
    (["--format", "openvino", "--output", "{tmp}/m.xml", "--opset", "13"], "--opset 13 sets the ONNX opset"),
    (["--output", "{tmp}/m.onnx", "--calib-size", "5"], "--calib-size sets up INT8 calibration; add --int8"),
    (["--output", "{tmp}/m.onnx", "--check-frames", "5"], "--check-frames sets up INT8 calibration; add --int8"),
    (["--format", "openvino", "--output", "{tmp}/folder.xml"], "folder.bin is a folder, where the export writes"),
])
def test_export_refuses_flags_that_would_do_nothing(camvid_ckpt, tmp_path, capsys, extra, said):
    (tmp_path / "folder.bin").mkdir()
    args = [word.format(tmp=tmp_path) for word in extra]
    assert main(["export", "--checkpoint", str(camvid_ckpt), "--no-verify", *args]) == 2
    err = capsys.readouterr().err
    assert said in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["folder.bin"]   # nothing written


def test_the_reported_precision_of_an_int8_model_says_int8():
    from fplnet.openvino_backend import precision_label
    assert precision_label({"inference_precision_hint": "f32", "fake_quantize_ops": 148}) == "int8 + f32"
    assert precision_label({"inference_precision_hint": "bf16", "fake_quantize_ops": 0}) == "bf16"
    assert precision_label({"backend": "torch"}) is None


def test_an_upper_case_suffix_names_the_same_formats(exported_ir, camvid_ckpt, tmp_path, capsys):
    """M.XML (with M.bin, where OpenVINO looks for it) is an IR and M.ONNX an ONNX file: they are
    run as exported files, not read as checkpoints, and export writes such names."""
    from fplnet.exported import is_exported_file
    from fplnet.inference import Segmenter
    upper = tmp_path / "M.XML"
    upper.write_bytes(exported_ir.read_bytes())
    upper.with_suffix(".bin").write_bytes(exported_ir.with_suffix(".bin").read_bytes())
    assert is_exported_file(upper) and is_exported_file("x/N.Onnx") and not is_exported_file("x/N.pt")
    image = camvid_image(3)[:96, :128]
    np.testing.assert_array_equal(Segmenter(upper).predict(image), Segmenter(exported_ir).predict(image))
    onnx = tmp_path / "M.ONNX"
    assert main(["export", "--checkpoint", str(camvid_ckpt), "--format", "onnx", "--output", str(onnx),
                 "--no-verify"]) == 0
    assert read_metadata(onnx)["model_name"] == read_metadata(upper)["model_name"] == "fplnet"
    assert main(["export", "--checkpoint", str(camvid_ckpt), "--format", "torchscript",
                 "--output", str(tmp_path / "T.XML")]) == 2
    assert "a --format torchscript file must not end in .onnx or .xml" in capsys.readouterr().err


def test_an_exported_file_given_where_a_checkpoint_is_needed_says_what_runs_it(exported_ir, tmp_path, capsys):
    assert main(["benchmark", "--checkpoint", str(exported_ir), "--iters", "1"]) == 2
    err = capsys.readouterr().err
    assert "is an exported model (ONNX or OpenVINO IR), not a checkpoint: `fplnet evaluate` and `fplnet predict`" in err


@pytest.fixture(scope="module")
def shipped_exports(tmp_path_factory):
    """The shipped CamVid weights exported once as ONNX and as an OpenVINO IR (trained weights: a
    random network's argmax would agree trivially)."""
    folder = tmp_path_factory.mktemp("shipped_exports")
    paths = {"onnx": folder / "camvid.onnx"}
    if importlib.util.find_spec("openvino"):
        paths["openvino"] = folder / "camvid.xml"
    for fmt, path in paths.items():
        assert main(["export", "--checkpoint", "camvid", "--format", fmt, "--output", str(path), "--no-verify"]) == 0
    return paths


@pytest.mark.parametrize("fmt", ["onnx", "openvino"])
def test_segmenter_and_predict_run_an_exported_file_as_it_is(shipped_exports, fmt, tmp_path, capsys):
    if fmt not in shipped_exports:
        pytest.skip("OpenVINO is not installed")
    from fplnet.exported import ExportedModel
    from fplnet.inference import Segmenter
    path = shipped_exports[fmt]
    segmenter, eager = Segmenter(path), Segmenter("camvid", fast=False)
    assert isinstance(segmenter.runner, ExportedModel) and segmenter.device.type == "cpu"
    assert (segmenter.model_name, segmenter.num_classes, segmenter.info.name) == ("fplnet", 11, "camvid")
    backend = "openvino" if fmt == "openvino" else "onnxruntime"
    assert f"the exported file as it is ({backend})" in repr(segmenter)
    for index in (3, 40):
        image = camvid_image(index)
        assert (segmenter.predict(image) == eager.predict(image)).mean() >= 0.999
    # The network size is overridden as for a checkpoint (the graph takes any size).
    small = Segmenter(path, eval_size=(180, 240))
    assert small.spec.eval_size == (180, 240) and small.predict(camvid_image(3)).shape == (360, 480)
    # There an IR resizes the logits to the image and takes the argmax in its own graph, with
    # the labels torch's resize of the same file's logits gives; an .onnx file has no such path.
    image = camvid_image(3)
    network_input = small.spec.to_network(small.preprocess([image]))
    assert (small.runner.labels(network_input, (360, 480)) is None) == (fmt == "onnx")
    torch_path = small.logits([image]).argmax(1)[0].numpy()
    assert (small.predict(image) == torch_path).mean() >= 0.9999
    if fmt == "openvino":   # predict took that path, and its compile was counted as setup
        assert ("labels", (1, 3, 180, 240), (360, 480)) in small.runner._run._compiled
        steady = small.runner.setup_seconds
        small.predict(image)
        assert small.runner.setup_seconds == steady
    # The first call at a shape is setup (OpenVINO compiles there); a second at it is not.
    before = segmenter.runner.setup_seconds
    segmenter.predict(camvid_image(5))
    assert segmenter.runner.setup_seconds == before

    frames = tmp_path / "frames"
    frames.mkdir()
    for index in (3, 40):
        Image.fromarray(camvid_image(index)).save(frames / f"f{index}.png")
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(path), str(frames), "--output", str(tmp_path / "out"),
                 "--format", "trainid", "--overlay", "0", "--quiet"]) == 0
    summary = capsys.readouterr().out
    assert f"the exported file as it is ({backend})" in summary
    assert ("executed in f32" in summary) == (fmt == "openvino")
    for index in (3, 40):
        written = np.asarray(Image.open(tmp_path / "out" / f"f{index}_trainid.png"))
        assert (written == eager.predict(camvid_image(index))).mean() >= 0.999


@pytest.mark.parametrize("extra,said", [
    (["--variant", "openvino"], "--variant (variant=) openvino: "),
    (["--no-fast"], "--no-fast (fast=False): "),
    (["--calib-size", "5"], "--calib-size (calib_size=) 5: "),
    (["--device", "cuda"], "--device (device=) cuda"),
])
def test_predict_refuses_what_an_exported_file_cannot_honour(shipped_exports, tmp_path, capsys, monkeypatch, extra,
                                                             said):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)   # a GPU is visible
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    path = shipped_exports["onnx"]
    image = tmp_path / "f.png"
    Image.fromarray(camvid_image(3)).save(image)
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(path), str(image), "--output", str(tmp_path / "out"), *extra]) == 2
    err = capsys.readouterr().err
    assert said in err and f"{path} is an exported model and runs as it is" in err
    assert len(err.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_benchmark_times_exported_files_beside_the_checkpoint_they_came_from(shipped_exports, tmp_path):
    files = [str(path) for path in shipped_exports.values()]
    report = tmp_path / "bench.json"
    assert main(["benchmark", "--checkpoint", "camvid", "--size", "120x160", "--variants", "eager",
                 "--exported", *files, "--warmup", "0", "--iters", "2", "--agreement-images",
                 str(camvid_images()[0]), "--json", str(report)]) == 0
    results = json.loads(report.read_text())["results"]
    assert [r["variant"] for r in results] == ["eager"] + [f"file {path}" for path in shipped_exports.values()]
    for row, path in zip(results[1:], shipped_exports.values()):
        assert row["model"] == "fplnet" and row["params"] is None and row["gmacs"] is None
        assert row["backend"]["exported_file"] == str(path) and row["iters"] == 2
        assert row["argmax_vs_eager"]["min"] >= 0.999


def test_benchmark_refuses_exported_files_it_cannot_time_honestly(shipped_exports, tmp_path, capsys):
    onnx = str(shipped_exports["onnx"])
    other = make_checkpoint(tmp_path / "espnet.pt", name="espnet")
    # The same kind of model (FPLNet, 11 CamVid classes) with other weights.
    retrained = tmp_path / "retrained.onnx"
    assert main(["export", "--checkpoint", str(make_checkpoint(tmp_path / "r.pt")), "--output", str(retrained),
                 "--no-verify"]) == 0
    for args, said in ((["--exported", onnx], "give --checkpoint"),
                       (["--checkpoint", "camvid", "--exported", onnx, "--mode", "train"], "--mode train"),
                       (["--checkpoint", str(other), "--exported", onnx], "it was not exported from it"),
                       (["--checkpoint", "camvid", "--exported", str(retrained)], "exported from other weights"),
                       (["--checkpoint", "camvid", "--exported", onnx, str(tmp_path / "x.onnx")], "does not exist"),
                       (["--checkpoint", "camvid", "--exported", onnx, onnx], "are the same file"),
                       (["--checkpoint", "camvid", "--exported", str(other)], "is not an exported model to run")):
        capsys.readouterr()
        assert main(["benchmark", *args, "--iters", "1"]) == 2
        err = capsys.readouterr().err
        assert said in err and len(err.strip().splitlines()) == 1, err


def test_a_file_exported_before_the_weights_digest_is_timed_with_a_note(shipped_exports, tmp_path, capsys):
    import onnx
    proto = onnx.load(str(shipped_exports["onnx"]))
    entry = next(p for p in proto.metadata_props if p.key == "fplnet")
    metadata = json.loads(entry.value)
    del metadata["source_weights_sha256"]
    entry.value = json.dumps(metadata)
    old = tmp_path / "old.onnx"
    onnx.save(proto, str(old))
    capsys.readouterr()
    assert main(["benchmark", "--checkpoint", "camvid", "--size", "60x80", "--exported", str(old), "--warmup", "0",
                 "--iters", "1"]) == 0
    assert f"note: --exported {old} records no digest of the weights" in capsys.readouterr().out


def test_the_weights_digest_follows_the_float_weights_only():
    from fplnet.checkpoint import weights_digest
    state = load_checkpoint("camvid")["state_dict"]
    digest = weights_digest(state)
    assert digest == weights_digest(dict(reversed(list(state.items()))))   # name order, not dict order
    counters = {k: v for k, v in state.items() if not v.is_floating_point()}
    assert weights_digest({k: v for k, v in state.items() if k not in counters}) == digest
    changed = dict(state)
    name = next(k for k, v in state.items() if v.is_floating_point() and v.numel() > 1)
    changed[name] = state[name].clone()
    changed[name].view(-1)[0] += 1e-3
    assert weights_digest(changed) != digest


def test_an_ir_that_is_not_xml_is_refused_in_one_line(exported_ir, tmp_path, capsys):
    bad = tmp_path / "bad.xml"
    bad.write_text("garbage<xml")
    bad.with_suffix(".bin").write_bytes(exported_ir.with_suffix(".bin").read_bytes())
    image = tmp_path / "f.png"
    Image.fromarray(camvid_image(3)).save(image)
    capsys.readouterr()
    assert main(["predict", "--checkpoint", str(bad), str(image), "--output", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert f"{bad} is not an OpenVINO IR: it is not valid XML" in err and len(err.strip().splitlines()) == 1, err


def test_a_missing_runtime_is_named_as_such_not_as_a_broken_file(shipped_exports, monkeypatch):
    from fplnet import exported, runtime
    def missing(*args, **kwargs):
        raise runtime.MissingPackageError("running x needs the 'onnxruntime' package: pip install ...")
    monkeypatch.setattr(exported, "onnxruntime_session", missing)
    with pytest.raises(runtime.MissingPackageError, match="^running x needs the 'onnxruntime' package"):
        exported.ExportedModel(shipped_exports["onnx"])


def test_the_web_app_says_what_runs_an_exported_file(exported_ir):
    pytest.importorskip("gradio")
    from fplnet.engine.app import load_segmenter
    with pytest.raises(ValueError, match="runs only as it is: the app runs checkpoints"):
        load_segmenter(str(exported_ir), "eager")
