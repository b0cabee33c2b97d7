"""OpenVINO: the exported graph run by OpenVINO's CPU plugin, in fp32 or quantized to INT8.

The OpenVINO model is converted from the very ONNX graph ``fplnet export`` ships and the
``onnxruntime`` variant runs (``fplnet.graph_export``, BatchNorms folded), with free batch,
height and width. ``OpenVINORunner`` compiles it once per input shape, as the runner's other
per-shape backends do, so each shape runs a static graph.

Precision. The CPU plugin picks its own inference precision: bf16 on CPUs with AVX512-BF16 or
AMX, which changes the argmax of more pixels than fp32 backends may. Every compile therefore sets
``INFERENCE_PRECISION_HINT`` explicitly: ``f32`` unless the variant names ``bf16``. What actually
ran is read back from the compiled model (``executed_precision``): the hint, and the number of
executed layers per runtime precision (INT8 layers report ``u8`` / ``i8``).

INT8. ``quantize`` is NNCF post-training quantization (``nncf.quantize``, MIXED preset:
symmetric per-channel INT8 weights, asymmetric INT8 activations, fast bias correction) calibrated on
frames the caller chooses (``fplnet.calibration``: frames of the model's training split). Layers
named in ``ignored_scope`` (NNCF's ``IgnoredScope``: names, types, patterns) stay in float; by
default those of ``KEEP_IN_FLOAT`` for the model's registry name.

Why FPLNet keeps its two fusion modules (FIR, ``encoder.fusions``) in float: with everything
quantized, the shipped CamVid FPLNet lost 0.29 mIoU points on val and 0.54 on the held-out
sequence 0006R0, over issue 9's bound of 0.5. Keeping one block at a time in float (initial
module, encoder stage 0, encoder stage 1, fusions, decoder; 300 calibration frames of CamVid
train) and ranking the blocks on the 67 train frames left out of calibration, the fusions gave
the best mIoU there (65.15 against 65.06 fp32 and 64.95 all-INT8) and argmax agreement (98.47 %
against 98.23 %) for the smallest cost: 3 of 267 quantization points (the concatenation of the
stage output with the downsampled image and the addition after it). Keeping all of encoder
stage 1 agreed slightly more (98.71 %) but leaves half the network in float. On the evaluation
splits the fusions choice gives val 61.84 and 0006R0 66.94 (fp32: 62.14 and 67.11).
Those figures are the first shipped weights' (SGD on CamVid train). The weights shipped since
(the long trainval run, Adam, 750 epochs) lose far more under the default preset with the same
scope: 3.1 points on val and 5.8 on 0006R0, argmax agreement 95.6 % on the left-out train frames;
no single block kept in float helps much (the best, encoder stage 0, agreement 97.1 %), while the
MIXED preset (asymmetric activations) raises agreement to 97.7 % and cuts the losses to 1.3 and
1.9 points, and MIXED with encoder stage 0 kept in float as well to 98.6 %, 0.6 and 0.8 points
(``docs/runs/openvino/int8_block_sensitivity_long.jsonl``, where val frames were among the 300
calibration frames). Searched again on the graph ``split_concat_convs`` gives
(``docs/runs/openvino/int8_block_sensitivity_split.jsonl``, same criterion: argmax agreement on
the left-out train frames), the activation range estimator mattered more than any block: NNCF's
MEAN_QUANTILE (per frame, the 1e-4 and 1 - 1e-4 quantiles, averaged over frames) raised agreement
from 98.56 % to 98.91 %, the histogram estimator to 98.74 %, while MEAN_MINMAX and disabling the
first-layer overflow fix changed nothing or less. On top of it, stage 1's last FPL module in float
gave 99.03 % and its downsampler 98.95 %. ``nncf.quantize_with_accuracy_control`` (bound 0.4
points on the left-out frames, ranking on 24 of them) took 25 minutes on the 2 cores and put back
stage 1's last module and the decoder's first one (98.84 %). So ``quantize`` uses MIXED with
MEAN_QUANTILE ranges, and FPLNet keeps the fusions, encoder stage 0 and stage 1's last module in
float; on val and 0006R0 that search run lost 0.33 and 0.47 points (86.62 and 83.28 against 86.95
and 83.75), the first configuration under issue 9's bound on both.

IR files (``save_ir``): ``NAME.xml`` and ``NAME.bin``, float weights kept in fp32 (OpenVINO's
default would compress them to fp16; an INT8 model's quantized weights are int8), and the
inference spec and export facts as JSON in the model's ``rt_info`` under "fplnet" (inside the
.xml, so it cannot be separated from the graph; read it with ``read_ir_metadata`` or any XML
reader: ``<rt_info><fplnet value="..."/>``), beside the sha256 of the .bin it was saved with.
"""
from __future__ import annotations

