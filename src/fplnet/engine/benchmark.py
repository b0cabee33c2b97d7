"""`fplnet benchmark`: parameters, MACs and speed of several models side by side.

Method (printed with every table):

* every model (and every variant of it, ``--variants``) is built once in one process and run on
  the same random normalized input, already on the device; in inference, parameters and MACs are
  counted on the model each variant runs (BN folding removes parameters, shuffle_deconv adds
  some; for onnxruntime and OpenVINO, the BN-folded model their graph is exported from);
* ``--warmup`` rounds, then ``--iters`` timed rounds; a round calls every entry once, in an
  order rotated by one place each round, so that a slow spell of a shared machine lands on all
  entries alike and the *ratios* between entries survive it; entries that compute on different
  thread pools (torch, onnxruntime, OpenVINO) get rounds of their own, one pool after another
  (``timing_groups``);
* inference runs under ``torch.inference_mode``; on CUDA ``torch.backends.cudnn.benchmark`` is
  on and ``torch.cuda.synchronize()`` brackets every timed call;
* latency is the wall time of one call (one batch), median and 90th percentile over the timed
  rounds; FPS = batch size / median latency. The first call of each entry is reported
  separately (``first_call_s``): it includes torch.compile, tracing, CUDA graph capture.

``--mode train`` times one training step instead: forward, cross-entropy on random targets,
backward and an SGD step (momentum 0.9, weight decay 5e-4, as in the paper).

``--exported FILE ...`` times files ``fplnet export`` wrote (.onnx, OpenVINO .xml, fp32 or INT8) as
they are, beside the ``--variants`` of the ``--checkpoint`` they were exported from: the speed of
exactly what is deployed (an INT8 IR with the calibration it was exported with, where the
``openvino+int8`` variant quantizes the checkpoint again here). Their parameters and MACs are not
counted (the file is not a PyTorch model); with ``--agreement-images`` they are checked against the
checkpoint's eager fp32 like the variants.

``--checkpoint`` times a trained model instead of freshly built ``--models``, and with
``--agreement-images`` every variant is also checked against plain eager fp32: the share of
pixels whose argmax class is the same, per image, on those images resized to ``--size`` (the
shape that is timed, so nothing is compiled twice). A random network would agree trivially
(every pixel gets the same class), hence the trained checkpoint. ``--json`` records every figure
the tables in docs/benchmarks.md quote, the agreement included.

``openvino`` and ``openvino+int8`` are variants like the others: the exported graph in OpenVINO
at f32 precision set explicitly, and the same quantized to INT8 by NNCF on ``--calib-size``
frames of the checkpoint's training split (or ``--calib-data``; with ``--models`` the networks
are untrained, and without ``--calib-data`` they calibrate on the timed random input: a speed
figure only). Every result records its backend and, for OpenVINO, the precision each compiled
layer executed in (``backend``).

With ``--checkpoint`` the default ``--size`` is the checkpoint's ``eval_size`` (its inference
spec, ``fplnet.spec``) when it records one, so the timed shape is the one the model runs at.

``--plot`` and ``--camvid-plot`` draw mIoU against parameters (``fplnet.engine.figures``);
``--plot-only`` draws them and times nothing.
"""
from __future__ import annotations

import copy
import os
import platform
import statistics
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable, Optional

import torch
import torch.nn.functional as F

from ..calibration import CalibrationSet, calibration_set
from ..complexity import count_macs, count_params
from ..exported import ExportedModel
from ..fast import InferenceRunner, Variant, resolve_variant
from ..io import atomic_write_json, atomic_write_text
from ..models import create_model, load_model
from ..openvino_backend import precision_label
from ..runtime import bf16_channels_last_hazard, compile_module, keep_freed_memory, resolve_device, subnormals_flushed
from .arguments import (add_calibration_arguments, checkpoint_name_or_file, device_name, existing_path, exported_file,
                        image_size, measured_point, model_names, non_negative_int, positive_int, variant_specs,
                        writable_file)
from .figures import draw_camvid, draw_cityscapes
from .latency import summarize_ms

DEFAULT_MODELS = "fplnet,espnet,enet,erfnet,cgnet"
DEFAULT_NUM_CLASSES = 19        # Cityscapes, the paper's Table IV setting
DEFAULT_AGREEMENT_COUNT = 6


