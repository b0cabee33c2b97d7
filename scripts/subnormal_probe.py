"""How much subnormal floats cost this CPU: the shipped CamVid FPLNet's eager forward with and
without flush-to-zero, with its subnormal weights zeroed instead (what ``load_model`` does), and
the same network with random weights (which hold none).

    .venv/bin/python scripts/subnormal_probe.py --size 512x1024 --iters 5 > OUT.txt

Each case runs in a child process of its own, because the switch (``fplnet.runtime.
flush_denormals``) is per thread and must be set before torch's thread pool starts: a parent
that had set it would leak it into every child's timing. Nothing else may run meanwhile.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time

CASES = {"trained, subnormals kept": ("camvid", False),
         "trained, flushed to zero": ("camvid", True),
         "trained, subnormal weights zeroed (load_model), not flushed": ("camvid-zeroed", False),
         "random weights, subnormals kept": ("random", False)}


def child(weights: str, flush: bool, size: str, iters: int) -> None:
    import torch
    from fplnet.runtime import flush_denormals, parse_size, zero_subnormals
    if flush:
        flush_denormals()
    from fplnet.checkpoint import load_checkpoint
    from fplnet.models import build_model, create_model
    torch.manual_seed(0)
    # build_model, not load_model: load_model zeroes the subnormal weights this probe is about.
    if weights == "random":
        model = create_model("fplnet", num_classes=11)
    else:
        model = build_model(load_checkpoint("camvid"))
        if weights == "camvid-zeroed":
            zero_subnormals(model)
    model.eval()
    x = torch.randn(1, 3, *parse_size(size))
    times = []
    with torch.inference_mode():
        model(x)
        for _ in range(iters):
            start = time.perf_counter()
            model(x)
            times.append(time.perf_counter() - start)
    times.sort()
    print(f"{1000 * times[len(times) // 2]:.1f}")


def count_subnormals() -> tuple[int, int]:
    from fplnet.checkpoint import load_checkpoint
    from fplnet.models import build_model
    from fplnet.runtime import zero_subnormals
    model = build_model(load_checkpoint("camvid"))
    tensors = list(model.parameters()) + [b for b in model.buffers() if b.is_floating_point()]
    return zero_subnormals(model), sum(t.numel() for t in tensors)   # zeroing counts them


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="512x1024")
    parser.add_argument("--iters", type=int, default=5)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(args.child[0], args.child[1] == "flush", args.size, args.iters)
    import torch
    from fplnet.provenance import hardware
    subnormal, total = count_subnormals()
    print(f"# {hardware(torch.device('cpu'))}; {time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())}")
    print(f"# shipped CamVid FPLNet: {subnormal:,} of {total:,} stored floats are subnormal")
    print(f"# eager forward, batch 1 x 3 x {args.size}, {torch.get_num_threads()} threads, "
          f"median of {args.iters} after one warm-up, each case in its own process")
    print("| case | median ms |\n| --- | ---: |")
    for label, (weights, flush) in CASES.items():
        out = subprocess.run([sys.executable, __file__, "--size", args.size, "--iters", str(args.iters),
                              "--child", weights, "flush" if flush else "keep"],
                             capture_output=True, text=True, check=True)
        print(f"| {label} | {out.stdout.split()[-1]} |", flush=True)


if __name__ == "__main__":
    main()