import functools
import hashlib
import importlib.util
import io
import json
import os
import tempfile
import time
import warnings
from collections import Counter, OrderedDict
from pathlib import Path
from typing import Optional, Sequence

import numpy as np
import torch
from torch import nn

from .graph_export import METADATA_KEY, export_onnx_bytes
from .runtime import make_room, require_package

BIN_DIGEST_KEY = "fplnet_bin_sha256"   # rt_info of the .xml: the sha256 of the .bin saved with it
PRECISIONS = ("f32", "bf16")
# Layers left in float when quantizing, per registry name (NNCF IgnoredScope fields; module docstring).
# FPLNet: the two fusion modules, encoder stage 0 (the five FPL modules at 1/4 resolution) and the
# last FPL module of stage 1 (the one before the second fusion).
_FPLNET_FLOAT = {"patterns": [r".*/encoder/fusions\.\d+/.*", r".*/encoder/stages\.0\..*", r".*/encoder/stages\.1\.8/.*"]}
KEEP_IN_FLOAT = {"fplnet": _FPLNET_FLOAT, "fplnet_encoder": _FPLNET_FLOAT}
# Execution-graph layers that move or hold data rather than compute; left out of the precision count.
_NOT_COMPUTE = {"Input", "Output", "Const", "Reorder", "Reshape"}


def require(module: str):
    """Import ``openvino`` or ``nncf``, or say how to install them."""
    return require_package(module, "the OpenVINO backend")


@functools.lru_cache(maxsize=None)
def core():
    return require("openvino").Core()


@functools.lru_cache(maxsize=None)
def runs_here() -> bool:
    """Whether the ``openvino`` variant can run in this process: onnx and OpenVINO import and
    OpenVINO's CPU plugin loads. False, with a warning that says why, where OpenVINO is installed
    but broken (a wheel for another platform, a plugin that fails to load); False silently where
    it is not installed. Checked once per process."""
    if any(importlib.util.find_spec(module) is None for module in ("onnx", "openvino")):
        return False
    try:
        require("onnx")
        devices = core().available_devices
    except Exception as err:   # noqa: BLE001 - any failure of a third-party import or plugin load
        warnings.warn(f"OpenVINO is installed but does not load here ({type(err).__name__}: {err}); "
                      "the CPU fast path falls back to compiled torch", RuntimeWarning, stacklevel=2)
        return False
    if "CPU" not in devices:
        warnings.warn(f"OpenVINO lists no CPU device here (only {devices}); the CPU fast path falls back to "
                      "compiled torch", RuntimeWarning, stacklevel=2)
        return False
    return True


def to_openvino(model: nn.Module):
    """An eval-mode model (BatchNorms already folded, as ``fplnet.fast.prepare_model`` does) ->
    ``openvino.Model`` with dynamic batch, height and width, via the shipped ONNX graph."""
    ov = require("openvino")
    ov_model = rank4_prelu_slopes(ov.convert_model(io.BytesIO(export_onnx_bytes(model))))
    split_concat_convs(ov_model)
    narrow_pools_as_convs(ov_model)
    return ov_model


def rank4_prelu_slopes(ov_model):
    """Give every per-channel PReLU slope the rank of its input: (C, 1, 1) -> (1, C, 1, 1). Exact.

    Why: PyTorch exports a ``PReLU(C)`` slope as (C, 1, 1). With that rank-3 constant, the CPU
    plugin runs the PReLU (and the residual add and BatchNorm it fuses with) only in planar NCHW,
    while its convolutions run in NHWC, so every FPL module converted its output to NCHW and back
    (``scripts/openvino_profile.py``: 44 layout reorders, a third of the fp32 time of the CamVid
    model at 512x1024). With a rank-4 slope the same layers run in NHWC and those reorders go.
    """
    ops = require("openvino").opset13
    for op in ov_model.get_ops():
        if op.get_type_name() != "PRelu":
            continue
        slope = op.input(1).get_source_output()
        shape = slope.get_partial_shape()
        data_rank = op.get_input_partial_shape(0).rank
        if shape.is_static and data_rank.is_static and shape.rank.get_length() == data_rank.get_length() - 1:
            target = [1] + [int(v) for v in shape.to_shape()]
            node = slope.get_node()
            # A constant is replaced by its reshaped copy, so quantization sees the same kind of
            # graph as before; anything else gets a Reshape in front.
            reshaped = (ops.constant(node.get_data().reshape(target)) if node.get_type_name() == "Constant"
                        else ops.reshape(slope, ops.constant(np.array(target, dtype=np.int64)), False))
            op.input(1).replace_source_output(reshaped.output(0))
    ov_model.validate_nodes_and_infer_types()
    return ov_model


