"""Where a training step of FPLNet spends its GPU time: the kernels, grouped by op and input shape.

On the H200 of 2026-11-29 one training step of the encoder at batch 8, 360x480, bf16 and
channels_last took 52 ms (`fplnet benchmark --mode train`), about 150 images/s for a network of
2.3 GMACs per image; the whole two-stage schedule would take hours instead of minutes. On the
CPU, one such step makes about 14,000 ATen calls (18,000 for the full model; 1,700 of them are
autocast's casts), so an eager step on a GPU may be bound by the host launching kernels rather
than by the kernels. This script is the first thing to run on the next device: it times the step
eager in the four layouts (fp32 / bf16 x NCHW / channels_last), compiled (inductor, and inductor
with CUDA graphs) at batch 8 and 32, and profiles the kernels of the slowest and the fastest, so
the fix (compile, CUDA graphs, a larger batch, a layout, a convolution backend) is chosen from
measurements.

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

# name: (autocast dtype, channels_last, torch.compile mode or None, batch multiplier)
VARIANTS = {"fp32_nchw": (None, False, None, 1), "fp32_cl": (None, True, None, 1),
            "bf16_nchw": (torch.bfloat16, False, None, 1), "bf16_cl": (torch.bfloat16, True, None, 1),
            "bf16_cl_compile": (torch.bfloat16, True, "default", 1),
            "bf16_cl_cudagraphs": (torch.bfloat16, True, "reduce-overhead", 1),
            "bf16_cl_compile_x4": (torch.bfloat16, True, "default", 4),
            "bf16_cl_cudagraphs_x4": (torch.bfloat16, True, "reduce-overhead", 4)}


def make_step(model_name: str, dtype, channels_last: bool, compile_mode, batch: int, size: tuple[int, int], device):
    torch.manual_seed(0)
    model = create_model(model_name, num_classes=11).to(device).train()
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=fmt)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = nn.CrossEntropyLoss(ignore_index=255)
    forward = torch.compile(model, mode=compile_mode) if compile_mode else model
    x = torch.randn(batch, 3, *size, device=device).contiguous(memory_format=fmt)
    y = torch.randint(0, 11, (batch, *size), device=device)

    def step():
        with torch.autocast(device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            logits = forward(x)
        loss = criterion(logits.float(), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
    return step


def synchronize():
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def time_step(step, iters: int) -> float:
    for _ in range(5):
        step()
    synchronize()
    times = []
    for _ in range(iters):
        start = time.perf_counter()
        step()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def profile(step, rows: int) -> str:
    from torch.profiler import ProfilerActivity, profile as torch_profile
    cuda = torch.cuda.is_available()
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    with torch_profile(activities=activities, record_shapes=True) as prof:
        for _ in range(3):
            step()
        synchronize()
    by_op = prof.key_averages(group_by_input_shape=True).table(
        sort_by="cuda_time_total" if cuda else "cpu_time_total", row_limit=rows)
    return by_op


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="fplnet_encoder")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--size", default="360x480")
    parser.add_argument("--iters", type=int, default=20)
    parser.add_argument("--rows", type=int, default=25)
    parser.add_argument("--out", help="also write the report here")
    parser.add_argument("--device", default="cuda", help="cpu only to try the script out")
    args = parser.parse_args(argv)
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("gpu_train_profile: no CUDA device here; --device cpu tries the script out", file=sys.stderr)
        return 2
    size = tuple(int(v) for v in args.size.lower().split("x"))
    torch.backends.cudnn.benchmark = True
    device = torch.device(args.device)
    name = torch.cuda.get_device_name() if device.type == "cuda" else "cpu"
    lines = [f"{args.model}, batch {args.batch_size}, {args.size}, {name}, "
             f"torch {torch.__version__}, cuDNN {torch.backends.cudnn.version()}"]
    steps, timings = {}, {}
    per_image = {}
    for name, (dtype, cl, mode, multiple) in VARIANTS.items():
        batch = args.batch_size * multiple
        started = time.perf_counter()
        steps[name] = make_step(args.model, dtype, cl, mode, batch, size, device)
        steps[name]()   # compilation, graph capture and cuDNN's search happen here
        first = time.perf_counter() - started
        timings[name] = time_step(steps[name], args.iters)
        per_image[name] = timings[name] / batch
        lines.append(f"{name}: batch {batch}, {timings[name]:.1f} ms/step, {batch / timings[name] * 1000:.0f} img/s "
                     f"(first step {first:.1f} s)")
        print(lines[-1], flush=True)
    for name in (max(per_image, key=per_image.get), min(per_image, key=per_image.get)):
        lines += [f"\n=== profile of {name} (3 steps) ===", profile(steps[name], args.rows)]
        print(lines[-2], lines[-1], sep="\n", flush=True)
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
