"""`fplnet benchmark`: parameters, MACs and speed of several models side by side.

Method (printed with every table):

* every model (and every variant of it, ``--variants``) is built once in one process and run on
  the same random normalized input, already on the device;
* ``--warmup`` rounds, then ``--iters`` timed rounds; a round calls every entry once, in an
  order rotated by one place each round, so that a slow spell of a shared machine lands on all
  entries alike and the *ratios* between entries survive it;
* inference runs under ``torch.inference_mode``; on CUDA ``torch.backends.cudnn.benchmark`` is
  on and ``torch.cuda.synchronize()`` brackets every timed call;
* latency is the wall time of one call (one batch), median and 90th percentile over the timed
  rounds; FPS = batch size / median latency. The first call of each entry is reported
  separately (``first_call_s``): it includes torch.compile, tracing, CUDA graph capture.

``--mode train`` times one training step instead: forward, cross-entropy on random targets,
backward and an SGD step (momentum 0.9, weight decay 5e-4, as in the paper).

``--plot`` draws the paper's Fig. 5 (mIoU against parameters) from its Table IV figures, with
``--measured NAME=MIOU`` points of our own marked apart.
"""
from __future__ import annotations

import json
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

from ..complexity import count_macs, count_params
from ..fast import InferenceRunner, Variant, fast_variant
from ..models import create_model, list_models
from ..runtime import keep_freed_memory, parse_size, resolve_device

DEFAULT_MODELS = "fplnet,espnet,enet,erfnet,cgnet"

# FPLNet paper, Table IV: Cityscapes *test* mIoU (%) and parameters (millions) as printed there
# (the networks with at most 5M parameters: the span of the paper's Fig. 5).
TABLE_IV = {
    "ERFNet": (68.0, 2.2), "CABiNet": (75.9, 2.64), "BiSeNetV2": (75.3, 4.59), "RegSeg": (78.3, 3.34),
    "BiAttenNet": (74.7, 2.2), "DABNet": (70.1, 0.75), "ContextNet": (66.1, 0.88), "EDANet": (67.3, 0.68),
    "ENet": (57.0, 0.36), "ESPNet": (60.3, 0.36), "CGNet": (64.8, 0.5),
}
FPLNET_REPORTED = (66.28, 0.49)


def add_arguments(parser):
    parser.add_argument("--models", default=DEFAULT_MODELS,
                        help=f"comma-separated registry names (default {DEFAULT_MODELS}); unregistered names are skipped")
    parser.add_argument("--variants", default=None,
                        help="comma-separated variants timed side by side for every model, each a '+'-joined set of "
                             "switches: eager, fold_bn, shuffle_deconv, channels_last, bf16, fp16, compile, "
                             "cuda_graphs, torchscript, onnxruntime, keep_memory, freeze (with compile), or 'fast' "
                             "(what predict uses on this device), e.g. eager,channels_last,channels_last+bf16. "
                             "Replaces the single-variant flags below")
    parser.add_argument("--size", default="512x1024", help="input HEIGHTxWIDTH (default 512x1024)")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--num-classes", type=int, default=19, help="classifier width (default 19, Cityscapes)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or auto (default cpu)")
    parser.add_argument("--mode", choices=("inference", "train"), default="inference")
    parser.add_argument("--backend", choices=("torch", "onnxruntime", "torchscript"), default="torch")
    parser.add_argument("--dtype", choices=("fp32", "bf16", "fp16"), default="fp32", help="autocast precision")
    parser.add_argument("--channels-last", action="store_true")
    parser.add_argument("--fold-bn", action="store_true", help="fold BatchNorm into the preceding convolution")
    parser.add_argument("--cuda-graphs", action="store_true", help="capture the forward in a CUDA graph and replay it")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (time reported apart)")
    parser.add_argument("--threads", type=int, default=None, help="CPU threads (default: torch's default)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed rounds first (default 5)")
    parser.add_argument("--iters", type=int, default=20, help="timed rounds (default 20)")
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON")
    parser.add_argument("--markdown", type=Path, default=None, help="write the table and method as Markdown")
    parser.add_argument("--plot", type=Path, default=None, help="PNG of mIoU vs parameters in the style of Fig. 5")
    parser.add_argument("--measured", action="append", default=[], metavar="NAME[@DATASET]=MIOU",
                        help="a point of our own for --plot: a registry name or checkpoint file, the dataset it was "
                             "measured on (default cityscapes) and its mIoU in %%; repeatable")
    parser.add_argument("--plot-only", action="store_true", help="draw --plot and time nothing")