def _single_compute_user(output):
    """The one node that reads ``output``, not counting shape reads (ShapeOf); None if not one."""
    users = [t.get_node() for t in output.get_target_inputs() if t.get_node().get_type_name() != "ShapeOf"]
    return users[0] if len(users) == 1 else None


def _constant(output):
    node = output.get_node()
    return node.get_data() if node.get_type_name() == "Constant" else None


def _per_channel_constant(output, channels: int):
    """A Constant as (1, C, 1, 1) or (1, 1, 1, 1) float values, or None for anything else
    (another layout, or not a constant): the only shapes ``split_concat_convs`` can slice."""
    values = _constant(output)
    if values is None:
        return None
    values = np.asarray(values)
    if values.size == 1:
        return values.reshape(1, 1, 1, 1)
    return values if values.shape == (1, channels, 1, 1) else None


def _read_shape_from_part(ops, replaced: list, part, channels: int) -> None:
    """Point the shape reads (ShapeOf) of the replaced nodes at a shape built from ``part``:
    [N, channels, H, W], which is what they read. Without it, a graph with free input sizes would
    keep computing the replaced concatenation just to read its shape."""
    for node in replaced:
        for target in list(node.output(0).get_target_inputs()):
            shape_of = target.get_node()
            if shape_of.get_type_name() != "ShapeOf":
                continue
            source = ops.shape_of(part, shape_of.get_output_element_type(0).get_type_name())
            axis = ops.constant(np.array(0, dtype=np.int64))
            pieces = [ops.gather(source, ops.constant(np.array([0], dtype=np.int64)), axis),
                      ops.constant(np.array([channels], dtype=source.get_output_element_type(0).to_dtype())),
                      ops.gather(source, ops.constant(np.array([2, 3], dtype=np.int64)), axis)]
            shape = ops.concat(pieces, 0)
            for reader in list(shape_of.output(0).get_target_inputs()):
                reader.replace_source_output(shape.output(0))


def split_concat_convs(ov_model) -> int:
    """Rewrite every channel concatenation whose only reader is a chain of per-channel ops (a
    folded BatchNorm's Multiply and Add, a PReLU) ending in a convolution into one such chain per
    part, each with the convolution's weights for its channels, summed. Exact: those ops act
    channel by channel and a convolution is a sum over its input channels. Returns how many.

    Why: FPLNet's stem and FIR fusions concatenate a few image channels to the features (35, 131
    and 259 channels) and BN + PReLU the result before a 1x1 convolution. The CPU plugin runs that
    concatenation as a copy into a channel count its blocked layouts do not divide, then reorders
    it; split, each part stays in the layout of the convolution that made it, and the sum is fused
    into the last convolution (timings: docs/benchmarks.md, "OpenVINO graph rewrites"). Only 1x1
    convolutions are split, the case FPLNet has and the one timed.

    The new nodes keep the names of the nodes they replace with ``/partK`` appended, so NNCF's
    ignored scopes (``KEEP_IN_FLOAT``) match them as they matched the originals. Shape reads of
    the old chain (ShapeOf, for the decoder's crops) are pointed at the first part's shape with
    the channel count set, so the old chain goes, at free input sizes too."""
    ops = require("openvino").opset13
    per_channel = {"Multiply": ops.multiply, "Add": ops.add, "PRelu": ops.prelu}
    count = 0
    for concat in list(ov_model.get_ordered_ops()):
        if (concat.get_type_name() != "Concat" or concat.get_output_partial_shape(0).rank.get_length() != 4
                or concat.get_attributes().get("axis") not in (1, -3)):
            continue
        # The per-channel ops after the concatenation, up to the 1x1 convolution that reads them.
        chain, node = [], _single_compute_user(concat.output(0))
        while node is not None and node.get_type_name() in per_channel and node.get_input_size() == 2:
            chain.append(node)
            node = _single_compute_user(node.output(0))
        conv = node
        if (not chain or conv is None or conv.get_type_name() != "Convolution"
                or list(conv.get_input_shape(1))[2:] != [1, 1]):
            continue
        parts = [i.get_source_output() for i in concat.inputs()]
        widths = [p.get_partial_shape()[1] for p in parts]
        if not all(w.is_static for w in widths):
            continue
        channels_total = sum(w.get_length() for w in widths)
        constants = [_per_channel_constant(n.input(1).get_source_output(), channels_total) for n in chain]
        weight = _constant(conv.input(1).get_source_output())
        if any(v is None for v in constants + [weight]):
            continue
        attrs = conv.get_attributes()
        total, start = None, 0
        for k, (part, width) in enumerate(zip(parts, widths)):
            channels = slice(start, start + width.get_length())
            start = channels.stop
            y = part
            for op, values in zip(chain, constants):
                own = values[:, channels] if values.shape[1] > 1 else values   # a (1, 1, 1, 1) one serves every part
                y = per_channel[op.get_type_name()](y, ops.constant(np.ascontiguousarray(own)))
                y.set_friendly_name(f"{op.get_friendly_name()}/part{k}")
            y = ops.convolution(y, ops.constant(np.ascontiguousarray(weight[:, channels])), attrs["strides"],
                                attrs["pads_begin"], attrs["pads_end"], attrs["dilations"], attrs["auto_pad"])
            y.set_friendly_name(f"{conv.get_friendly_name()}/part{k}")
            if total is not None:
                y = ops.add(total, y)
                y.set_friendly_name(f"{conv.get_friendly_name()}/sum{k}")
            total = y
        total.output(0).add_names(conv.output(0).get_names())
        for target in list(conv.output(0).get_target_inputs()):
            target.replace_source_output(total.output(0))
        _read_shape_from_part(ops, [concat] + chain, parts[0], channels_total)
        count += 1
    ov_model.validate_nodes_and_infer_types()
    return count


