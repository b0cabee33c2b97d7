"""Trial (issue 9, not adopted): frames per second of the shipped model under OpenVINO's
THROUGHPUT hint (several CPU streams, one frame in flight per stream, fed by an
``AsyncInferQueue``) against the LATENCY hint the project compiles with (one stream using both
cores, one call at a time, as ``OpenVINORunner`` and ``fplnet predict`` run it).

Why: a folder of frames or a video is a stream of independent frames, and OpenVINO's own
benchmark tool measures throughput this way. If two single-threaded streams finished more frames
per second than one stream on two threads (less synchronisation per layer, each frame's working
set in one core's cache), `fplnet predict` on folders and videos should keep two frames in flight.
The LATENCY model fed through the same async queue is the third column: what asynchrony alone
gives (the next frame's input set while the plugin still runs the last one).

    python docs/runs/openvino/trials_2026-12-03/throughput_streams.py \
        | grep '^{' > docs/runs/openvino/trials_2026-12-03/throughput_streams.jsonl

f32 and INT8 (NNCF, 60 CamVid training frames, the float islands ``quantize`` keeps, as the
``openvino+int8`` variant does with its default scope) at 512x1024 and 360x480; per model and
size, three rounds, each timing 40 frames per mode after warm-up, modes in turn. A benchmark: run
it on an idle machine.
"""
import json
import time

import numpy as np
import torch

from fplnet.calibration import calibration_set
from fplnet.fast import Variant, prepare_model
from fplnet.models import load_model
from fplnet.openvino_backend import compile_for_shape, keep_in_float, quantize, require, to_openvino

FRAMES = 40
ROUNDS = 3


def sync_fps(compiled, x) -> float:
    request = compiled.create_infer_request()
    for _ in range(3):
        request.infer({0: x})
    start = time.perf_counter()
    for _ in range(FRAMES):
        request.infer({0: x})
    return FRAMES / (time.perf_counter() - start)


def async_fps(compiled, x) -> tuple[float, int]:
    ov = require("openvino")
    requests = compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS")
    queue = ov.AsyncInferQueue(compiled, requests)
    for _ in range(2 * requests):
        queue.start_async({0: x})
    queue.wait_all()
    start = time.perf_counter()
    for _ in range(FRAMES):
        queue.start_async({0: x})
    queue.wait_all()
    return FRAMES / (time.perf_counter() - start), requests


def main():
    model, ckpt = load_model("camvid")
    prepared = prepare_model(model, Variant.parse("openvino"))
    graph = to_openvino(prepared)
    frames = calibration_set(ckpt, "../shared/data/camvid", 60).frames
    graphs = {"f32": graph, "int8": quantize(graph, frames, keep_in_float(prepared))}
    threads = torch.get_num_threads()
    for size in ((512, 1024), (360, 480)):
        x = np.random.default_rng(0).standard_normal((1, 3, *size)).astype(np.float32)
        for precision, ov_model in graphs.items():
            latency = compile_for_shape(ov_model, x.shape, threads)
            throughput = compile_for_shape(ov_model, x.shape, threads, config={"PERFORMANCE_HINT": "THROUGHPUT"})
            streams = throughput.get_property("NUM_STREAMS")
            for round_ in range(ROUNDS):
                sync = sync_fps(latency, x)
                tput, requests = async_fps(throughput, x)
                lat_async, _ = async_fps(latency, x)
                print(json.dumps({"size": f"{size[0]}x{size[1]}", "model": precision, "round": round_,
                                  "latency_sync_fps": round(sync, 2), "latency_async_fps": round(lat_async, 2),
                                  "throughput_async_fps": round(tput, 2), "throughput_streams": streams,
                                  "throughput_requests": requests,
                                  "throughput_over_sync": round(tput / sync, 3), "threads": threads,
                                  "frames_per_mode": FRAMES}), flush=True)


if __name__ == "__main__":
    main()