def add_arguments(parser):
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--models", type=model_names, default=None,
                      help=f"comma-separated registry names (default {DEFAULT_MODELS})")
    what.add_argument("--checkpoint", type=checkpoint_name_or_file, default=None,
                      help="time this trained model (a checkpoint file or a shipped name such as camvid) "
                           "instead of freshly built --models")
    parser.add_argument("--exported", type=exported_file, nargs="+", default=None, metavar="FILE",
                        help="with --checkpoint: files `fplnet export` wrote from it (.onnx, OpenVINO .xml, fp32 or "
                             "INT8), timed as they are beside its --variants (CPU, inference)")
    parser.add_argument("--variants", type=variant_specs, default=None,
                        help="comma-separated variants timed side by side for every model, each a '+'-joined set of "
                             "switches: eager, fold_bn, shuffle_deconv, channels_last, bf16, fp16, compile, "
                             "cuda_graphs, torchscript, onnxruntime, openvino, int8 (with openvino), keep_memory, "
                             "freeze (with compile), or 'fast' "
                             "(what predict runs on this device), e.g. eager,channels_last,channels_last+bf16. "
                             "keep_memory is process-wide: when one variant has it (fast does on the CPU), all "
                             "are timed with it and named so. Replaces the single-variant flags below")
    parser.add_argument("--size", type=image_size, default=None,
                        help="input HEIGHTxWIDTH (default: the --checkpoint's eval size if it records one, else 512x1024)")
    add_calibration_arguments(parser, "INT8 variants", "the training split the --checkpoint records, if reachable")
    parser.add_argument("--batch-size", type=positive_int, default=1)
    # --num-classes and --agreement-count default to None so that check_arguments can refuse them
    # where they would do nothing; run() fills in the defaults.
    parser.add_argument("--num-classes", type=positive_int, default=None,
                        help=f"classifier width of --models (default {DEFAULT_NUM_CLASSES}, Cityscapes)")
    parser.add_argument("--device", type=device_name, default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    parser.add_argument("--mode", choices=("inference", "train"), default="inference")
    parser.add_argument("--backend", choices=("torch", "onnxruntime", "torchscript"), default="torch")
    parser.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32", help="autocast precision")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--fold-bn", action="store_true", help="fold BatchNorm into the preceding convolution")
    parser.add_argument("--cuda-graphs", action="store_true", help="capture the forward in a CUDA graph and replay it")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (time reported apart)")
    parser.add_argument("--threads", type=positive_int, default=None, help="CPU threads (default: torch's default)")
    parser.add_argument("--warmup", type=non_negative_int, default=5, help="untimed rounds first (default 5)")
    parser.add_argument("--iters", type=positive_int, default=20, help="timed rounds (default 20)")
    parser.add_argument("--agreement-images", type=existing_path, nargs="+", default=None, metavar="PATH",
                        help="with --checkpoint: image files or folders on which every variant's argmax is compared "
                             "with eager fp32 (images resized to --size)")
    parser.add_argument("--agreement-count", type=positive_int, default=None,
                        help=f"use the first N images (in name order) of --agreement-images "
                             f"(default {DEFAULT_AGREEMENT_COUNT})")
    parser.add_argument("--json", type=writable_file, default=None, help="write the results as JSON")
    parser.add_argument("--markdown", type=writable_file, default=None, help="write the table and method as Markdown")
    parser.add_argument("--plot", type=writable_file, default=None,
                        help="PNG of the paper's Fig. 5: Cityscapes test mIoU vs parameters from its Table IV")
    parser.add_argument("--camvid-plot", type=writable_file, default=None,
                        help="PNG of published CamVid test mIoU vs parameters of the baselines, with our CamVid points")
    parser.add_argument("--measured", type=measured_point, action="append", default=[],
                        metavar="NAME@DATASET:SPLIT=MIOU",
                        help="a point of our own for the plot of its data set (cityscapes: --plot, camvid: "
                             "--camvid-plot): a registry name or checkpoint file, the data set and split it was "
                             "measured on and its mIoU in %%, e.g. fplnet@camvid:val=62.14; repeatable")
    parser.add_argument("--plot-only", action="store_true", help="draw the plots and time nothing")


# --- what is timed --------------------------------------------------------------------------------