def narrow_pools_as_convs(ov_model) -> int:
    """Rewrite every average pool over fewer than 16 channels that counts the padding (ONNX
    ``count_include_pad=1``, as ``torch.nn.functional.avg_pool2d`` by default) as a depthwise
    convolution with every weight 1 / (kernel area) and the pool's strides and pads. Exact up to
    float rounding (the sum is scaled term by term instead of once). Returns how many.

    Why: FPLNet's, ESPNet's and CGNet's image pyramid halves the 3-channel input image with such
    pools (``fplnet.layers.avg_pool_image``). The CPU plugin runs a pool in its 16-channel blocked
    layout, so it first copies the full-size image into 16 channels, 13 of them padding: at
    512x1024 that reorder took 4.4 ms and the pool 1.8 of a 97 ms f32 forward
    (``scripts/openvino_profile.py``), more than any layer but the stem's two 3x3 convolutions.
    A depthwise convolution runs in the NHWC layout the stem's first convolution reads the image
    in (timings: docs/benchmarks.md, "The image pyramid's pools as convolutions"). Pools over 16
    or more channels fill the blocks and are left alone; so are max pools (ENet's) and pools
    that exclude the padding (their divisor changes at the border, which a convolution cannot
    express). The convolution keeps the pool's name, so NNCF's ignored scopes match it as
    before."""
    ops = require("openvino").opset13
    count = 0
    for pool in list(ov_model.get_ordered_ops()):
        if pool.get_type_name() != "AvgPool":
            continue
        attrs = pool.get_attributes()
        channels = pool.get_input_partial_shape(0)[1] if pool.get_input_partial_shape(0).rank.is_static else None
        # A ceil-mode pool's last window can start in the padding, where its divisor differs.
        if (attrs["exclude-pad"] or attrs["auto_pad"] != "explicit" or attrs["rounding_type"] != "floor"
                or len(attrs["kernel"]) != 2 or pool.get_input_element_type(0).get_type_name() != "f32"
                or channels is None or not channels.is_static or channels.get_length() >= 16):
            continue
        kernel = list(attrs["kernel"])
        weight = np.full([channels.get_length(), 1, 1, *kernel], 1.0 / (kernel[0] * kernel[1]), dtype=np.float32)
        conv = ops.group_convolution(pool.input(0).get_source_output(), ops.constant(weight), attrs["strides"],
                                     attrs["pads_begin"], attrs["pads_end"], [1, 1])
        conv.set_friendly_name(pool.get_friendly_name())
        conv.output(0).add_names(pool.output(0).get_names())
        for target in list(pool.output(0).get_target_inputs()):
            target.replace_source_output(conv.output(0))
        count += 1
    ov_model.validate_nodes_and_infer_types()
    return count


def keep_in_float(model: nn.Module) -> dict:
    """The ignored scope ``KEEP_IN_FLOAT`` gives the model's registry name ({} for none)."""
    return KEEP_IN_FLOAT.get(getattr(model, "model_name", None), {})