# --- what is timed --------------------------------------------------------------------------------

@dataclass
class Entry:
    model_name: str
    variant: str
    params: int
    macs: int                                   # per image at --size
    call: Callable[[], object]
    setup_s: float = 0.0                        # building the runner (export, session, ...)
    first_call_s: Optional[float] = None        # first call: compile / trace / capture included
    times_ms: list = field(default_factory=list)

    def result(self, batch_size: int, reference: Optional["Entry"]) -> dict:
        times = sorted(self.times_ms)
        median = statistics.median(times)
        p90 = times[min(len(times) - 1, int(round(0.9 * (len(times) - 1))))]
        return {
            "model": self.model_name, "variant": self.variant, "params": self.params,
            "gmacs": round(self.macs / 1e9, 3), "latency_median_ms": round(median, 3),
            "latency_p90_ms": round(p90, 3), "latency_min_ms": round(times[0], 3),
            "fps": round(1000 * batch_size / median, 2),
            "speedup_vs_first": round(statistics.median(reference.times_ms) / median, 3) if reference else 1.0,
            "setup_s": round(self.setup_s, 3), "first_call_s": round(self.first_call_s or 0.0, 3),
            "iters": len(times),
        }


def _variants(args, device) -> list[Variant]:
    if args.variants:
        flags = [f for f, on in (("--backend", args.backend != "torch"), ("--dtype", args.dtype != "fp32"),
                                  ("--channels-last", args.channels_last), ("--fold-bn", args.fold_bn),
                                  ("--cuda-graphs", args.cuda_graphs), ("--compile", args.compile)) if on]
        if flags:
            raise ValueError(f"--variants already says how each model runs; drop {', '.join(flags)} "
                             "or add the switches to the variants (e.g. channels_last+bf16)")
        specs = [s.strip() for s in args.variants.split(",") if s.strip()]
        # "fast" is exactly what `fplnet predict` runs on this device, allocator switch included.
        variants = [fast_variant(device, keep_memory=True) if s == "fast" else Variant.parse(s) for s in specs]
        if len({"keep_memory" in v for v in variants}) > 1:
            raise ValueError("keep_memory changes the allocator of the whole process, so the variants without it "
                             "would be timed with it too; time variants with and without keep_memory in separate "
                             "runs (`fast` includes keep_memory on Linux)")
        return variants
    switches = [args.backend] if args.backend != "torch" else []
    switches += [args.dtype] if args.dtype != "fp32" else []
    switches += [s for s, on in (("channels_last", args.channels_last), ("fold_bn", args.fold_bn),
                                 ("cuda_graphs", args.cuda_graphs), ("compile", args.compile)) if on]
    return [Variant.parse("+".join(switches) or "eager")]


class TrainStep:
    """One SGD step on a random batch: the quantity the CPU training-speed study compares."""

    ALLOWED = {"keep_memory", "channels_last", "bf16", "fp16", "compile"}

    def __init__(self, model, variant: Variant, device, batch_size: int, size, num_classes: int):
        extra = set(variant.switches) - self.ALLOWED
        if extra:
            raise ValueError(f"--mode train times the trainable model; {', '.join(sorted(extra))} are inference-only "
                             f"(train variants combine {', '.join(sorted(self.ALLOWED))})")
        self.device, self.variant = device, variant
        if "keep_memory" in variant:
            keep_freed_memory()
        memory_format = torch.channels_last if "channels_last" in variant else torch.contiguous_format
        self.model = model.to(device).train().to(memory_format=memory_format)
        self.forward = torch.compile(self.model) if "compile" in variant else self.model
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