@dataclass
class Entry:
    """One timed thing: a model run one way (one variant)."""
    model_name: str
    variant: str
    params: Optional[int]                       # None for an exported file (not a PyTorch model)
    macs: Optional[int]                         # per image at --size; None likewise
    call: Callable[[], object]
    runner: Optional[object] = None             # inference entries (InferenceRunner, ExportedModel): agreement check
    setup_s: float = 0.0                        # building the runner (export, session, ...)
    first_call_s: Optional[float] = None        # first call: compile / trace / capture included
    times_ms: list = field(default_factory=list)
    agreement: list = field(default_factory=list)   # per agreement image: share of pixels as eager fp32

    def result(self, batch_size: int, reference: Optional["Entry"]) -> dict:
        stats = summarize_ms(self.times_ms)
        result = {
            "model": self.model_name, "variant": self.variant, "params": self.params,
            "gmacs": None if self.macs is None else round(self.macs / 1e9, 3),
            "latency_median_ms": round(stats["median"], 3),
            "latency_p90_ms": round(stats["p90"], 3), "latency_min_ms": round(stats["min"], 3),
            "fps": round(1000 * batch_size / stats["median"], 2),
            "speedup_vs_first": (round(statistics.median(reference.times_ms) / stats["median"], 3)
                                 if reference else 1.0),
            "setup_s": round(self.setup_s, 3), "first_call_s": round(self.first_call_s or 0.0, 3),
            "iters": len(self.times_ms),
        }
        if self.runner is not None:
            result["backend"] = self.runner.backend_info()
        if self.agreement:
            # "identical" in the docs means every pixel of every image; changed = 1 - agreement.
            result["argmax_vs_eager"] = {
                "per_image": [round(a, 6) for a in self.agreement], "min": round(min(self.agreement), 6),
                "mean": round(statistics.mean(self.agreement), 6),
                "max_changed_pixels": round(1 - min(self.agreement), 6),
                "identical": all(a == 1.0 for a in self.agreement)}
        return result


def _variants(args, device) -> list[Variant]:
    if args.variants:
        flags = [f for f, on in (("--backend", args.backend != "torch"), ("--dtype", args.dtype != "fp32"),
                                  ("--channels-last", args.channels_last), ("--fold-bn", args.fold_bn),
                                  ("--cuda-graphs", args.cuda_graphs), ("--compile", args.compile)) if on]
        if flags:
            raise ValueError(f"--variants already says how each model runs; drop {', '.join(flags)} "
                             "or add the switches to the variants (e.g. channels_last+bf16)")
        # "fast" is exactly what `fplnet predict` runs on this device, allocator switch included.
        variants = [resolve_variant(spec, device, keep_memory=True)[0] for spec in args.variants]
        return _share_keep_memory(args.variants, variants)
    switches = [args.backend] if args.backend != "torch" else []
    switches += [args.dtype] if args.dtype != "fp32" else []
    switches += [s for s, on in (("channels_last", args.channels_last), ("fold_bn", args.fold_bn),
                                 ("cuda_graphs", args.cuda_graphs), ("compile", args.compile)) if on]
    return [Variant.parse("+".join(switches) or "eager")]


def _refuse_repeats(specs: list[str], variants: list[Variant]) -> list[Variant]:
    """Two entries of ``--variants`` that run as the same variant would time one thing twice:
    refused, naming the pair and why they coincide (``fast`` is a name for another variant; or
    the process-wide keep_memory, which once one variant has it, all have)."""
    first = {}
    for spec, variant in zip(specs, variants):
        if variant in first:
            other = first[variant]
            if "fast" in (spec, other):
                why = f"'fast' is {variant} on this device"
            elif ("keep_memory" in Variant.parse(spec)) != ("keep_memory" in Variant.parse(other)):
                why = ("keep_memory changes the allocator of the whole process, so a variant with and without it "
                       "cannot be told apart in one run; time them in separate runs")
            else:
                why = "the same switches"
            raise ValueError(f"--variants: {other} and {spec} both run as {variant} here ({why}); list one of them")
        first[variant] = spec
    return variants


def _share_keep_memory(specs: list[str], variants: list[Variant]) -> list[Variant]:
    """keep_memory changes the allocator of the whole process, so once one variant of a run has it
    (``fast`` does, on the CPU) every variant is timed with it. Rather than time ``eager`` under a
    switch its name does not show, every variant gets the switch in its name, and the run says so:
    ``--variants eager,fast,onnxruntime,openvino+int8`` works and reports what it timed. A pair
    that differs only by keep_memory (``eager,keep_memory``) cannot be compared within one process:
    ``_refuse_repeats`` refuses it, as it refuses any two ``specs`` that run as one variant."""
    if len({"keep_memory" in v for v in variants}) < 2:
        return _refuse_repeats(specs, variants)
    shared = _refuse_repeats(specs, [Variant(v.switches | {"keep_memory"}) for v in variants])
    renamed = ", ".join(f"{v} -> {s}" for v, s in zip(variants, shared) if v != s)
    print(f"keep_memory changes the allocator of the whole process, so every variant of this run has it: {renamed}",
          flush=True)
    return shared