def quantize(ov_model, frames: Sequence[np.ndarray], ignored_scope: Optional[dict] = None):
    """NNCF post-training INT8 quantization of ``ov_model``, calibrated on ``frames``
    (normalized float32 arrays (1, 3, H, W)); ``ignored_scope`` (``{"names": [...],
    "types": [...], "patterns": [...]}``) keeps those layers in float."""
    nncf = require("nncf")
    if not frames:
        raise ValueError("INT8 quantization needs at least one calibration frame")
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters
    from nncf.quantization.range_estimator import RangeEstimatorParametersSet
    kwargs = {"ignored_scope": nncf.IgnoredScope(**ignored_scope)} if ignored_scope else {}
    # MIXED (asymmetric activations): PReLU outputs are lopsided, and a symmetric range spends half
    # its levels on a side they barely use. Activation ranges from the mean over frames of each
    # frame's 1e-4 and 1 - 1e-4 quantiles rather than its min and max: a few extreme pixels no
    # longer stretch the range of every frame (module docstring, the long run's weights).
    ranges = AdvancedQuantizationParameters(activations_range_estimator_params=RangeEstimatorParametersSet.MEAN_QUANTILE)
    return nncf.quantize(ov_model, nncf.Dataset(list(frames)), subset_size=len(frames),
                         preset=nncf.QuantizationPreset.MIXED, advanced_parameters=ranges, **kwargs)


def quantization_facts(ignored_scope: Optional[dict]) -> dict:
    """How ``quantize`` quantized, for metadata and reports."""
    return {"method": "NNCF post-training quantization (nncf.quantize, MIXED preset: symmetric per-channel "
                      "INT8 weights, asymmetric INT8 activations with MEAN_QUANTILE ranges, fast bias correction)",
            "nncf": require("nncf").__version__, "kept_in_float": ignored_scope or {}}


