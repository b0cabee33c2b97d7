"""Every bad value gets one clean line: exit status 2, a single line on stderr that names the
flag, and no traceback, before any model runs or any output is written.

Each row of BAD is (command line, a flag the message must name). Paths in a row may use {tmp}
(a folder that exists), {file} (a file that exists), {garbage} (a file that is no checkpoint)
and {camvid} (the shared CamVid data).
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from fplnet.cli import main

from _helpers import make_checkpoint
from conftest import CAMVID

CAMVID_ARGS = "--dataset camvid --data-root {camvid}"
EVALUATE = f"evaluate --checkpoint camvid {CAMVID_ARGS}"
PREDICT = "predict --checkpoint camvid {file}"
TINY_BENCHMARK = "benchmark --size 32x32 --iters 1 --warmup 0"

BAD = [
    # --- models ---
    ("models --num-classes 0", "--num-classes"),
    ("models --size 0x0", "--size"),
    ("models --size 360", "--size"),
    ("models --filter no_such_model", "--filter"),
    ("models --json {tmp}", "--json"),
    # --- evaluate ---
    (f"{EVALUATE} --eval-size 0x0", "--eval-size"),
    (f"{EVALUATE} --batch-size 0", "--batch-size"),
    (f"{EVALUATE} --batch-size -2", "--batch-size"),
    (f"{EVALUATE} --device gpu0", "--device"),
    (f"{EVALUATE} --device cuda:99", "--device"),
    (f"{EVALUATE} --split no_such_split", "--split"),
    (f"{EVALUATE} --json {{tmp}}", "--json"),
    (f"{EVALUATE} --tta 0,1", "--tta"),
    (f"{EVALUATE} --tta 1,big", "--tta"),
    (f"{EVALUATE} --variant turbo", "--variant"),
    (f"{EVALUATE} --variant eager --calib-data {{camvid}}", "--calib-data"),   # calibrates INT8 only
    ("evaluate --checkpoint camvid --dataset no_such_set --data-root {camvid}", "--dataset"),
    ("evaluate --checkpoint camvid --dataset camvid --data-root {tmp}/missing", "--data-root"),
    (f"evaluate --checkpoint {{garbage}} {CAMVID_ARGS}", "--checkpoint"),
    (f"evaluate --checkpoint {{tmp}}/missing.pt {CAMVID_ARGS}", "--checkpoint"),
    # --- predict ---
    (f"{PREDICT} --output {{file}}", "--output"),                       # the output is a file
    (f"{PREDICT} --output {{file}}/under", "--output"),                 # ... or under one
    (f"{PREDICT} --output /sys/fplnet_out", "--output"),                # ... or cannot be written
    (f"{PREDICT} --output {{tmp}}/out --device gpu0", "--device"),
    (f"{PREDICT} --output {{tmp}}/out --batch-size 0", "--batch-size"),
    (f"{PREDICT} --output {{tmp}}/out --overlay 1.5", "--overlay"),
    (f"{PREDICT} --output {{tmp}}/out --format jpeg", "--format"),
    (f"{PREDICT} --output {{tmp}}/out --variant channels_last+turbo", "--variant"),
    (f"{PREDICT} --output {{tmp}}/out --variant eager --no-fast", "--variant"),
    (f"{PREDICT} --output {{tmp}}/out --variant openvino --calib-data {{camvid}}", "--calib-data"),
    ("predict --checkpoint {garbage} {file} --output {tmp}/out", "--checkpoint"),
    ("predict --checkpoint no_such_weights {file} --output {tmp}/out", "--checkpoint"),
    ("predict --checkpoint camvid {tmp}/no_such_image.png --output {tmp}/out", "INPUT"),
    # --- export ---
    ("export --checkpoint camvid --output {tmp}", "--output"),
    ("export --checkpoint camvid --output {tmp}/model.pt", "--output"),   # onnx must end in .onnx
    ("export --checkpoint camvid --format torchscript --output {tmp}/model.onnx", "--output"),
    ("export --checkpoint camvid --output {tmp}/model.onnx --opset 3", "--opset"),
    # Opset 10 writes a bilinear Upsample that does not sample as PyTorch does (export.ONNX_OPSETS).
    ("export --checkpoint camvid --output {tmp}/model.onnx --opset 10", "--opset"),
    (f"{PREDICT} --output {{tmp}}/out --variant openvino --calib-size 5", "--calib-size"),
    ("export --checkpoint camvid --output {tmp}/model.onnx --size 0x10", "--size"),
    ("export --checkpoint {garbage} --output {tmp}/model.onnx", "--checkpoint"),
    # --- benchmark ---
    ("benchmark --models fplnet,no_such_model", "--models"),
    ("benchmark --checkpoint camvid --num-classes 5", "--num-classes"),      # the checkpoint has its own
    ("benchmark --models fplnet --agreement-count 3", "--agreement-count"),  # without --agreement-images
    ("benchmark --models fplnet --variants onnxruntime,onnxruntime+fold_bn", "--variants"),
    (f"{TINY_BENCHMARK} --batch-size 0", "--batch-size"),
    (f"{TINY_BENCHMARK} --iters 0", "--iters"),
    ("benchmark --warmup -1", "--warmup"),
    ("benchmark --threads 0", "--threads"),
    ("benchmark --size 512", "--size"),
    ("benchmark --device gpu0", "--device"),
    ("benchmark --variants eager,turbo", "--variants"),
    (f"{TINY_BENCHMARK} --models fplnet --variants eager,keep_memory", "--variants"),
    (f"{TINY_BENCHMARK} --models fplnet --variants eager --compile", "--variants"),
    (f"{TINY_BENCHMARK} --models fplnet --variants cuda_graphs", "--device"),
    (f"{TINY_BENCHMARK} --models fplnet --mode train --variants onnxruntime", "--mode train"),
    (f"{TINY_BENCHMARK} --models fplnet --variants eager,openvino --calib-data {{camvid}}", "--calib-data"),
    ("benchmark --checkpoint camvid --models fplnet", "--checkpoint"),
    (f"{TINY_BENCHMARK} --models fplnet --agreement-images {{tmp}}", "--agreement-images"),
    ("benchmark --agreement-images {tmp}/missing", "--agreement-images"),
    ("benchmark --json {tmp}", "--json"),
    ("benchmark --plot-only --plot {tmp}/a.png --measured fplnet=60", "--measured"),
    ("benchmark --plot-only --plot {tmp}/a.png --measured fplnet@camvid:val=60", "--camvid-plot"),
    ("benchmark --plot-only", "--plot-only"),
    # --- demo ---
    ("demo --repeats -1", "--repeats"),
    ("demo --device gpu0", "--device"),
    ("demo --output {file}", "--output"),
    ("demo --checkpoint {garbage}", "--checkpoint"),

    # --- train, sweep, ablate ---
    # train's own table (bad values that need a tiny CamVid copy) is
    # tests/test_train.py::test_bad_train_flags_exit_2_with_one_line; these need no data.
    ("train --data-root {tmp} --batch-size 0", "--batch-size"),
    ("train --data-root {tmp} --model no_such_model", "--model"),
    ("train --data-root {tmp} --compile turbo", "--compile"),
    ("train --resume {tmp}/no_such_run", "--resume"),
    ("train --resume {tmp} --config {file}", "--resume"),
    ("sweep {tmp}/no_such_sweep.yaml", "sweep"),
    ("sweep {file} --parallel 0", "--parallel"),
]


@pytest.fixture
def paths(tmp_path):
    (tmp_path / "a_file.png").write_bytes(b"not really an image")
    (tmp_path / "garbage.pt").write_bytes(b"this is no checkpoint")
    return {"tmp": tmp_path, "file": tmp_path / "a_file.png", "garbage": tmp_path / "garbage.pt", "camvid": CAMVID}


@pytest.mark.parametrize("command, flag", BAD, ids=[row[0].format(tmp="T", file="F", garbage="G", camvid="C")
                                                     for row in BAD])
def test_bad_value_is_one_line_naming_the_flag(command, flag, paths, capsys):
    if "{camvid}" in command and not CAMVID.exists():
        pytest.skip("shared CamVid data missing")
    if "cuda" in command and torch.cuda.device_count() > 99:
        pytest.skip("this machine has a cuda:99")
    argv = command.format(**paths).split()
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert flag in lines[0], lines[0]
    assert "Traceback" not in captured.err + captured.out
    assert "weights_only=False" not in lines[0]   # torch's unsafe advice is never passed on
    assert not (paths["tmp"] / "out").exists()      # nothing was written


@pytest.mark.parametrize("command, flag", [
    ("predict --checkpoint camvid {file} --output {file}", "--output"),
    ("evaluate --checkpoint {garbage} --dataset camvid --data-root {tmp} --device gpu0", "--checkpoint"),
])
def test_a_real_process_exits_2_without_a_traceback(command, flag, paths):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run([sys.executable, "-m", "fplnet.cli", *command.format(**paths).split()],
                            capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr and flag in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_a_missing_optional_package_is_one_line_saying_how_to_install_it(monkeypatch, tmp_path, capsys):
    """`fplnet export --format onnx` without onnx installed: one line naming what needs it and the
    pip extra, no ModuleNotFoundError traceback."""
    monkeypatch.setitem(sys.modules, "onnx", None)    # `import onnx` now fails as if it were not installed
    checkpoint = make_checkpoint(tmp_path / "tiny.pt")
    assert main(["export", "--checkpoint", str(checkpoint), "--output", str(tmp_path / "m.onnx")]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and "--format onnx needs the 'onnx' package: pip install 'fplnet[deploy]'" in lines[0]
    assert not (tmp_path / "m.onnx").exists()