def check_variants(variants: list[Variant], device: torch.device, mode: str) -> None:
    """Refuse, before anything is built, a variant that cannot run here."""
    for variant in variants:
        if mode == "train" and set(variant.switches) - TrainStep.ALLOWED:
            extra = ", ".join(sorted(set(variant.switches) - TrainStep.ALLOWED))
            raise ValueError(f"--mode train times the trainable model, and variant {variant} uses the inference-only "
                             f"switches {extra} (train variants combine {', '.join(sorted(TrainStep.ALLOWED))})")
        if "cuda_graphs" in variant and device.type != "cuda":
            raise ValueError(f"variant {variant}: CUDA graphs need --device cuda")
        if variant.cpu_only and device.type != "cpu":
            raise ValueError(f"variant {variant}: the {variant.backend} backend here runs on the CPU only; "
                             "use --device cpu")


class TrainStep:
    """One SGD step on a random batch: the quantity the CPU training-speed study compares.

    ``compile`` is ``torch.compile`` (mode default); ``cuda_graphs`` is ``torch.compile(mode=
    "reduce-overhead")``, what ``fplnet train --compile reduce-overhead`` runs: a training step
    captures its CUDA graphs through the compiler, which replays the compiled forward and backward
    as one launch each. That made the GPU step 2.3-2.6x faster (docs/gpu.md, 2026-11-30)."""

    ALLOWED = {"keep_memory", "channels_last", "bf16", "fp16", "compile", "cuda_graphs"}

    @staticmethod
    def compile_mode(variant: Variant) -> Optional[str]:
        """The torch.compile mode of the step, or None for eager."""
        if "cuda_graphs" in variant:
            return "reduce-overhead"
        return "default" if "compile" in variant else None

    def __init__(self, model, variant: Variant, device, batch_size: int, size, num_classes: int):
        self.device, self.variant = device, variant
        if "keep_memory" in variant:
            keep_freed_memory()
        memory_format = torch.channels_last if "channels_last" in variant else torch.contiguous_format
        self.model = model.to(device).train().to(memory_format=memory_format)
        mode = self.compile_mode(variant)
        # Contiguous, a model the bf16 CPU kernels get wrong in channels_last is compiled as
        # `fplnet train` compiles it: with inductor's own switch to channels_last off.
        keep_layout = ("channels_last" not in variant and bf16_channels_last_hazard(
            self.model, device, "bf16" if "bf16" in variant else "none") is not None)
        self.forward = self.model if mode is None else compile_module(self.model, mode, keep_layout=keep_layout)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
        self.scaler = torch.amp.GradScaler(device.type, enabled="fp16" in variant)
        generator = torch.Generator().manual_seed(0)
        self.images = torch.randn(batch_size, 3, *size, generator=generator).to(device, memory_format=memory_format)
        self.targets = torch.randint(0, num_classes, (batch_size, *size), generator=generator).to(device)

    def __call__(self):
        self.optimizer.zero_grad(set_to_none=True)
        dtype = self.variant.autocast_dtype
        with torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            loss = F.cross_entropy(self.forward(self.images), self.targets, ignore_index=255)
        self.scaler.scale(loss).backward()
        self.scaler.step(self.optimizer)
        self.scaler.update()
        return loss


def models_to_time(args) -> list[tuple[str, "torch.nn.Module", dict]]:
    """(name, eval-mode model, checkpoint dict) for each --models name (a checkpoint dict that
    describes the fresh model), or the one --checkpoint model."""
    if args.checkpoint:
        model, ckpt = load_model(args.checkpoint)
        return [(ckpt["model_name"], model, ckpt)]
    models = []
    for name in args.models or DEFAULT_MODELS.split(","):
        torch.manual_seed(0)
        models.append((name, create_model(name, num_classes=args.num_classes).eval(), {"num_classes": args.num_classes}))
    return models


def timed_size(args) -> tuple[int, int]:
    """--size, else the --checkpoint's fixed eval size (its inference spec), else 512x1024 (a
    checkpoint with a short side instead is timed at the size asked for: the speed at a size is
    what the benchmark reports)."""
    if args.size:
        return tuple(args.size)
    if args.checkpoint:
        from ..checkpoint import load_checkpoint
        from ..spec import InferenceSpec
        eval_size = InferenceSpec.from_checkpoint(load_checkpoint(args.checkpoint)).eval_size
        if eval_size:
            return eval_size
    return (512, 1024)


def calibration_for(args, ckpt: dict, x: torch.Tensor) -> CalibrationSet:
    """The frames an INT8 variant is quantized on: from the checkpoint's training split or
    --calib-data (``fplnet.calibration``); for a fresh --models network without --calib-data,
    the timed random input itself."""
    if args.checkpoint or args.calib_data:
        return calibration_set(ckpt, args.calib_data, args.calib_size)
    return CalibrationSet([x[:1].cpu().numpy()], {"source": "the benchmark's random input", "frames": 1,
                                                   "note": "untrained network: a speed figure only"})