def compile_for_shape(ov_model, shape: Sequence[int], threads: int, precision: str = "f32",
                      config: Optional[dict] = None):
    """``ov_model`` compiled for the CPU at one static input shape, precision set explicitly;
    ``config`` adds CPU plugin properties (``scripts/openvino_profile.py`` adds ``PERF_COUNT``)."""
    if precision not in PRECISIONS:
        raise ValueError(f"OpenVINO inference precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    model = ov_model.clone()
    model.reshape([int(v) for v in shape])
    # CPU_DENORMALS_OPTIMIZATION: flush subnormal floats to zero in the plugin's own threads,
    # whatever the process has set (fplnet.runtime.flush_denormals says why it matters).
    properties = {"INFERENCE_PRECISION_HINT": precision, "INFERENCE_NUM_THREADS": int(threads),
                  "PERFORMANCE_HINT": "LATENCY", "CPU_DENORMALS_OPTIMIZATION": True, **(config or {})}
    return core().compile_model(model, "CPU", properties)


def nhwc_output(ov_model):
    """A copy of ``ov_model`` (one NCHW output) whose output tensor is laid out NHWC.

    Why: the CPU plugin computes the last layer in NHWC, so an NCHW output costs one more reorder
    of the full-resolution logits (2.9 ms in f32 and 3.4 ms in INT8 for the CamVid model at
    512x1024, ``docs/runs/openvino_profile/camvid_512x1024_rank4_slopes.txt``). ``OpenVINORunner``
    asks for NHWC and hands the logits back as an (N, C, H, W) tensor in channels_last memory,
    the same values without a copy. Saved IR
    files keep their NCHW output, which is what other consumers of the file expect."""
    ov = require("openvino")
    from openvino.preprocess import PrePostProcessor
    ppp = PrePostProcessor(ov_model.clone())
    ppp.output(0).model().set_layout(ov.Layout("NCHW"))
    ppp.output(0).tensor().set_layout(ov.Layout("NHWC"))
    return ppp.build()


def labels_at_size(ov_model, size: Sequence[int]):
    """A copy of ``ov_model`` (one NCHW logits output) that resizes its logits to ``size`` and
    returns the argmax over classes: (N, H, W) labels, uint8 up to 256 classes, else int32.

    The resize is bilinear with half-pixel centres and no antialiasing (``linear_onnx``): what
    ``fplnet.data.resize.resize_logits`` (torch's bilinear, align_corners=False) computes, up to
    float rounding. Why: when an image runs at another size than its own (a 1920x1080 dash-cam
    frame at 640x360), torch's resize of the 11 x 1920 x 1080 float logits and its argmax over them
    took longer than the INT8 network; in the compiled graph the logits never leave OpenVINO
    (docs/runs/predict_pipeline_2026-12-03/, "Labels at the image's size")."""
    ov = require("openvino")
    ops = ov.opset13
    graph = ov_model.clone()
    logits = graph.get_results()[0].input_value(0)
    resized = ops.interpolate(logits, ops.constant(np.array([int(v) for v in size], dtype=np.int64)),
                              mode="linear_onnx", shape_calculation_mode="sizes",
                              coordinate_transformation_mode="half_pixel",
                              axes=ops.constant(np.array([2, 3], dtype=np.int64)))
    top = ops.topk(resized, ops.constant(np.int64(1)), axis=1, mode="max", sort="none", index_element_type="i32")
    labels = ops.squeeze(top.output(1), ops.constant(np.array([1], dtype=np.int64)))
    classes = logits.get_partial_shape()[1]
    if classes.is_static and classes.get_length() <= 256:
        labels = ops.convert(labels, "u8")
    return ov.Model([labels], graph.get_parameters(), "labels")


def executed_precision(compiled) -> dict:
    """What a compiled model runs in: the plugin's precision hint as it reads it back, and the
    count of executed compute layers per runtime precision (``{"f32": 120}``, ``{"u8": 180, "i8": 90, ...}``)."""
    counts: Counter = Counter()
    for op in compiled.get_runtime_model().get_ops():
        info = op.get_rt_info()
        if info["layerType"].astype(str) not in _NOT_COMPUTE:
            counts[info["runtimePrecision"].astype(str)] += 1
    hint = compiled.get_property("INFERENCE_PRECISION_HINT")
    return {"inference_precision_hint": str(getattr(hint, "type_name", hint)).lower()
            .replace("float32", "f32").replace("bfloat16", "bf16"),
            "layers_by_runtime_precision": dict(sorted(counts.items()))}


def precision_label(backend_info: dict) -> Optional[str]:
    """What an OpenVINO model ran in, for a report line: the precision hint ("f32", "bf16"), as
    "int8 + f32" for a quantized model (its float islands run at the hint); None where
    ``backend_info`` (a runner's ``info()`` / ``backend_info()``) is not OpenVINO's."""
    hint = backend_info.get("inference_precision_hint")
    return f"int8 + {hint}" if hint and backend_info.get("fake_quantize_ops") else hint


def fake_quantize_count(ov_model) -> int:
    """How many FakeQuantize operations (NNCF's quantization points) a model holds."""
    return sum(op.get_type_name() == "FakeQuantize" for op in ov_model.get_ops())


class OpenVINORunner:
    """Normalized float32 NCHW tensor -> logits tensor, through an ``openvino.Model`` compiled
    once per input shape at ``precision``. At most ``max_shapes`` compiled models are kept, the
    least recently used dropped first: each holds its own memory (weights repacked, buffers for
    its shape), and a folder of photos of many aspect ratios, or a long-lived app, would otherwise
    keep one per shape ever seen."""

    def __init__(self, ov_model, threads: int, precision: str = "f32", quantization: Optional[dict] = None,
                 max_shapes: int = 8, metadata: Optional[dict] = None):
        if max_shapes < 1:
            raise ValueError(f"OpenVINORunner: max_shapes={max_shapes}; keep at least one compiled shape")
        self.ov_model, self.threads, self.precision = ov_model, threads, precision
        self.quantization = quantization   # quantization_facts of an INT8 model
        self.metadata = metadata           # the fplnet metadata of the IR file it was loaded from, if any
        self.max_shapes = max_shapes
        self._runnable = None              # ov_model with an NHWC output (nhwc_output), made once
        # Input shape (logits) or ("labels", input shape, output size) -> compiled model, newest last.
        self._compiled: OrderedDict = OrderedDict()
        self.compiles = 0                  # models compiled so far: callers count per-shape setup by it

    @classmethod
    def from_torch(cls, model: nn.Module, threads: int, precision: str = "f32", calibration=None,
                   ignored_scope: Optional[dict] = None, max_shapes: int = 8) -> "OpenVINORunner":
        """``model`` through ONNX to OpenVINO; quantized to INT8 on ``calibration`` frames if
        given, keeping ``ignored_scope`` (default: ``keep_in_float(model)``) in float."""
        runner = cls(to_openvino(model), threads, precision, max_shapes=max_shapes)
        if calibration is None:
            return runner
        return runner.quantized(calibration, keep_in_float(model) if ignored_scope is None else ignored_scope)

    def quantized(self, calibration: Sequence[np.ndarray], ignored_scope: dict) -> "OpenVINORunner":
        """A runner of this (fp32) model quantized to INT8 on ``calibration``, ``ignored_scope`` in float."""
        return OpenVINORunner(quantize(self.ov_model, calibration, ignored_scope), self.threads, self.precision,
                              quantization_facts(ignored_scope), self.max_shapes)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self._runnable is None:
            self._runnable = nhwc_output(self.ov_model)
        compiled = self._compiled_for(tuple(x.shape), tuple(x.shape), lambda: self._runnable)
        # (N, H, W, C) from the plugin, seen as (N, C, H, W) in channels_last: no copy.
        return torch.from_numpy(compiled(x.contiguous().numpy())[0]).permute(0, 3, 1, 2)

    def labels(self, x: torch.Tensor, size: Sequence[int]) -> Optional[torch.Tensor]:
        """The labels (N, *size) of the logits resized to ``size``, resize and argmax computed in
        the compiled graph (``labels_at_size``); uint8 up to 256 classes, else int64. None at bf16
        precision: there the plugin keeps the layers before the output in f32 up to the nearest
        convolution or interpolation, and an appended Interpolate would put the classifier and 24
        decoder layers of FPLNet into bf16, another model than the one its logits come from."""
        if self.precision != "f32":
            return None
        size = (int(size[0]), int(size[1]))
        compiled = self._compiled_for(("labels", tuple(x.shape), size), tuple(x.shape),
                                      lambda: labels_at_size(self.ov_model, size))
        labels = torch.from_numpy(compiled(x.contiguous().numpy())[0])
        return labels if labels.dtype == torch.uint8 else labels.long()

    def _compiled_for(self, key: tuple, shape: tuple, graph):
        """The model compiled for ``key`` (made by ``graph()`` at input ``shape`` on the first call)."""
        compiled = self._compiled.get(key)
        if compiled is None:
            make_room(self._compiled, self.max_shapes)
            compiled = self._compiled[key] = compile_for_shape(graph(), shape, self.threads, self.precision)
            self.compiles += 1
        else:
            self._compiled.move_to_end(key)
        return compiled

    def info(self) -> dict:
        """The OpenVINO version, the quantization points, and what the last compiled shape executes in."""
        result = {"openvino": require("openvino").__version__, "requested_precision": self.precision,
                  "fake_quantize_ops": fake_quantize_count(self.ov_model)}
        if self.quantization:
            result["quantization"] = self.quantization
        if self._compiled:
            result.update(executed_precision(next(reversed(self._compiled.values()))))
        return result


def call_counting_setup(runner: "OpenVINORunner", method, *args) -> tuple[object, float]:
    """``method(*args)`` (the runner's ``__call__`` or ``labels``) and its wall time if it compiled
    a model, else 0.0: the per-shape setup that ``InferenceRunner`` and ``ExportedModel`` keep
    apart from steady calls. OpenVINO's own cache of compiled models (logits and labels models in
    one LRU) decides what is a first call, not the callers' lists of shapes."""
    compiles, started = runner.compiles, time.perf_counter()
    out = method(*args)
    return out, (time.perf_counter() - started if runner.compiles > compiles else 0.0)


# --- IR files ---------------------------------------------------------------------------------------

def save_ir(ov_model, path: Path, metadata: dict) -> None:
    """``path`` (NAME.xml) and NAME.bin (float weights kept in f32, not compressed to f16; an NNCF
    INT8 model's quantized weights are int8), ``metadata`` in rt_info; each file
    replaces its old one only once completely written and synced (the pair: see the renames)."""
    ov = require("openvino")
    path = Path(path)
    model = ov_model.clone()
    model.set_rt_info(json.dumps(metadata), [METADATA_KEY])
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.stem}.") as staging:
        staged = Path(staging) / "model.xml"
        ov.save_model(model, str(staged), compress_to_fp16=False)
        # The .xml names the digest of its .bin (rt_info is in the .xml only, so saving again leaves
        # the .bin as it is): a pair mismatched by a crash between the renames below is refused.
        model.set_rt_info(_sha256(staged.with_suffix(".bin")), [BIN_DIGEST_KEY])
        ov.save_model(model, str(staged), compress_to_fp16=False)
        for written in (staged.with_suffix(".bin"), staged):   # on disk before either is renamed
            with open(written, "rb") as file:
                os.fsync(file.fileno())
        _replace_pair(staged, path)


