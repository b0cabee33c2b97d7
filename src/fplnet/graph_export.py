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
from pathlib import Path
from typing import Optional, Union

import torch
from torch import nn

from .runtime import require_package

# The file suffix of each graph format ``fplnet export`` writes (TorchScript: any other, e.g. .pt).
# These files fplnet also runs as they are (``fplnet evaluate --checkpoint FILE``); a .pt is read
# as a checkpoint there.
GRAPH_SUFFIXES = {"onnx": ".onnx", "openvino": ".xml"}


def graph_format(path) -> Optional[str]:
    """The graph format a file's suffix names ("onnx", "openvino"), in any letter case (a file
    copied from a system that upper-cases names, M.XML, is still an IR: OpenVINO reads it, with
    its weights in M.bin); None for any other suffix (a checkpoint, a TorchScript file)."""
    suffix = Path(str(path)).suffix.lower()
    return next((fmt for fmt, wanted in GRAPH_SUFFIXES.items() if suffix == wanted), None)
INPUT_NAME, OUTPUT_NAME = "image", "logits"
# Where ``fplnet export`` puts its metadata JSON: the ONNX metadata_props key and the OpenVINO IR's
# rt_info key (TorchScript: ``fplnet.exported.TORCHSCRIPT_METADATA_FILE``).
METADATA_KEY = "fplnet"


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


def onnxruntime_session(graph: Union[bytes, str, Path], threads: int, needed_for: str):
    """An onnxruntime CPU session for ONNX bytes or an .onnx file, with every graph optimization,
    ``threads`` intra-op threads and one inter-op thread.

    Subnormal floats are flushed to zero in the session's own threads
    (``session.set_denormal_as_zero``), whatever the calling process has set: trained weights hold
    thousands of them, and Intel cores slow down on each (``fplnet.runtime.flush_denormals``)."""
    onnxruntime = require_package("onnxruntime", needed_for)
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = int(threads)
    options.inter_op_num_threads = 1
    options.add_session_config_entry("session.set_denormal_as_zero", "1")
    source = graph if isinstance(graph, bytes) else str(graph)
    return onnxruntime.InferenceSession(source, options, providers=["CPUExecutionProvider"])
