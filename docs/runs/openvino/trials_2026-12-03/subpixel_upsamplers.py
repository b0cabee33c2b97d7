"""Trial (issue 9, not adopted): the decoder's 3x3 stride-2 transposed convolutions as a 2x2
convolution + pixel shuffle, in OpenVINO f32 and INT8, timed beside the graph ``to_openvino`` makes.

Why: in the INT8 profile the three transposed convolutions ran in f32 (NNCF and the CPU plugin do
not quantize them), 10.7 of 70 ms of layer time. As an ordinary convolution NNCF quantizes them.

The rewrite is exact. ConvTranspose2d(k=3, s=2, p=1, output_padding=1) gives, along each axis,
y[2m] = W[1] x[m] and y[2m+1] = W[2] x[m] + W[0] x[m+1]: every output phase reads the input
window (m, m+1), so a 2x2 convolution over the input padded by one on the right and bottom, with
4 x C_out channels (phase-major within each output channel, the order pixel_shuffle reads), then
pixel_shuffle(2) reproduces it. The classifier (2x2 stride 2) has the same treatment as
``fplnet.fast.pixel_shuffle_deconvs`` in the third graph.

    python docs/runs/openvino/trials_2026-12-03/subpixel_upsamplers.py \
        > docs/runs/openvino/trials_2026-12-03/subpixel_upsamplers.jsonl

Interleaved timing as in scripts/openvino_rewrite_timing.py: same process, same calibration frames
and float scope for every graph, rounds in rotated order. A benchmark: run it on an idle machine.
"""
import copy
import io
import json
import statistics
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from fplnet.calibration import calibration_set
from fplnet.fast import Variant, _set_submodule, pixel_shuffle_deconvs, prepare_model
from fplnet.graph_export import export_onnx_bytes
from fplnet.models import load_model
from fplnet.openvino_backend import (compile_for_shape, executed_precision, keep_in_float, narrow_pools_as_convs,
                                     nhwc_output, quantize, rank4_prelu_slopes, require, split_concat_convs)

# Output phase -> {tap of the 2-wide input window: index into the 3-wide transposed kernel}.
PHASE_TAPS = {0: {0: 1}, 1: {0: 2, 1: 0}}


class SubPixelUpsampler(nn.Module):
    def __init__(self, deconv: nn.ConvTranspose2d):
        super().__init__()
        cin, cout = deconv.in_channels, deconv.out_channels
        self.conv = nn.Conv2d(cin, cout * 4, 2, bias=True)
        weight = torch.zeros(cout, 2, 2, cin, 2, 2)          # (out, row phase, col phase, in, row tap, col tap)
        for a, rows in PHASE_TAPS.items():
            for b, cols in PHASE_TAPS.items():
                for u, ky in rows.items():
                    for v, kx in cols.items():
                        weight[:, a, b, :, u, v] = deconv.weight[:, :, ky, kx].t()
        with torch.no_grad():
            self.conv.weight.copy_(weight.reshape(cout * 4, cin, 2, 2))
            self.conv.bias.copy_(deconv.bias.repeat_interleave(4))

    def forward(self, x):
        return F.pixel_shuffle(self.conv(F.pad(x, (0, 1, 0, 1))), 2)


def subpixel_upsamplers(model):
    model = copy.deepcopy(model)
    for name, module in list(model.named_modules()):
        if type(module) is nn.ConvTranspose2d and module.kernel_size == (3, 3):
            _set_submodule(model, name, SubPixelUpsampler(module))
    return model


def convert(model):
    graph = rank4_prelu_slopes(require("openvino").convert_model(io.BytesIO(export_onnx_bytes(model))))
    split_concat_convs(graph)
    narrow_pools_as_convs(graph)
    return graph


def main():
    model, ckpt = load_model("camvid")
    base = prepare_model(model, Variant.parse("openvino"))
    sub = subpixel_upsamplers(base)
    x = torch.randn(1, 3, 72, 100)
    with torch.no_grad():
        print(json.dumps({"check": "torch max |logit diff| subpixel vs transposed", "value": float((base(x) - sub(x)).abs().max())}))
    graphs = {"to_openvino graph": convert(base), "+ subpixel upsamplers": convert(sub),
              "+ subpixel upsamplers + shuffled classifier": convert(pixel_shuffle_deconvs(sub))}
    frames = calibration_set(ckpt, "../shared/data/camvid", 60).frames
    scope, threads = keep_in_float(model), torch.get_num_threads()
    for precision in ("fp32", "int8"):
        runnable = {name: nhwc_output(quantize(g, frames, scope) if precision == "int8" else g) for name, g in graphs.items()}
        for size in ((512, 1024), (360, 480)):
            inp = np.random.default_rng(0).standard_normal((1, 3, *size)).astype(np.float32)
            compiled = {name: compile_for_shape(g, inp.shape, threads) for name, g in runnable.items()}
            outputs = {name: c(inp)[0] for name, c in compiled.items()}
            first = next(iter(outputs.values()))
            times = {name: [] for name in compiled}
            for _ in range(2):
                for c in compiled.values():
                    c(inp)
            for round_index in range(6):
                names = list(compiled)
                names = names[round_index % len(names):] + names[:round_index % len(names)]
                for name in names:
                    for _ in range(10):
                        start = time.perf_counter()
                        compiled[name](inp)
                        times[name].append((time.perf_counter() - start) * 1e3)
            for name, values in times.items():
                print(json.dumps({"size": f"{size[0]}x{size[1]}", "precision": precision, "graph": name,
                                  "median_ms": round(statistics.median(values), 2), "calls": len(values),
                                  "argmax_agreement_with_first": round(float((outputs[name].argmax(-1) == first.argmax(-1)).mean()), 5),
                                  "executed": executed_precision(compiled[name])["layers_by_runtime_precision"],
                                  "threads": threads}), flush=True)


if __name__ == "__main__":
    main()
