"""Where a result came from: the git commit of the code that produced it."""
from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import torch


def git_commit() -> str:
    """Short hash of the checkout this package runs from, or "" outside a git checkout."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent, timeout=5).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def hardware(device: torch.device) -> str:
    """One line naming what a run ran on: the GPU, or the CPU model, its core count and the widest
    vector instructions torch uses on it. The ISA is there because the model name alone can hide a
    2x difference: two VMs both called "AMD EPYC" trained the ablation recipe at 61 and 170 s per
    epoch, one with AVX-512 (and bf16 steps), the other with AVX2 only (fp32 steps)."""
    if device.type == "cuda":
        return f"{torch.cuda.get_device_name(device)} (torch {torch.__version__})"
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as fh:
            model = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), model)
    except OSError:
        pass
    return f"{model}, {len(os.sched_getaffinity(0))} cores, {torch.backends.cpu.get_cpu_capability()} (torch {torch.__version__})"
