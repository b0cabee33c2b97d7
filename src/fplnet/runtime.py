"""Process set-up shared by the library and the commands: devices, precision, sizes, the
allocator, torch.compile and torchrun.

Nothing here changes the process on import. ``keep_freed_memory`` changes glibc's allocator
for the whole process, so it runs only when asked: the commands that gain from it call it once
at start-up, and a library caller opts in by calling it (or by the ``keep_memory`` switch of a
``fplnet.fast.Variant``).
"""
from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import re
import sys

import torch
import torch.distributed as dist

DEVICE_NAMES = "auto, cpu, cuda or cuda:N"


# The pip extra of pyproject.toml that brings each optional package.
OPTIONAL_PACKAGES = {"onnx": "deploy", "onnxruntime": "deploy", "av": "deploy", "openvino": "openvino",
                     "nncf": "openvino", "matplotlib": "plot", "gradio": "app"}


class MissingPackageError(ValueError):
    """An optional package is not installed (a ValueError, which the commands print as one line)."""


def require_package(module: str, needed_for: str):
    """Import an optional package, or raise a ``MissingPackageError`` saying what needs it and how
    to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        extra = OPTIONAL_PACKAGES.get(module.split(".")[0], "deploy")
        raise MissingPackageError(f"{needed_for} needs the {module!r} package: pip install 'fplnet[{extra}]' "
                                  "(make install includes it)") from None


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` (CUDA if visible, else CPU), ``cpu``, ``cuda`` or ``cuda:N``; a device that does
    not exist on this machine is a ValueError saying what does."""
    name = str(name).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    match = re.fullmatch(r"cuda(?::(\d+))?", name)
    if match is None:
        raise ValueError(f"{name!r} is not a device; use {DEVICE_NAMES}")
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count == 0:
        raise ValueError(f"{name!r} was asked for but no CUDA device is visible; use cpu or auto")
    index = int(match.group(1) or 0)
    if index >= count:
        raise ValueError(f"{name!r} does not exist: this machine has CUDA devices 0..{count - 1}")
    return torch.device("cuda", index) if match.group(1) else torch.device("cuda")


def autocast(device: torch.device, amp: str):
    """``amp`` is "none", "bf16" or "fp16"; returns a context manager."""
    if amp in (None, "none"):
        return contextlib.nullcontext()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[amp]
    return torch.autocast(device_type=device.type, dtype=dtype)


def bf16_channels_last_hazard(model: torch.nn.Module, device: torch.device, amp: str):
    """The first layer whose gradients a bf16 channels_last training step on this device cannot be
    trusted with, or None.

    On the CPU, torch 2.13.0's bf16 convolution backward in the channels_last layout returns wrong
    weight gradients, often NaN or inf and once a crash, for convolutions dilated along both axes
    (measured layer by layer against fp32 on the 2-core AMD EPYC, avx512_bf16: ESP modules' 3x3
    convolutions at dilation 2-16 and CGNet's dilated depthwise ones were off by 57-99 % or not
    finite; the same layers in bf16 with the contiguous layout, and in fp32 in either layout, agree
    within 0.3 %; docs/benchmarks.md, "bf16 and channels_last on the CPU"). It is what made
    ESPNet-C's ablation run reach a NaN loss at its second step. Which channel counts and dilations
    fail follows no rule we could see (some 3x3 dilated convolutions of FPLNet's unfactorized
    variant pass), so every convolution dilated along both axes counts: FPLNet's own modules,
    whose dilated convolutions are 3x1 and 1x3, dilated along one axis, all pass. fp32 is not
    affected; CUDA runs cuDNN's kernels, not these, and is left alone (not measured here)."""
    if device.type != "cpu" or amp != "bf16":
        return None
    for name, module in model.named_modules():
        if (isinstance(module, torch.nn.Conv2d) and min(module.dilation) > 1
                and min(module.kernel_size) > 1):
            return name
    return None


def compile_module(model: torch.nn.Module, mode=None, *, freeze: bool = False, cuda_graphs: bool = False,
                   keep_layout: bool = False, **kwargs) -> torch.nn.Module:
    """``torch.compile`` for training and inference alike, with the inductor switches the project
    uses named once: ``freeze`` (constant weights folded in, inference only), ``cuda_graphs``
    (inductor's own CUDA graphs, what ``mode='reduce-overhead'`` turns on) and ``keep_layout``
    (inductor's layout optimization off: it runs convolutions channels_last whatever the input's
    layout, which a model ``bf16_channels_last_hazard`` names must not meet; without it a compiled
    bf16 CPU step of ESPNet-C went NaN in its first epoch, with it its first loss was eager's).
    ``torch.compile`` takes a mode or options, not both, so with a switch on the mode is passed
    as its inductor options. Other keyword arguments (``dynamic``) go to ``torch.compile``."""
    options = {}
    if freeze:
        options["freezing"] = True
    if cuda_graphs:
        options["triton.cudagraphs"] = True
    if keep_layout:
        options["layout_optimization"] = False
    if not options:
        return torch.compile(model, **({"mode": mode} if mode else {}), **kwargs)
    if mode:
        from torch._inductor import list_mode_options
        options = {**list_mode_options(mode), **options}
    return torch.compile(model, options=options, **kwargs)