def _replace_pair(staged: Path, path: Path) -> None:
    """Put the staged .xml / .bin pair at ``path``. Each file lands whole, but the pair takes two
    renames: the old pair is first moved aside into a hidden folder beside it, so that a failure
    between the renames puts it back, and a hard stop (power, SIGKILL) leaves it there, whole,
    rather than half-replaced. The .xml goes last and leaves first: at no moment does an .xml sit
    beside a .bin it was not saved with (``read_ir`` would refuse that pair by the digest anyway)."""
    pair = ((staged, path), (staged.with_suffix(".bin"), path.with_suffix(".bin")))
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=f".{path.stem}.old.") as aside:
        moved = []
        try:
            for _, target in pair:                          # the old .xml, then the old .bin
                if target.exists():
                    os.replace(target, Path(aside) / target.name)
                    moved.append(target)
            for source, target in reversed(pair):           # the new .bin, then the new .xml
                os.replace(source, target)
        except BaseException:
            for target in moved:
                os.replace(Path(aside) / target.name, target)
            raise


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def read_ir(path):
    """The ``openvino.Model`` of an IR. Its .bin is checked against the digest its .xml records
    before OpenVINO reads either (OpenVINO's own errors on a .bin of another size name neither the
    file nor what to do); an IR that carries fplnet metadata but no digest is read with a warning,
    since its weights cannot be checked. Every failure is a ValueError that names the file."""
    path = Path(path)
    weights = path.with_suffix(".bin")
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such OpenVINO IR file")
    if not weights.is_file():
        raise ValueError(f"{path}: its weights file {weights} is missing (an IR is NAME.xml with NAME.bin beside it); "
                         "copy both files together, or run `fplnet export` again")
    recorded = _xml_rt_info(path)
    if recorded.get(BIN_DIGEST_KEY) is not None:
        if recorded[BIN_DIGEST_KEY] != _sha256(weights):
            raise ValueError(f"{weights} is not the weights file {path} was saved with (another export's .bin, or "
                             "a damaged copy?); run `fplnet export` again")
    elif METADATA_KEY in recorded:
        warnings.warn(f"{path} records no digest of {weights.name}: its weights cannot be checked against it "
                      "(export it again with this fplnet to add one)", RuntimeWarning, stacklevel=2)
    try:
        return core().read_model(str(path))
    except RuntimeError as error:
        raise ValueError(f"{path} is not a readable OpenVINO IR: {' '.join(str(error).splitlines())}") from error


