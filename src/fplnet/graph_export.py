"""A model as a portable graph: ONNX bytes and TorchScript traces.

Shared by ``fplnet export`` (which writes them to files with metadata) and by the runner's
``onnxruntime`` and ``torchscript`` backends (``fplnet.fast``), so that what the benchmark times
is the graph that ``fplnet export`` ships. Both take a normalized float32 RGB batch ``image``
(N, 3, H, W) and return ``logits`` (N, C, H, W).

ONNX uses the TorchScript-based exporter (``dynamo=False``): it handles PReLU, ConvTranspose and
the shape-dependent crops of the decoder with dynamic height and width, and needs no onnxscript
at run time. TorchScript is traced, not scripted: the models' Python control flow depends only
on shapes, which the tracer records as operations, so a trace runs at any input size.
"""
from __future__ import annotations

import io
import warnings

import torch
from torch import nn

# The file suffix of each graph format ``fplnet export`` writes (TorchScript: any other, e.g. .pt).
# These files fplnet also runs as they are (``fplnet evaluate --checkpoint FILE``); a .pt is read
# as a checkpoint there.
GRAPH_SUFFIXES = {"onnx": ".onnx", "openvino": ".xml"}
RUNNABLE_SUFFIXES = tuple(GRAPH_SUFFIXES.values())
INPUT_NAME, OUTPUT_NAME = "image", "logits"


def export_onnx_bytes(model: nn.Module, opset: int = 17, example_size=(64, 64)) -> bytes:
    """The model as ONNX with dynamic batch, height and width; ``model`` must be in eval mode."""
    example = torch.zeros(1, 3, *example_size)
    buffer = io.BytesIO()
    axes = {0: "batch", 2: "height", 3: "width"}
    with warnings.catch_warnings():
        # The TorchScript-based exporter is deprecated in favour of dynamo=True, which is chosen
        # against on purpose (see the module docstring); its warning says nothing actionable here.
        warnings.simplefilter("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        torch.onnx.export(model, (example,), buffer, dynamo=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: axes, OUTPUT_NAME: axes}, do_constant_folding=True)
    return buffer.getvalue()


def trace_torchscript(model: nn.Module, example: torch.Tensor) -> torch.jit.ScriptModule:
    """``torch.jit.trace`` of an eval-mode model on ``example`` (the tracer's warnings about
    shape arithmetic are expected: shapes become graph operations, see the module docstring)."""
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
        return torch.jit.trace(model, example, check_trace=False)
