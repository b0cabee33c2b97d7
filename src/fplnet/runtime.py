"""Device, precision and distributed set-up shared by the engine commands."""
from __future__ import annotations

import contextlib
import os

import torch
import torch.distributed as dist


def resolve_device(name: str = "auto") -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for but no CUDA device is visible; use --device cpu")
    return torch.device(name)


def autocast(device: torch.device, amp: str):
    """``amp`` is "none", "bf16" or "fp16"; returns a context manager."""
    if amp in (None, "none"):
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    return torch.autocast(device_type=device.type, dtype=dtype)


def parse_size(text) -> tuple[int, int]:
    """'360x480' or [360, 480] -> (360, 480): height first, as tensors are laid out."""
    if isinstance(text, (list, tuple)):
        return int(text[0]), int(text[1])
    try:
        h, w = str(text).lower().split("x")
        return int(h), int(w)
    except ValueError:
        raise ValueError(f"size {text!r} is not HEIGHTxWIDTH, e.g. 360x480") from None


class Distributed:
    """torchrun environment: rank, world size, local rank; a no-op outside torchrun."""

    def __init__(self, device_name: str = "auto"):
        self.world_size = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = self.world_size > 1
        device = resolve_device(device_name)
        if device.type == "cuda" and self.enabled:
            torch.cuda.set_device(self.local_rank)
            device = torch.device("cuda", self.local_rank)
        self.device = device
        if self.enabled and not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def barrier(self):
        if self.enabled:
            dist.barrier()

    def close(self):
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()