def build_entries(args, device, size, variants: list[Variant]) -> list[Entry]:
    entries = []
    for name, model, ckpt in models_to_time(args):
        # A training step runs the model as built; inference entries count what their variant runs.
        params, macs = (count_params(model), count_macs(model, size)) if args.mode == "train" else (None, None)
        calibration = None
        for variant in variants:
            started = time.perf_counter()
            if args.mode == "train":
                step = TrainStep(copy.deepcopy(model), variant, device, args.batch_size, size, model.num_classes)
                entry = Entry(name, variant.name, params, macs, step)
            else:
                x = torch.randn(args.batch_size, 3, *size, generator=torch.Generator().manual_seed(0)).to(device)
                if variant.needs_calibration and calibration is None:
                    calibration = calibration_for(args, ckpt, x)
                runner = InferenceRunner(model, variant, device, threads=args.threads,
                                         calibration=calibration if variant.needs_calibration else None)
                # Counted on what runs: BN folding removes parameters, shuffle_deconv adds some.
                entry = Entry(name, variant.name, count_params(runner.model), count_macs(runner.model, size),
                              (lambda runner=runner, x=x: runner(x)), runner)
            entry.setup_s = time.perf_counter() - started
            entries.append(entry)
    return entries + exported_entries(args, size)


def exported_entries(args, size) -> list[Entry]:
    """One entry per ``--exported`` file, run as it is on the timed input (check_arguments has made
    sure each comes from a model of the --checkpoint's kind)."""
    entries = []
    for path in args.exported or []:
        started = time.perf_counter()
        runner = ExportedModel(path, threads=args.threads or 0)
        x = torch.randn(args.batch_size, 3, *size, generator=torch.Generator().manual_seed(0))
        entry = Entry(runner.model_name, f"file {path}", None, None, (lambda runner=runner, x=x: runner(x)), runner)
        entry.setup_s = time.perf_counter() - started
        entries.append(entry)
    return entries


def thread_pool(entry: Entry) -> str:
    """The thread pool an entry computes on: torch's OpenMP pool (eager, compiled, TorchScript,
    every training step), onnxruntime's or OpenVINO's."""
    if isinstance(entry.runner, ExportedModel):
        return entry.runner.backend
    if entry.runner is not None and entry.runner.variant.cpu_only:
        return entry.runner.variant.backend
    return "torch"


def timing_groups(entries: list[Entry]) -> list[list[Entry]]:
    """Entries grouped by thread pool, in the order each pool first appears.

    Why groups: a pool that has just worked keeps its threads spinning on the cores for a while.
    On the 2-core CPU, OpenVINO timed right after torch calls in the same rotation took 202 ms
    for a model that took 149 ms timed on its own (docs/benchmarks.md, "Timing OpenVINO apart
    from torch"), and OMP_WAIT_POLICY=PASSIVE, which stops torch's spinning, slowed torch down
    instead. So each pool's entries are timed in rounds of their own, after their own warm-up.
    """
    groups: dict[str, list[Entry]] = {}
    for entry in entries:
        groups.setdefault(thread_pool(entry), []).append(entry)
    return list(groups.values())


def time_round_robin(entries: list[Entry], warmup: int, iters: int, device) -> None:
    cuda = device.type == "cuda"

    def timed(entry: Entry) -> float:
        if cuda:
            torch.cuda.synchronize(device)
        started = time.perf_counter()
        entry.call()
        if cuda:
            torch.cuda.synchronize(device)
        return (time.perf_counter() - started) * 1000

    # The first call (compiling, tracing, capturing) is reported apart and is not one of the
    # --warmup rounds, so --warmup 0 --iters 1 still times one call of each entry.
    for entry in entries:
        entry.first_call_s = timed(entry) / 1000
    for group in timing_groups(entries):
        for round_index in range(warmup + iters):
            shift = round_index % len(group)
            for entry in group[shift:] + group[:shift]:
                elapsed = timed(entry)
                if round_index >= warmup:
                    entry.times_ms.append(elapsed)


# --- the machine and the report ---------------------------------------------------------------------

def machine_info(device) -> dict:
    cpu, flags = None, set()
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name") and cpu is None:
                    cpu = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:  # not Linux
        pass
    cpu = cpu or platform.processor() or "unknown CPU"
    info = {
        "cpu": cpu, "logical_cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
        "cpu_bf16": sorted(flags & {"avx512_bf16", "amx_bf16"}), "torch": torch.__version__,
        "python": platform.python_version(), "platform": platform.platform(),
        "device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
        "load_average_1min_start": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        # On Intel cores subnormal weights cost up to 8x (fplnet.runtime.flush_denormals).
        "subnormals_flushed": subnormals_flushed(),
    }
    try:
        import onnxruntime
        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    try:
        import openvino
        info["openvino"] = openvino.__version__
    except ImportError:
        info["openvino"] = None
    return info


