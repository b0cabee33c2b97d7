"""GPU inference speed of FPLNet and the baselines, one process, alternated (the GPU figures of
docs/benchmarks.md). Run on a CUDA machine from the repo root:

    PYTHONPATH=src python scripts/gpu_speed.py --json gpu_speed.json

Method: batch 1 at 512x1024 (the paper's Cityscapes input), torch.inference_mode, cudnn.benchmark,
10 warm-up calls per configuration, then rounds in which every (model, mode) is timed for
20 calls in turn; each call is timed with CUDA events (synchronised), the median and p90 over
all rounds are reported. Modes: fp32 NCHW eager, fp16 (weights and input in half) eager and
fp16 channels_last eager. CUDA-graph replay is timed by `fplnet benchmark --device cuda
--variants ...cuda_graphs` (fplnet.fast), not here.
"""
from __future__ import annotations

import argparse
import json
import statistics

import torch

from fplnet.complexity import count_params
from fplnet.engine.latency import percentile
from fplnet.models import create_model, list_models
from fplnet.runtime import parse_size

MODES = ("fp32", "fp16", "fp16_cl")


def prepare(name: str, mode: str, size, num_classes: int):
    model = create_model(name, num_classes=num_classes).cuda().eval()
    x = torch.randn(1, 3, *size, device="cuda")
    if mode != "fp32":
        model, x = model.half(), x.half()
    if mode == "fp16_cl":
        model = model.to(memory_format=torch.channels_last)
        x = x.contiguous(memory_format=torch.channels_last)
    call = lambda: model(x)  # noqa: E731
    with torch.inference_mode():
        for _ in range(10):
            call()
    return call


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--models", default="fplnet,fplnet_encoder,espnet,espnet_c,enet,erfnet,cgnet")
    parser.add_argument("--size", default="512x1024")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--num-classes", type=int, default=19)
    parser.add_argument("--json")
    args = parser.parse_args()
    size = parse_size(args.size)
    torch.backends.cudnn.benchmark = True
    names = [n for n in args.models.split(",") if n in list_models()]
    calls, failed = {}, {}
    for n in names:
        for m in MODES:
            try:
                calls[(n, m)] = prepare(n, m, size, args.num_classes)
            except Exception as err:  # e.g. out of memory, or an op without an fp16 kernel
                failed[f"{n}/{m}"] = f"{type(err).__name__}: {err}"[:300]
                print(f"skipped {n} {m}: {failed[f'{n}/{m}']}")
    times = {key: [] for key in calls}
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    with torch.inference_mode():
        for r in range(args.rounds):
            keys = list(calls)
            keys = keys[r % len(keys):] + keys[:r % len(keys)]  # rotate the order every round
            for key in keys:
                for _ in range(args.iters):
                    torch.cuda.synchronize()
                    start.record()
                    calls[key]()
                    end.record()
                    torch.cuda.synchronize()
                    times[key].append(start.elapsed_time(end))
    rows = []
    for (name, mode), ms in times.items():
        median = statistics.median(ms)
        rows.append({"model": name, "mode": mode, "params": count_params(create_model(name, num_classes=args.num_classes)),
                     "median_ms": round(median, 3), "p90_ms": round(percentile(ms, 0.9), 3),
                     "fps": round(1000 / median, 1)})
    info = {"gpu": torch.cuda.get_device_name(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "size": list(size), "batch": 1, "failed": failed, "rounds": args.rounds, "iters": args.iters, "rows": rows}
    print(f"{info['gpu']}  torch {info['torch']}  CUDA {info['cuda']}  input 1x3x{size[0]}x{size[1]}")
    print(f"{'model':16s} {'mode':14s} {'params':>9s} {'median ms':>10s} {'p90 ms':>8s} {'FPS':>8s}")
    for r in rows:
        print(f"{r['model']:16s} {r['mode']:14s} {r['params']:>9,d} {r['median_ms']:>10.2f} {r['p90_ms']:>8.2f} {r['fps']:>8.1f}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(info, fh, indent=2)


if __name__ == "__main__":
    main()