def make_room(cache, max_items: int) -> None:
    """Drops the least recently used entries of ``cache`` (an OrderedDict kept newest last) until
    one more fits within ``max_items``: the per-input-shape caches of the inference runners."""
    if max_items < 1:
        raise ValueError(f"a cache of per-shape compiled models needs room for at least one (got {max_items})")
    while len(cache) >= max_items:
        cache.popitem(last=False)


def parse_size(text) -> tuple[int, int]:
    """'360x480' or [360, 480] -> (360, 480): height first, as tensors are laid out. Both
    sides must be whole numbers of at least 1."""
    try:
        if isinstance(text, (list, tuple)):
            if len(text) != 2:
                raise ValueError
            height, width = (int(v) for v in text)
        else:
            height, width = (int(v) for v in str(text).lower().split("x"))
    except (TypeError, ValueError):
        raise ValueError(f"size {text!r} is not HEIGHTxWIDTH, e.g. 360x480") from None
    if height < 1 or width < 1:
        raise ValueError(f"size {text!r} must have positive sides, e.g. 360x480")
    return height, width


# --- the allocator -------------------------------------------------------------------------------

_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3   # glibc malloc.h


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of handing it back to the kernel.

    By default glibc serves every allocation above 32 MB (and, after trimming, many smaller ones)
    with a fresh ``mmap`` and unmaps it on ``free``; the next forward pass then touches new pages
    and takes a page fault for every 4 KB of every large activation. FPLNet's 512x1024 forward
    allocates about 130 MB of such activations: 32,000 faults per call, 40-60 ms on the 2-core
    VM of docs/benchmarks.md (a third of the eager forward). Raising the mmap threshold to 1 GB
    and the trim threshold to 2 GB keeps those pages mapped, so repeated calls reuse them.

    This is process-wide and not undone: the process keeps its peak memory. It is the same kind
    of change as the jemalloc/tcmalloc ``LD_PRELOAD`` that CPU inference guides recommend, but
    needs nothing installed. Returns False (and changes nothing) where libc is not glibc.

    Opt-in, never a side effect of building something: ``fplnet predict``, ``fplnet demo`` and
    ``fplnet train`` call it once at start-up; ``fplnet benchmark`` only for variants with the
    ``keep_memory`` switch; ``Segmenter`` and ``InferenceRunner`` only for such a variant. A
    program that embeds fplnet calls it itself if it wants it.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_THRESHOLD, 1 << 30)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


# --- denormal numbers ----------------------------------------------------------------------------

def flush_denormals() -> bool:
    """Treat subnormal floats (below 1.2e-38 in fp32 and bf16) as zero in this process's CPU maths.

    Training with weight decay leaves many weights in the subnormal range: the shipped CamVid
    FPLNet holds 29,141 of them, and its activations make more. Intel cores take a microcode
    assist for every arithmetic operation that meets one, AMD's Zen cores mostly do not: on the
    2-core Intel Xeon VM of docs/benchmarks.md (Emerald Rapids) the trained model's eager 512x1024
    forward took 2,789 ms, 342 ms once flush-to-zero was on, and 364 ms for the same network with
    random weights (scripts/subnormal_probe.py; docs/runs/cpu_2026-12-02_xeon/). Training is
    slowed too: 167 s per ablation epoch before, 117 s after.
    The values flushed are 38 orders of magnitude below anything the network's outputs depend on,
    which is why GPUs' fast paths and TensorFlow's CPU kernels flush them by default.

    The switch (the FTZ and DAZ bits of the x86 MXCSR register, through
    ``torch.set_flush_denormal``) belongs to each thread, and a new thread copies its creator's:
    call this before torch starts its intra-op thread pool (before the first large tensor
    operation), or the pool's worker threads keep the slow default. ``fplnet``'s commands call it
    first thing; a program that embeds fplnet calls it itself at start-up. Returns False (and
    changes nothing) on a CPU without the switch.
    """
    return bool(torch.set_flush_denormal(True))


def subnormals_flushed() -> bool:
    """Whether this thread's CPU arithmetic flushes subnormal floats to zero just now."""
    return bool((torch.tensor([1e-39]) * 2).item() == 0.0)


@torch.no_grad()
def zero_subnormals(module: torch.nn.Module) -> int:
    """Set every subnormal float among ``module``'s parameters and floating buffers to zero, in
    place; returns how many there were.

    ``flush_denormals`` covers this process's own arithmetic only. A model handed on, to a program
    that never calls it or as an exported graph run by a runtime that keeps IEEE subnormals (plain
    onnxruntime, OpenVINO without ``CPU_DENORMALS_OPTIMIZATION``, a consumer's own C++), would still
    carry the trained weights' subnormals into every multiplication. Zeroing them changes no output
    measurably: each is below 1.2e-38, against weights of order 0.01-1. It is half the cure: a
    trained network's activations turn subnormal at run time too, and only flushing covers them
    (scripts/subnormal_probe.py on a 2-core Xeon with AMX, eager 512x1024: 2086 ms kept, 990 ms
    zeroed, 259 ms flushed; random weights, whose activations stay normal, 290 ms unflushed).
    """
    zeroed = 0
    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.is_floating_point():
            subnormal = (tensor.abs() < torch.finfo(tensor.dtype).tiny) & (tensor != 0)
            zeroed += int(subnormal.sum())
            tensor.masked_fill_(subnormal, 0.0)
    return zeroed


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

    def close(self):
        if self.enabled and dist.is_initialized():
            dist.destroy_process_group()