def method_text(args, size, entries: list[Entry]) -> str:
    what = ("one training step (forward, cross-entropy, backward, SGD step)" if args.mode == "train"
            else "one forward pass under torch.inference_mode")
    weights = (f"the trained weights of {args.checkpoint}" if args.checkpoint
               else f"freshly initialised models with {args.num_classes} classes")
    if args.exported:
        weights += ", and the exported files as they are"
        if any("keep_memory" in entry.variant for entry in entries):
            weights += " (in the same process, so under the keep_memory allocator switch too)"
    text = (f"{what} on a batch of {args.batch_size} x 3 x {size[0]} x {size[1]} (random normalized input, "
            f"{weights}); all entries in one process; {args.warmup} warm-up rounds, then "
            f"{args.iters} timed rounds, each calling every entry once in an order rotated by one per round"
            f"{pools_text(entries)}; "
            "torch.cuda.synchronize() around each timed call and cudnn.benchmark on CUDA; latency = median "
            "(and p90) wall time of one call; FPS = batch / median latency; speed-up relative to the first row.")
    if args.agreement_images:
        text += (" Argmax vs eager: after timing, each entry and plain eager fp32 segment the agreement images "
                 f"(resized to {size[0]}x{size[1]}); the share of pixels with the same class, lowest over the images.")
    return text


def pools_text(entries: list[Entry]) -> str:
    """The method's words for timing_groups, when the entries span more than one thread pool."""
    pools = [thread_pool(group[0]) for group in timing_groups(entries)]
    if len(pools) < 2:
        return ""
    return (", separately for the entries of each thread pool (" + ", ".join(pools) + "), one pool after "
            "another, each with its own warm-up, since a pool's threads keep spinning after it works")


def command_line(args) -> str:
    what = f"--checkpoint {args.checkpoint}" if args.checkpoint else f"--models {','.join(args.models or [DEFAULT_MODELS])}"
    size = timed_size(args)
    parts = ["fplnet benchmark", what, f"--size {size[0]}x{size[1]}", f"--batch-size {args.batch_size}",
             f"--device {args.device}", f"--mode {args.mode}", f"--warmup {args.warmup}", f"--iters {args.iters}"]
    if args.exported:
        parts.append(f"--exported {' '.join(map(str, args.exported))}")
    if args.variants:
        parts.append(f"--variants {','.join(args.variants)}")
    else:
        parts += [f"--backend {args.backend}", f"--dtype {args.dtype}"]
        parts += [flag for flag, on in (("--channels-last", args.channels_last), ("--fold-bn", args.fold_bn),
                                        ("--cuda-graphs", args.cuda_graphs), ("--compile", args.compile)) if on]
    if args.num_classes != DEFAULT_NUM_CLASSES and not args.checkpoint:
        parts.append(f"--num-classes {args.num_classes}")
    if args.threads:
        parts.append(f"--threads {args.threads}")
    if any("int8" in spec for spec in args.variants or []) and (args.checkpoint or args.calib_data):
        parts += [f"--calib-data {args.calib_data}"] if args.calib_data else []
        parts += [f"--calib-size {args.calib_size}"] if args.calib_size else []
    if args.agreement_images:
        parts.append(f"--agreement-images {' '.join(map(str, args.agreement_images))} "
                     f"--agreement-count {args.agreement_count}")
    return " ".join(parts)


