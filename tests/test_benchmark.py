"""`fplnet benchmark` runs end to end on tiny inputs and writes what it promises.
No timing is asserted: benchmarks are not tests (STYLE rule 8)."""
import json

import pytest
from PIL import Image

from fplnet.cli import main
from fplnet.fast import Variant

RESULT_KEYS = {"model", "variant", "params", "gmacs", "latency_median_ms", "latency_p90_ms", "fps",
               "speedup_vs_first", "first_call_s", "setup_s", "iters"}
TINY = ["--size", "64x96", "--iters", "2", "--warmup", "1"]


def run_json(tmp_path, *args):
    out = tmp_path / "bench.json"
    assert main(["benchmark", *TINY, "--json", str(out), *args]) == 0
    return json.loads(out.read_text())


def test_two_models_side_by_side(tmp_path, capsys):
    markdown = tmp_path / "bench.md"
    report = run_json(tmp_path, "--models", "fplnet,espnet,not_a_model", "--markdown", str(markdown))
    printed = capsys.readouterr().out
    assert "skipping 'not_a_model'" in printed
    assert {"date", "command", "method", "machine", "results", "mode", "size", "batch_size"} <= set(report)
    assert {"cpu", "logical_cores", "torch", "torch_threads", "gpu"} <= set(report["machine"])
    assert [r["model"] for r in report["results"]] == ["fplnet", "espnet"]
    for result in report["results"]:
        assert RESULT_KEYS <= set(result)
        assert result["iters"] == 2 and result["latency_median_ms"] > 0 and result["params"] > 0
    assert report["results"][0]["speedup_vs_first"] == 1.0
    assert "| fplnet | eager |" in markdown.read_text()
    assert "rotated" in report["method"]


def test_variants_of_one_model(tmp_path):
    report = run_json(tmp_path, "--models", "fplnet_encoder",
                      "--variants", "eager,channels_last,fold_bn+shuffle_deconv,onnxruntime")
    assert [r["variant"] for r in report["results"]] == ["eager", "channels_last", "fold_bn+shuffle_deconv",
                                                         "onnxruntime"]


def test_training_step_mode(tmp_path):
    report = run_json(tmp_path, "--models", "fplnet_encoder", "--mode", "train", "--batch-size", "2",
                      "--variants", "eager,channels_last")
    assert report["mode"] == "train" and len(report["results"]) == 2


def test_refusals(tmp_path, capsys):
    assert main(["benchmark", *TINY, "--models", "fplnet", "--variants", "eager,keep_memory"]) == 2
    assert "keep_memory" in capsys.readouterr().err
    assert main(["benchmark", *TINY, "--models", "fplnet", "--variants", "eager", "--compile"]) == 2
    assert main(["benchmark", *TINY, "--models", "fplnet", "--mode", "train", "--variants", "onnxruntime"]) == 2
    with pytest.raises(ValueError, match="unknown variant switch"):
        Variant.parse("channels_last+turbo")


def test_fig5_plot(tmp_path):
    plot = tmp_path / "fig5.png"
    assert main(["benchmark", "--plot-only", "--plot", str(plot), "--measured", "fplnet@camvid=60.5"]) == 0
    with Image.open(plot) as image:
        assert image.size[0] > 500 and image.size[1] > 300