def build_entries(args, device, size) -> list[Entry]:
    registered = set(list_models())
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    variants = _variants(args, device)
    entries = []
    for name in names:
        if name not in registered:
            print(f"skipping {name!r}: not a registered model (registered: {', '.join(list_models())})", flush=True)
            continue
        torch.manual_seed(0)
        model = create_model(name, num_classes=args.num_classes).eval()
        params, macs = count_params(model), count_macs(model, size)
        for variant in variants:
            started = time.perf_counter()
            if args.mode == "train":
                step = TrainStep(create_model(name, num_classes=args.num_classes), variant, device,
                                 args.batch_size, size, args.num_classes)
                call = step
            else:
                runner = InferenceRunner(model, variant, device, threads=args.threads)
                x = torch.randn(args.batch_size, 3, *size, generator=torch.Generator().manual_seed(0)).to(device)
                call = (lambda runner=runner, x=x: runner(x))
            entries.append(Entry(name, variant.name, params, macs, call, setup_s=time.perf_counter() - started))
    return entries


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

    for round_index in range(warmup + iters):
        shift = round_index % len(entries)
        for entry in entries[shift:] + entries[:shift]:
            elapsed = timed(entry)
            if entry.first_call_s is None:
                entry.first_call_s = elapsed / 1000
            elif round_index >= warmup:
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
    }
    try:
        import onnxruntime
        info["onnxruntime"] = onnxruntime.__version__
    except ImportError:
        info["onnxruntime"] = None
    return info


def method_text(args, size) -> str:
    what = ("one training step (forward, cross-entropy, backward, SGD step)" if args.mode == "train"
            else "one forward pass under torch.inference_mode")
    return (f"{what} on a batch of {args.batch_size} x 3 x {size[0]} x {size[1]} (random normalized input, "
            f"{args.num_classes} classes); all entries in one process; {args.warmup} warm-up rounds, then "
            f"{args.iters} timed rounds, each calling every entry once in an order rotated by one per round; "
            "torch.cuda.synchronize() around each timed call and cudnn.benchmark on CUDA; latency = median "
            "(and p90) wall time of one call; FPS = batch / median latency; speed-up relative to the first row.")


def command_line(args) -> str:
    parts = ["fplnet benchmark", f"--models {args.models}", f"--size {args.size}", f"--batch-size {args.batch_size}",
             f"--device {args.device}", f"--mode {args.mode}", f"--warmup {args.warmup}", f"--iters {args.iters}"]
    if args.variants:
        parts.append(f"--variants {args.variants}")
    else:
        parts += [f"--backend {args.backend}", f"--dtype {args.dtype}"]
        parts += [flag for flag, on in (("--channels-last", args.channels_last), ("--fold-bn", args.fold_bn),
                                        ("--cuda-graphs", args.cuda_graphs), ("--compile", args.compile)) if on]
    if args.num_classes != 19:
        parts.append(f"--num-classes {args.num_classes}")
    if args.threads:
        parts.append(f"--threads {args.threads}")
    return " ".join(parts)


