"""Where a training step of FPLNet spends its GPU time: the kernels, grouped by op and input shape.

On the H200 of 2026-11-29 one training step of the encoder at batch 8, 360x480, bf16 and
channels_last took 52 ms (`fplnet benchmark --mode train`), about 150 images/s for a network of
2.3 GMACs per image; the whole two-stage schedule would take hours instead of minutes. This
script is the first thing to run on the next device: it times the step in the four layouts
(fp32 / bf16 x NCHW / channels_last) and profiles the slowest and the fastest, so the fix (a
layout, a convolution backend, or a rewrite of one layer) is chosen from measurements.

    PYTHONPATH=src python3 scripts/gpu_train_profile.py --model fplnet_encoder --out profile.txt
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time

import torch
from torch import nn

from fplnet.models import create_model

VARIANTS = {"fp32_nchw": (None, False), "fp32_cl": (None, True), "bf16_nchw": (torch.bfloat16, False),
            "bf16_cl": (torch.bfloat16, True)}


def make_step(model_name: str, dtype, channels_last: bool, batch: int, size: tuple[int, int], device):
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=11).to(device).train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss(ignore_index=255)
    x = torch.randn(batch, 3, *size, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 11, (batch, *size), device=device)

    def step():
        with torch.autocast("cuda", dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = model(x)
        loss = criterion(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def time_step(step, iters: int) -> float:
    for _ in range(5):
        step()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def profile(step, rows: int) -> str:
    from torch.profiler import ProfilerActivity, profile as torch_profile
    with torch_profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA], record_shapes=True) as prof:
        for _ in range(3):
            step()
        torch.cuda.synchronize()
    by_op = prof.key_averages(group_by_input_shape=True).table(sort_by="cuda_time_total", row_limit=rows)
    return by_op


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fplnet_encoder")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--size", default="360x480")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--out", help="also write the report here")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("gpu_train_profile: needs a CUDA device", file=sys.stderr)
        return 2
    size = tuple(int(v) for v in args.size.lower().split("x"))
    torch.backends.cudnn.benchmark = True
    device = torch.device("cuda")
    lines = [f"{args.model}, batch {args.batch_size}, {args.size}, {torch.cuda.get_device_name()}, "
             f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}"]
    steps, timings = {}, {}
    for name, (dtype, cl) in VARIANTS.items():
        steps[name] = make_step(args.model, dtype, cl, args.batch_size, size, device)
        timings[name] = time_step(steps[name], args.iters)
        lines.append(f"{name}: {timings[name]:.1f} ms/step, {args.batch_size / timings[name] * 1000:.0f} img/s")
        print(lines[-1], flush=True)
    for name in (max(timings, key=timings.get), min(timings, key=timings.get)):
        lines += [f"\n=== profile of {name} (3 steps) ===", profile(steps[name], args.rows)]
        print(lines[-2], lines[-1], sep="\n", flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
