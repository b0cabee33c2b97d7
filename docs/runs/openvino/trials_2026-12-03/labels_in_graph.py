"""Trial (issue 9, not adopted): the argmax over classes inside the OpenVINO graph (TopK k=1 on
the channel axis, uint8 labels out) against the logits out and torch's argmax on them, as
``Segmenter.predict`` does when the network runs at the image's size.

Why: the 11 x 512 x 1024 float logits are 23 MB written by the plugin and read again by the
argmax; labels are 0.5 MB. The labels agree with torch's argmax on every pixel here.

    python docs/runs/openvino/trials_2026-12-03/labels_in_graph.py \
        > docs/runs/openvino/trials_2026-12-03/labels_in_graph.jsonl

Calls alternate between the two compiled models, 40 each after 5 warm-up rounds. A benchmark:
run it on an idle machine.
"""
import json
import statistics
import time

import numpy as np
import torch

from fplnet.fast import Variant, prepare_model
from fplnet.models import load_model
from fplnet.openvino_backend import compile_for_shape, nhwc_output, require, to_openvino


def labels_model(graph):
    """``graph`` (logits out, NCHW) with the argmax over channels appended: uint8 (N, H, W)."""
    ov, ops = require("openvino"), require("openvino.opset13")
    graph = graph.clone()
    logits = graph.get_results()[0].input_value(0)
    top = ops.topk(logits, ops.constant(np.int64(1)), axis=1, mode="max", sort="none", index_element_type="i32")
    labels = ops.convert(ops.squeeze(top.output(1), ops.constant(np.int64(1))), "u8")
    return ov.Model([labels], graph.get_parameters(), "labels")


def main():
    model, _ = load_model("camvid")
    graph = to_openvino(prepare_model(model, Variant.parse("openvino")))
    with_logits, with_labels = nhwc_output(graph), labels_model(graph)
    threads = torch.get_num_threads()
    for size in ((512, 1024), (360, 480)):
        x = np.random.default_rng(0).standard_normal((1, 3, *size)).astype(np.float32)
        logits_c = compile_for_shape(with_logits, x.shape, threads)
        labels_c = compile_for_shape(with_labels, x.shape, threads)
        times = {"logits out": [], "torch argmax of them": [], "logits out + torch argmax": [], "labels out": []}
        agreement = None
        for call in range(45):
            start = time.perf_counter()
            logits = torch.from_numpy(logits_c(x)[0]).permute(0, 3, 1, 2)
            middle = time.perf_counter()
            torch_labels = logits.argmax(1).to(torch.uint8).numpy()
            end = time.perf_counter()
            graph_labels = labels_c(x)[0]
            done = time.perf_counter()
            agreement = float((torch_labels == graph_labels).mean())
            if call >= 5:
                for name, ms in zip(times, (middle - start, end - middle, end - start, done - end)):
                    times[name].append(ms * 1e3)
        for name, values in times.items():
            print(json.dumps({"size": f"{size[0]}x{size[1]}", "what": name, "median_ms": round(statistics.median(values), 2),
                              "calls": len(values), "label_agreement": agreement, "threads": threads}), flush=True)


if __name__ == "__main__":
    main()
