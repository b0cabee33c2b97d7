"""Process set-up of fplnet.runtime that the commands rely on."""
import subprocess
import sys

import pytest

# Multiply a tensor of subnormal fp32 values, large enough that torch splits the work across its
# thread pool, and print how many results stayed nonzero.
_COUNT_SUBNORMAL_PRODUCTS = (
    "import torch; y = torch.full((1 << 22,), 1e-39) * 2; print(int((y != 0).sum()))")


def _nonzero_after(prelude: str) -> int:
    out = subprocess.run([sys.executable, "-c", prelude + "\n" + _COUNT_SUBNORMAL_PRODUCTS],
                         capture_output=True, text=True, timeout=120, check=True)
    return int(out.stdout.strip().splitlines()[-1])


def test_every_command_flushes_subnormals_in_all_of_torchs_threads():
    import torch
    if not torch.set_flush_denormal(False):   # no FTZ/DAZ on this CPU: nothing to switch
        pytest.skip("this CPU cannot flush subnormal numbers")
    # Control: without the switch, every product of a subnormal is a (nonzero) subnormal.
    assert _nonzero_after("") == 1 << 22
    # Through the CLI's entry point, before any other tensor work: all flushed to zero.
    prelude = "import contextlib, io\nfrom fplnet.cli import main\n" \
              "with contextlib.redirect_stdout(io.StringIO()): main(['models'])"
    assert _nonzero_after(prelude) == 0


def _subnormal_count(tensors) -> int:
    import torch
    return sum(int(((t.abs() < torch.finfo(t.dtype).tiny) & (t != 0)).sum()) for t in tensors if t.is_floating_point())


def test_zero_subnormals_zeroes_only_the_subnormal_values():
    import torch
    from fplnet.runtime import zero_subnormals
    layer = torch.nn.Linear(3, 2)
    values = [1e-39, -5e-40, 0.0, 1.5e-38, -0.25, 3.0]      # 1.5e-38 is the smallest kind of normal
    with torch.no_grad():
        layer.weight.copy_(torch.tensor(values).view(2, 3))
        layer.bias.copy_(torch.tensor([1e-45, 1.0]))
    assert zero_subnormals(layer) == 3
    assert torch.equal(layer.weight.flatten(), torch.tensor([0.0, 0.0, 0.0, 1.5e-38, -0.25, 3.0]))
    assert layer.bias.tolist() == [0.0, 1.0]
    assert zero_subnormals(layer) == 0


def test_loaded_and_exported_models_carry_no_subnormal_weights(tmp_path):
    import onnx
    import torch
    from onnx import numpy_helper
    from fplnet.checkpoint import load_checkpoint
    from fplnet.cli import main
    from fplnet.models import build_model, load_model
    # The shipped weights hold thousands (control); build_model keeps the checkpoint's values.
    raw = build_model(load_checkpoint("camvid")).eval()
    assert _subnormal_count(list(raw.parameters()) + list(raw.buffers())) > 1000
    loaded, _ = load_model("camvid")
    assert _subnormal_count(list(loaded.parameters()) + list(loaded.buffers())) == 0
    x = torch.randn(1, 3, 64, 96, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        kept, zeroed = raw(x), loaded(x)
    assert torch.equal(kept.argmax(1), zeroed.argmax(1))
    assert (kept - zeroed).abs().max().item() < 1e-5
    path = tmp_path / "camvid.onnx"
    assert main(["export", "--checkpoint", "camvid", "--format", "onnx", "--output", str(path),
                 "--size", "64x96", "--no-verify"]) == 0
    graph = onnx.load(str(path)).graph
    initializers = [torch.from_numpy(numpy_helper.to_array(t).copy()) for t in graph.initializer]
    assert sum(t.numel() for t in initializers) > 400_000
    assert _subnormal_count(initializers) == 0
