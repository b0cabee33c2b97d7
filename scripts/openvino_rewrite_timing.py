"""What ``split_concat_convs``, ``nhwc_output`` and ``narrow_pools_as_convs`` (fplnet.openvino_backend)
are worth: one FPLNet, converted without and with the split, then with an NHWC output as well, then
with the image pyramid's pools as convolutions too (the graph ``to_openvino`` makes), in fp32 and INT8
(the same calibration frames and float scope for each), timed side by side in one process with
the calls interleaved, at each size asked for.

    python scripts/openvino_rewrite_timing.py --checkpoint camvid --sizes 512x1024,360x480 \
        --calib-data ../shared/data/camvid > docs/runs/openvino/rewrite_timing.jsonl

One JSON line per (size, precision, graph): median and p90 ms of one batch-1 call over the timed
rounds. A benchmark, not a test: run it on an idle machine. The headline latencies are
`fplnet benchmark`'s, which runs the rewritten graph (the only one the project ships).
"""
from __future__ import annotations

import argparse
import io
import json
import statistics
import time

import numpy as np
import torch

from fplnet.calibration import calibration_set
from fplnet.fast import Variant, prepare_model
from fplnet.graph_export import export_onnx_bytes
from fplnet.models import load_model
from fplnet.openvino_backend import (compile_for_shape, executed_precision, keep_in_float, narrow_pools_as_convs,
                                     nhwc_output, quantize, rank4_prelu_slopes, require, split_concat_convs)
from fplnet.runtime import parse_size


def graphs(model) -> dict:
    """Name -> (converted graph, whether it runs with the NHWC output): without and with the split
    (both with rank-4 PReLU slopes), the split one with the NHWC output ``OpenVINORunner`` runs
    (``nhwc_output``), and that with the pools as convolutions as well, the graph ``to_openvino``
    makes. The NHWC output is added after quantization, as ``OpenVINORunner`` does."""
    onnx = export_onnx_bytes(prepare_model(model, Variant.parse("openvino")))
    plain = rank4_prelu_slopes(require("openvino").convert_model(io.BytesIO(onnx)))
    split = plain.clone()
    count = split_concat_convs(split)
    pools = split.clone()
    pooled = narrow_pools_as_convs(pools)
    return {"plain": (plain, False), f"split ({count} concatenations)": (split, False),
            "split + NHWC output": (split, True),
            f"split + NHWC output + pools as convolutions ({pooled})": (pools, True)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--checkpoint", default="camvid")
    parser.add_argument("--sizes", default="512x1024,360x480")
    parser.add_argument("--calib-data", required=True)
    parser.add_argument("--calib-size", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--calls", type=int, default=10, help="calls per graph per round")
    args = parser.parse_args()
    threads = torch.get_num_threads()
    model, ckpt = load_model(args.checkpoint)
    converted = graphs(model)
    frames = calibration_set(ckpt, args.calib_data, args.calib_size).frames
    scope = keep_in_float(model)
    fp32 = {name: nhwc_output(graph) if nhwc else graph for name, (graph, nhwc) in converted.items()}
    quantized = {id(graph): quantize(graph, frames, scope) for graph, _ in converted.values()}
    int8 = {name: nhwc_output(quantized[id(graph)]) if nhwc else quantized[id(graph)]
            for name, (graph, nhwc) in converted.items()}
    for size in (parse_size(s) for s in args.sizes.split(",")):
        x = np.random.default_rng(0).standard_normal((1, 3, *size)).astype(np.float32)
        for precision, models in (("fp32", fp32), ("int8", int8)):
            compiled = {name: compile_for_shape(graph, x.shape, threads) for name, graph in models.items()}
            outputs = {name: c(x)[0] for name, c in compiled.items()}
            outputs = {name: out.transpose(0, 3, 1, 2) if "NHWC" in name else out for name, out in outputs.items()}
            first = next(iter(outputs.values()))
            times = {name: [] for name in compiled}
            for _ in range(2):                       # warm-up
                for c in compiled.values():
                    c(x)
            for round_index in range(args.rounds):   # interleaved, order rotated each round
                names = list(compiled)
                names = names[round_index % len(names):] + names[:round_index % len(names)]
                for name in names:
                    for _ in range(args.calls):
                        start = time.perf_counter()
                        compiled[name](x)
                        times[name].append((time.perf_counter() - start) * 1e3)
            for name, values in times.items():
                values.sort()
                print(json.dumps({
                    "size": f"{size[0]}x{size[1]}", "precision": precision, "graph": name,
                    "median_ms": round(statistics.median(values), 2),
                    "p90_ms": round(values[int(0.9 * (len(values) - 1))], 2), "calls": len(values),
                    "argmax_agreement_with_first_graph": round(float((outputs[name].argmax(1) == first.argmax(1)).mean()), 5),
                    "executed": executed_precision(compiled[name])["layers_by_runtime_precision"],
                    "threads": threads}), flush=True)


if __name__ == "__main__":
    main()
