"""`fplnet benchmark` runs end to end on tiny inputs and writes what it promises.
No timing is asserted: benchmarks are not tests."""
import json

import pytest
import torch
from PIL import Image

from fplnet.cli import main
from fplnet.engine.benchmark import TrainStep, check_variants
from fplnet.fast import Variant
from fplnet.models import create_model

from _helpers import CAMVID_VAL, make_checkpoint

RESULT_KEYS = {"model", "variant", "params", "gmacs", "latency_median_ms", "latency_p90_ms", "fps",
               "speedup_vs_first", "first_call_s", "setup_s", "iters"}
TINY = ["--size", "64x96", "--iters", "2", "--warmup", "1"]


def run_json(tmp_path, *args):
    out = tmp_path / "bench.json"
    assert main(["benchmark", *TINY, "--json", str(out), *args]) == 0
    return json.loads(out.read_text())


def test_two_models_side_by_side(tmp_path, capsys):
    markdown = tmp_path / "bench.md"
    report = run_json(tmp_path, "--models", "fplnet,espnet", "--markdown", str(markdown))
    assert {"date", "command", "method", "machine", "results", "mode", "size", "batch_size"} <= set(report)
    assert {"cpu", "logical_cores", "torch", "torch_threads", "gpu"} <= set(report["machine"])
    assert [r["model"] for r in report["results"]] == ["fplnet", "espnet"]
    for result in report["results"]:
        assert RESULT_KEYS <= set(result)
        assert result["iters"] == 2 and result["latency_median_ms"] > 0 and result["params"] > 0
    assert report["results"][0]["speedup_vs_first"] == 1.0
    assert "| fplnet | eager |" in markdown.read_text()
    assert "rotated" in report["method"]
    # The command flushed subnormals first thing, and the report says so.
    assert report["machine"]["subnormals_flushed"] is True
    assert "subnormals flushed to zero" in markdown.read_text().splitlines()[0]


def test_variants_of_one_model(tmp_path):
    report = run_json(tmp_path, "--models", "fplnet_encoder",
                      "--variants", "eager,channels_last,fold_bn+shuffle_deconv,onnxruntime")
    assert [r["variant"] for r in report["results"]] == ["eager", "channels_last", "fold_bn+shuffle_deconv",
                                                         "onnxruntime"]
    assert "separately for the entries of each thread pool (torch, onnxruntime)" in report["method"]


def test_each_thread_pool_is_timed_in_rounds_of_its_own():
    """Entries on different thread pools never alternate within the timed rounds: a pool's spinning
    threads would slow the next pool's call (timing_groups docstring)."""
    from types import SimpleNamespace
    import torch
    from fplnet.engine.benchmark import Entry, time_round_robin
    calls = []

    def entry(name: str, backend: str) -> Entry:
        runner = SimpleNamespace(variant=Variant.parse(backend))
        return Entry("m", name, 0, 0, lambda: calls.append(name), runner)

    entries = [entry("eager", "eager"), entry("ov", "openvino"), entry("fast", "channels_last"),
               entry("ov8", "openvino+int8")]
    time_round_robin(entries, warmup=1, iters=3, device=torch.device("cpu"))
    rounds = calls[len(entries):]                       # after one first call each
    assert set(rounds[:8]) == {"eager", "fast"} and set(rounds[8:]) == {"ov", "ov8"}
    assert rounds[:4] == ["eager", "fast", "fast", "eager"]   # rotation within the group
    assert all(len(e.times_ms) == 3 for e in entries)


def test_training_step_mode(tmp_path):
    report = run_json(tmp_path, "--models", "fplnet_encoder", "--mode", "train", "--batch-size", "2",
                      "--variants", "eager,channels_last")
    assert report["mode"] == "train" and len(report["results"]) == 2