def _xml_rt_info(path: Path) -> dict:
    """The top-level ``<rt_info>`` entries of an IR's .xml, name -> value (read without OpenVINO,
    so the digest is checked before the weights are touched). A file that is not XML is refused
    here: OpenVINO would try each of its front ends on it, and the TensorFlow one logs its own
    parse errors to stderr before the error is raised."""
    from xml.etree import ElementTree
    try:
        root = ElementTree.parse(path).getroot()
    except ElementTree.ParseError as error:
        raise ValueError(f"{path} is not an OpenVINO IR: it is not valid XML ({error})") from None
    info = root.find("rt_info")
    return {} if info is None else {entry.tag: entry.get("value") for entry in info}


def read_ir_metadata(path) -> dict:
    """The JSON ``save_ir`` stored in an IR's rt_info, read from the .xml alone: neither OpenVINO
    nor the .bin is touched. Why: a caller that checks the metadata before it loads the model
    (``fplnet benchmark --exported``) would otherwise read and hash the weights twice, and an IR
    without a weights digest would warn twice; ``read_ir`` checks the weights when the model is
    loaded."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such OpenVINO IR file")
    value = _xml_rt_info(path).get(METADATA_KEY)
    if value is None:
        raise ValueError(f"{path} has no '{METADATA_KEY}' rt_info; was it written by `fplnet export`?")
    return json.loads(value)


def _metadata(model) -> Optional[dict]:
    """The JSON ``save_ir`` stored in a model's rt_info, or None."""
    return json.loads(model.get_rt_info([METADATA_KEY]).astype(str)) if model.has_rt_info([METADATA_KEY]) else None


def load_ir(path, threads: int, precision: str = "f32") -> OpenVINORunner:
    """An IR file as a callable float32 NCHW tensor -> logits tensor. An INT8 IR's quantization
    facts (method, layers kept in float, calibration set, accuracy delta: the metadata's "int8")
    travel with it, so ``info()`` reports them as it does for a model quantized in this process;
    the whole metadata is the runner's ``metadata`` (None if the file has none), so a caller that
    needs both does not parse the file twice."""
    model = read_ir(path)
    metadata = _metadata(model)
    return OpenVINORunner(model, threads, precision, quantization=(metadata or {}).get("int8"), metadata=metadata)