def markdown_table(results: list[dict], mode: str) -> str:
    unit = "step" if mode == "train" else "image batch"
    lines = [f"| model | variant | params | GMACs/image | median ms/{unit} | p90 ms | FPS | speed-up | first call s |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in results:
        lines.append(f"| {r['model']} | {r['variant']} | {r['params']:,} | {r['gmacs']:.2f} | "
                     f"{r['latency_median_ms']:.1f} | {r['latency_p90_ms']:.1f} | {r['fps']:.2f} | "
                     f"x{r['speedup_vs_first']:.2f} | {r['first_call_s']:.2f} |")
    return "\n".join(lines)


def report_text(report: dict) -> str:
    m = report["machine"]
    machine = (f"{m['cpu']}, {m['logical_cores']} logical cores, {m['torch_threads']} torch threads"
               f"{', ' + '/'.join(m['cpu_bf16']) if m['cpu_bf16'] else ''}; torch {m['torch']}"
               f"{', onnxruntime ' + m['onnxruntime'] if m['onnxruntime'] else ''}; python {m['python']}; "
               f"device {m['device']}{' (' + m['gpu'] + ')' if m['gpu'] else ''}; 1-min load average "
               f"{m['load_average_1min_start']} at start, {m.get('load_average_1min_end')} at end")
    return "\n".join([f"Machine: {machine}", f"Date: {report['date']}", f"Command: `{report['command']}`",
                      f"Method: {report['method']}", "", markdown_table(report["results"], report["mode"])])


# --- Fig. 5 ----------------------------------------------------------------------------------------

def parse_measured(text: str) -> tuple[str, str, float]:
    """'fplnet@camvid=55.1' -> ('fplnet', 'camvid', 55.1)."""
    try:
        name, miou = text.rsplit("=", 1)
        name, _, dataset = name.partition("@")
        return name.strip(), (dataset.strip() or "cityscapes"), float(miou)
    except ValueError:
        raise ValueError(f"--measured {text!r} is not NAME[@DATASET]=MIOU, e.g. fplnet@camvid=55.1") from None


def measured_params(name: str, dataset: str) -> int:
    if Path(name).is_file():
        from ..models import load_model
        return count_params(load_model(name)[0])
    from ..data.info import get_info
    return count_params(create_model(name, num_classes=get_info(dataset).num_classes))


def draw_fig5(path: Path, measured: list[str]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=150)
    for name, (miou, params) in TABLE_IV.items():
        ax.scatter(params, miou, s=36, color="0.45", zorder=2)
        ax.annotate(name, (params, miou), textcoords="offset points", xytext=(5, 3), fontsize=8, color="0.25")
    ax.scatter(*FPLNET_REPORTED[::-1], s=90, marker="*", color="red", zorder=3, label="FPLNet (reported)")
    ax.annotate("FPLNet", FPLNET_REPORTED[::-1], textcoords="offset points", xytext=(-8, 4), ha="right", fontsize=9,
                color="red")
    ax.scatter([], [], s=36, color="0.45", label="other networks (reported, Table IV)")
    for text in measured:
        name, dataset, miou = parse_measured(text)
        params = measured_params(name, dataset) / 1e6
        label = f"{Path(name).stem} (measured, {dataset})"
        ax.scatter(params, miou, s=60, marker="s", facecolor="none", edgecolor="tab:blue", linewidth=1.5,
                   zorder=4, label=label)
        ax.annotate(label, (params, miou), textcoords="offset points", xytext=(6, 4), fontsize=8, color="tab:blue")
    ax.set_xlabel("parameters (millions)")
    ax.set_ylabel("mIoU (%)")
    ax.set_title("mIoU vs parameters (reported: Cityscapes test, FPLNet paper Table IV)", fontsize=10)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


# --- the command ------------------------------------------------------------------------------------

def run(args) -> int:
    if args.plot:
        draw_fig5(args.plot, args.measured)
        print(f"wrote {args.plot}")
    elif args.measured:
        raise ValueError("--measured adds points to --plot; give --plot FILE too")
    if args.plot_only:
        return 0
    if args.iters < 1 or args.warmup < 0 or args.batch_size < 1:
        raise ValueError("--iters and --batch-size must be at least 1 and --warmup at least 0")
    device = resolve_device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    size = parse_size(args.size)

    machine = machine_info(device)
    entries = build_entries(args, device, size)
    if not entries:
        raise ValueError(f"none of the models {args.models!r} is registered; see `fplnet models`")
    print(f"timing {len(entries)} entries: {args.warmup} warm-up + {args.iters} timed rounds", flush=True)
    time_round_robin(entries, args.warmup, args.iters, device)
    machine["load_average_1min_end"] = round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None

    report = {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "command": command_line(args), "mode": args.mode, "size": list(size), "batch_size": args.batch_size,
        "method": method_text(args, size), "machine": machine,
        "results": [e.result(args.batch_size, entries[0] if i else None) for i, e in enumerate(entries)],
    }
    text = report_text(report)
    print(text)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        args.markdown.write_text(text + "\n")
    return 0
