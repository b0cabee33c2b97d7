"""Which registered models a bf16 CPU training step in the channels_last layout gets wrong: for
every dilated convolution of each model, at the shapes a 360x480 CamVid crop gives it, the
weight gradient under bf16 autocast (channels_last, then contiguous) against fp32 contiguous.

    python scripts/bf16_grad_audit.py > docs/runs/cpu_2026-11-30/bf16_grad_audit.txt
    python scripts/bf16_grad_audit.py espnet_c fplnet

One line per model: the dilated convolution shapes, how many are off by more than 2 % (or not
finite) in each layout, the worst error, the layer ``bf16_channels_last_hazard`` names, and
whether the layout the trainer then picks is exact. The choice it checks is
``fplnet.runtime.bf16_channels_last_hazard``; the test is ``tests/test_train.py``.
"""
from __future__ import annotations

import argparse
import platform

import torch

from fplnet.diagnostics import bf16_weight_grad_error, dilated_conv_shapes
from fplnet.models import create_model, list_models
from fplnet.runtime import bf16_channels_last_hazard

BOUND = 0.02


def audit(name: str) -> str:
    model = create_model(name, num_classes=11)
    shapes = sorted(dilated_conv_shapes(model))
    errors = {layout: [bf16_weight_grad_error(shape, channels_last=layout) for shape in shapes]
              for layout in (True, False)}
    hazard = bf16_channels_last_hazard(model, torch.device("cpu"), "bf16")
    chosen = errors[hazard is None]
    off = {layout: sum(not error < BOUND for error in values) for layout, values in errors.items()}
    worst = {layout: max(values, default=0.0) for layout, values in errors.items()}
    return (f"{name}: {len(shapes)} dilated conv shapes; off in channels_last {off[True]} (worst {worst[True]:.3g}), "
            f"off in contiguous {off[False]} (worst {worst[False]:.3g}); hazard {hazard or '-'}; trainer's layout "
            f"{'contiguous' if hazard else 'channels_last'}: {'exact' if all(e < BOUND for e in chosen) else 'WRONG'}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("models", nargs="*", help="registered names (default: all)")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {platform.processor() or platform.machine()}, "
          f"{torch.get_num_threads()} threads; bound {BOUND:.0%} relative L2 against fp32 contiguous", flush=True)
    for name in args.models or list_models():
        print(audit(name), flush=True)


if __name__ == "__main__":
    main()