def test_training_step_cuda_graphs_go_through_compile(capsys, monkeypatch):
    """A training step's cuda_graphs is the trainer's --compile reduce-overhead; on the CPU it is refused."""
    assert TrainStep.compile_mode(Variant.parse("cuda_graphs+bf16+channels_last")) == "reduce-overhead"
    assert TrainStep.compile_mode(Variant.parse("compile+bf16")) == "default"
    assert TrainStep.compile_mode(Variant.parse("channels_last")) is None
    check_variants([Variant.parse("cuda_graphs+bf16+channels_last")], torch.device("cuda"), "train")
    modes = []   # what TrainStep hands torch.compile (compiling itself is not this test's subject)
    monkeypatch.setattr(torch, "compile", lambda model, mode=None: modes.append(mode) or model)
    for spec in ("channels_last", "compile", "cuda_graphs+bf16"):
        TrainStep(create_model("fplnet_encoder", num_classes=11), Variant.parse(spec), torch.device("cpu"), 1, (32, 32), 11)
    assert modes == ["default", "reduce-overhead"]
    assert main(["benchmark", *TINY, "--models", "fplnet", "--mode", "train", "--variants", "cuda_graphs"]) == 2
    assert "--device cuda" in capsys.readouterr().err


def test_refusals(tmp_path, capsys, monkeypatch):
    assert main(["benchmark", *TINY, "--models", "fplnet", "--variants", "eager,keep_memory"]) == 2
    assert "separate runs" in capsys.readouterr().err
    assert main(["benchmark", *TINY, "--models", "fplnet", "--variants", "channels_last,keep_memory+channels_last"]) == 2
    capsys.readouterr()
    # `fast` is a name for another variant (OpenVINO f32 on a CPU that has it): listed twice, refused.
    monkeypatch.setattr("fplnet.openvino_backend.runs_here", lambda: True)
    assert main(["benchmark", *TINY, "--models", "fplnet", "--variants", "eager,fast,openvino"]) == 2
    assert "fast and openvino both run as keep_memory+openvino here ('fast' is" in capsys.readouterr().err
    assert main(["benchmark", *TINY, "--models", "fplnet", "--variants", "fold_bn+channels_last,channels_last+fold_bn"]) == 2
    assert "both run as fold_bn+channels_last here (the same switches)" in capsys.readouterr().err
    assert main(["benchmark", *TINY, "--models", "fplnet", "--variants", "eager", "--compile"]) == 2
    assert main(["benchmark", *TINY, "--models", "fplnet", "--mode", "train", "--variants", "onnxruntime"]) == 2
    with pytest.raises(ValueError, match="unknown variant switch"):
        Variant.parse("channels_last+turbo")


def test_argmax_agreement_with_eager_on_real_images(tmp_path):
    """The agreement column of docs/benchmarks.md comes from here: per variant, per image."""
    checkpoint = make_checkpoint(tmp_path / "camvid.pt")
    report = run_json(tmp_path, "--checkpoint", str(checkpoint), "--variants", "eager,channels_last,bf16",
                      "--agreement-images", str(CAMVID_VAL), "--agreement-count", "2")
    assert report["checkpoint"] == str(checkpoint) and len(report["agreement_images"]) == 2
    eager, channels_last, bf16 = (r["argmax_vs_eager"] for r in report["results"])
    assert eager["identical"] and eager["per_image"] == [1.0, 1.0] and eager["max_changed_pixels"] == 0
    assert channels_last["min"] > 0.999 and 0.9 < bf16["min"] <= 1
    assert "--agreement-images" in report["command"]


def test_agreement_needs_a_trained_checkpoint(capsys):
    assert main(["benchmark", *TINY, "--models", "fplnet", "--agreement-images", str(CAMVID_VAL)]) == 2
    assert "--agreement-images needs --checkpoint" in capsys.readouterr().err


def test_plots_keep_data_sets_apart(tmp_path, capsys):
    cityscapes, camvid = tmp_path / "fig5.png", tmp_path / "camvid.png"
    assert main(["benchmark", "--plot-only", "--plot", str(cityscapes), "--camvid-plot", str(camvid),
                 "--measured", "fplnet@camvid:val=60.5"]) == 0
    for plot in (cityscapes, camvid):
        with Image.open(plot) as image:
            assert image.size[0] > 500 and image.size[1] > 300
    # A CamVid point never lands on the Cityscapes axes: without --camvid-plot it is refused.
    assert main(["benchmark", "--plot-only", "--plot", str(cityscapes), "--measured", "fplnet@camvid:val=60.5"]) == 2
    assert "--camvid-plot" in capsys.readouterr().err