def markdown_table(results: list[dict], mode: str) -> str:
    unit = "step" if mode == "train" else "image batch"
    agreement = any("argmax_vs_eager" in r for r in results)
    lines = [f"| model | variant | params | GMACs/image | median ms/{unit} | p90 ms | FPS | speed-up | first call s |"
             + (" argmax vs eager (lowest) |" if agreement else ""),
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |" + (" ---: |" if agreement else "")]
    for r in results:
        # OpenVINO rows name the precision its CPU plugin executed in (it may pick bf16 by itself).
        backend = r.get("backend", {})
        hint = precision_label(backend)
        params, gmacs = ("-", "-") if r["params"] is None else (f"{r['params']:,}", f"{r['gmacs']:.2f}")
        line = (f"| {r['model']} | {r['variant']}{f' ({hint})' if hint else ''} | {params} | {gmacs} | "
                f"{r['latency_median_ms']:.1f} | {r['latency_p90_ms']:.1f} | {r['fps']:.2f} | "
                f"x{r['speedup_vs_first']:.2f} | {r['first_call_s']:.2f} |")
        if agreement:
            check = r.get("argmax_vs_eager")
            line += (" |" if check is None else " identical |" if check["identical"]
                     else f" {100 * check['min']:.3f}% |")
        lines.append(line)
    return "\n".join(lines)


def report_text(report: dict) -> str:
    m = report["machine"]
    machine = (f"{m['cpu']}, {m['logical_cores']} logical cores, {m['torch_threads']} torch threads"
               f"{', ' + '/'.join(m['cpu_bf16']) if m['cpu_bf16'] else ''}; torch {m['torch']}"
               f"{', onnxruntime ' + m['onnxruntime'] if m['onnxruntime'] else ''}; python {m['python']}; "
               f"device {m['device']}{' (' + m['gpu'] + ')' if m['gpu'] else ''}; 1-min load average "
               f"{m['load_average_1min_start']} at start, {m.get('load_average_1min_end')} at end"
               + {True: "; subnormals flushed to zero", False: "; subnormals kept (IEEE)"}.get(
                   m.get("subnormals_flushed"), ""))
    return "\n".join([f"Machine: {machine}", f"Date: {report['date']}", f"Command: `{report['command']}`",
                      f"Method: {report['method']}", "", markdown_table(report["results"], report["mode"])])


# --- argmax agreement with eager fp32 -------------------------------------------------------------

def agreement_batches(paths: list[Path], count: int, spec, size) -> list[tuple[Path, torch.Tensor]]:
    """The first ``count`` images under ``paths`` (files, or folders in name order), each read by
    the one image reader and preprocessed like ``Segmenter`` does (``spec``: an
    ``InferenceSpec``), resized to ``size`` by the one image resize (``fplnet.data.resize``)."""
    from ..data.base import is_image_file, list_image_files, read_rgb_image
    from ..data.resize import resize_images
    files = []
    for path in paths:
        files += list_image_files(path) if path.is_dir() else [path] if is_image_file(path) else []
    if not files:
        raise ValueError(f"--agreement-images: no image files in {', '.join(map(str, paths))}")
    batches = []
    for file in files[:count]:
        batches.append((file, resize_images(spec.preprocess([read_rgb_image(file)]), size)))
    return batches


@torch.inference_mode()
def measure_agreement(model, entries: list[Entry], batches: list[tuple[Path, torch.Tensor]], device,
                      batch_size: int = 1) -> None:
    """Fill ``entry.agreement`` with, per image, the share of pixels whose argmax class equals
    that of plain eager fp32 ``model``. Each image is repeated to ``batch_size`` (the timed batch),
    so the entries run at the shape they were timed at and nothing compiles again."""
    reference = model.to(device).eval()
    for _, x in batches:
        expected = reference(x.to(device)).argmax(1)
        timed_shape = x.expand(batch_size, *x.shape[1:]).contiguous()
        for entry in entries:
            labels = entry.runner(timed_shape)[:1].argmax(1).to(expected.device)
            entry.agreement.append(float((labels == expected).float().mean()))


# --- the command ------------------------------------------------------------------------------------

def draw_plots(args) -> None:
    plots = {"cityscapes": ("--plot", args.plot), "camvid": ("--camvid-plot", args.camvid_plot)}
    for point in args.measured:
        flag, path = plots[point.dataset]
        if path is None:
            raise ValueError(f"--measured {point.name}@{point.dataset}: a {point.dataset} point goes on the "
                             f"{flag} plot; give {flag} FILE too")
    if args.plot:
        draw_cityscapes(args.plot, args.measured)
        print(f"wrote {args.plot}")
    if args.camvid_plot:
        draw_camvid(args.camvid_plot, args.measured)
        print(f"wrote {args.camvid_plot}")


def benchmark_device(args) -> torch.device:
    """The one device a run times on: the device ``resolve_variant`` gives every variant (its
    ``auto`` is the CPU for the exported-graph backends, as in evaluate and predict); where the
    variants disagree, ``--device`` as given, and check_variants refuses what cannot run there."""
    devices = {resolve_variant(spec, args.device)[1] for spec in args.variants or []}
    return devices.pop() if len(devices) == 1 else resolve_device(args.device)


def check_arguments(args, variants: list[Variant], device: torch.device) -> None:
    """Cross-flag checks, before any model is built (each flag alone is checked by its type)."""
    check_variants(variants, device, args.mode)
    if not any(v.needs_calibration for v in variants):
        for flag, value in (("--calib-data", args.calib_data), ("--calib-size", args.calib_size)):
            if value is not None:
                raise ValueError(f"{flag} {value} sets INT8 calibration, and none of the variants "
                                 f"({', '.join(map(str, variants))}) quantizes; add openvino+int8 to --variants or "
                                 f"drop {flag}")
    if args.agreement_images and not args.checkpoint:
        raise ValueError("--agreement-images needs --checkpoint: on a random network every pixel gets the same "
                         "class, so agreement would say nothing")
    if args.agreement_images and args.mode == "train":
        raise ValueError("--agreement-images compares predictions; it does not apply to --mode train")
    if args.agreement_count is not None and not args.agreement_images:
        raise ValueError("--agreement-count chooses among --agreement-images; give those too, or leave it out")
    if args.num_classes is not None and args.checkpoint:
        raise ValueError(f"--num-classes {args.num_classes} sets the classifier of fresh --models; the --checkpoint "
                         "has its own; leave it out")
    if args.exported:
        check_exported(args, device)


def check_exported(args, device: torch.device) -> None:
    """``--exported`` files are timed beside the --checkpoint they came from: on the CPU, in
    inference, each file once, and exported from these very weights (the digest ``fplnet export``
    records; a file exported before it did is matched by model name and classes only, and the run
    says so)."""
    if not args.checkpoint:
        raise ValueError("--exported times files beside the --checkpoint they were exported from; give --checkpoint")
    if args.mode == "train":
        raise ValueError("--exported files run inference only; they do not apply to --mode train")
    if device.type != "cpu":
        raise ValueError(f"--exported files run on the CPU (onnxruntime, OpenVINO); use --device cpu, not {device}")
    seen = {}
    for path in args.exported:
        if path.resolve() in seen:
            raise ValueError(f"--exported {seen[path.resolve()]} and {path} are the same file; list it once")
        seen[path.resolve()] = path
    from ..checkpoint import load_checkpoint, weights_digest
    from ..exported import read_metadata
    ckpt = load_checkpoint(args.checkpoint)
    expected, digest = (ckpt["model_name"], int(ckpt["num_classes"])), weights_digest(ckpt["state_dict"])
    for path in args.exported:
        try:
            metadata = read_metadata(path)
            found = (metadata["model_name"], int(metadata["num_classes"]))
        except Exception as error:   # not fplnet's, or unreadable: the reader's message names the file
            raise ValueError(f"--exported {path}: {' '.join(str(error).splitlines())}") from None
        if found != expected:
            raise ValueError(f"--exported {path} holds {found[0]} with {found[1]} classes, and --checkpoint "
                             f"{args.checkpoint} is {expected[0]} with {expected[1]}: it was not exported from it")
        recorded = metadata.get("source_weights_sha256")
        if recorded is None:
            print(f"note: --exported {path} records no digest of the weights it was exported from (an older fplnet "
                  f"exported it): only its model and classes were matched to --checkpoint {args.checkpoint}",
                  flush=True)
        elif recorded != digest:
            raise ValueError(f"--exported {path} was exported from other weights than --checkpoint {args.checkpoint} "
                             "(the weights digest it records differs); give the checkpoint it came from")


def run(args) -> int:
    if args.plot_only and not (args.plot or args.camvid_plot):
        raise ValueError("--plot-only draws --plot and/or --camvid-plot; give at least one")
    if args.plot or args.camvid_plot or args.measured:
        draw_plots(args)
    if args.plot_only:
        return 0
    device = benchmark_device(args)
    variants = _variants(args, device)
    check_arguments(args, variants, device)
    args.num_classes = args.num_classes or DEFAULT_NUM_CLASSES
    args.agreement_count = args.agreement_count or DEFAULT_AGREEMENT_COUNT
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    size = timed_size(args)

    machine = machine_info(device)
    entries = build_entries(args, device, size, variants)
    print(f"timing {len(entries)} entries: {args.warmup} warm-up + {args.iters} timed rounds", flush=True)
    time_round_robin(entries, args.warmup, args.iters, device)
    machine["load_average_1min_end"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None
    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(args), "mode": args.mode, "size": list(size), "batch_size": args.batch_size,
        "checkpoint": args.checkpoint, "method": method_text(args, size, entries), "machine": machine,
    }
    if args.agreement_images:
        from ..spec import InferenceSpec
        model, ckpt = load_model(args.checkpoint)
        batches = agreement_batches(args.agreement_images, args.agreement_count, InferenceSpec.from_checkpoint(ckpt),
                                    size)
        measure_agreement(model, entries, batches, device, args.batch_size)
        report["agreement_images"] = [str(path) for path, _ in batches]
    report["results"] = [e.result(args.batch_size, entries[0] if i else None) for i, e in enumerate(entries)]

    text = report_text(report)
    print(text)
    if args.json:
        atomic_write_json(args.json, report)
    if args.markdown:
        atomic_write_text(args.markdown, text + "\n")
    return 0