def test_inference_compile_with_cuda_graphs_is_inductors_own_graphs(monkeypatch):
    """compile+cuda_graphs: the fused compiled forward replayed by inductor's CUDA graphs (what
    mode='reduce-overhead' sets), not the eager capture of plain cuda_graphs."""
    from fplnet.fast import InferenceRunner
    calls = []
    monkeypatch.setattr(torch, "compile", lambda model, **kwargs: calls.append(kwargs) or model)
    for spec in ("fold_bn+channels_last+compile+freeze", "compile"):
        InferenceRunner(torch.nn.Conv2d(3, 4, 1), spec, torch.device("cpu"))
    assert calls == [{"options": {"freezing": True}, "dynamic": False}, {"dynamic": False}]
    switches = Variant.parse("fold_bn+compile+cuda_graphs+bf16").compile_switches
    assert switches == {"freeze": False, "cuda_graphs": True}
    from fplnet.runtime import compile_module
    compile_module(torch.nn.Conv2d(3, 4, 1), dynamic=False, **switches)
    assert calls[-1] == {"options": {"triton.cudagraphs": True}, "dynamic": False}
    with pytest.raises(ValueError, match="CUDA graphs need a CUDA device"):
        InferenceRunner(torch.nn.Conv2d(3, 4, 1), "compile+cuda_graphs", torch.device("cpu"))


def test_device_auto_is_the_cpu_for_exported_graph_variants_only(monkeypatch):
    """As in evaluate and predict, ``--device auto`` runs onnxruntime / OpenVINO variants on the
    CPU, their only device, even where a GPU is visible; anything else takes the GPU."""
    from argparse import Namespace
    import fplnet.engine.benchmark as benchmark
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)   # a GPU is visible
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    device = lambda variants, name="auto": benchmark.benchmark_device(Namespace(device=name, variants=variants))
    assert device(["openvino", "openvino+int8", "onnxruntime"]).type == "cpu"
    assert device(["eager", "openvino"]).type == "cuda"     # a mix: check_variants refuses it on the GPU
    assert device(["fast"]).type == "cuda" and device(None).type == "cuda"
    assert device(["openvino"], name="cuda").type == "cuda"  # asked for explicitly: refused later, not moved


def test_the_issues_variant_list_runs_every_variant_with_keep_memory(tmp_path, capsys):
    """`fast` brings the process-wide allocator switch on the CPU; the others are timed under it
    too, so they carry it in their names and the run says so."""
    # `fast` is keep_memory + the CPU fast path (tests/test_variants.py); one switch without the
    # compile wait stands in for it here.
    report = run_json(tmp_path, "--models", "fplnet", "--variants", "eager,keep_memory+channels_last,fold_bn",
                      "--device", "cpu")
    assert [r["variant"] for r in report["results"]] == ["keep_memory", "keep_memory+channels_last",
                                                         "keep_memory+fold_bn"]
    assert "eager -> keep_memory, fold_bn -> keep_memory+fold_bn" in capsys.readouterr().out


def test_agreement_runs_each_entry_at_the_timed_batch_shape():
    """A variant compiled per shape must not compile again for the agreement check."""
    from types import SimpleNamespace
    from fplnet.engine.benchmark import measure_agreement
    model = torch.nn.Conv2d(3, 4, 1).eval()
    shapes = []

    def runner(x):
        shapes.append(tuple(x.shape))
        return model(x)
    entry = SimpleNamespace(runner=runner, agreement=[])
    image = torch.randn(1, 3, 8, 12)
    measure_agreement(model, [entry], [("a.png", image), ("b.png", image)], "cpu", batch_size=3)
    assert shapes == [(3, 3, 8, 12)] * 2
    assert entry.agreement == [1.0, 1.0]
