"""Inference-only rewrites of a trained network that keep its outputs and make it cheaper to run.

Each function takes an eval-mode model and returns a rewritten *copy*; the original is never
touched, so the same object can still be trained or exported as is.

* ``fold_batchnorm``: a BatchNorm whose input is the output of a convolution (and nothing else
  reads that output) becomes part of the convolution's weights and bias. In FPLNet most BNs sit
  after a concatenation or a residual addition (FPL modules, FIR, the initial module); those are
  left alone. The data flow is read from a ``torch.fx`` trace, so a pair is only folded when the
  graph proves that the BN sees the convolution's output and nothing else does.
* ``pixel_shuffle_deconvs``: a transposed convolution whose kernel equals its stride (FPLNet's
  and ENet's final 2x2 stride-2 "deconvolution") writes every output pixel exactly once, so it
  is a 1x1 convolution to ``out * s * s`` channels followed by ``pixel_shuffle(s)``. Exact, but
  not faster on the CPUs we timed (docs/benchmarks.md): the 1x1 convolution writes as many
  bytes as the deconvolution, and in NHWC the pixel shuffle is a strided copy; under OpenVINO
  f32 and INT8 it was level to 3 % slower. It stays a switch: under OpenVINO bf16 on an AMX CPU the
  plugin runs the transposed convolution in f32 and 24 decoder layers around it with it, and
  with the switch all but the pixel shuffle run in bf16 (layer counts in
  docs/runs/openvino/shuffle_deconv/; its speed there is not yet timed on an idle machine).

``Variant`` names a combination of these with a memory format, a precision, a backend and,
optionally, the process-wide allocator switch ``keep_memory`` (``fplnet.runtime.keep_freed_memory``),
e.g. ``keep_memory+fold_bn+channels_last+compile+freeze``; ``InferenceRunner`` runs a model that
way: it is what ``Segmenter``, ``fplnet predict``, ``fplnet evaluate`` and ``fplnet benchmark`` use.
The graph backends run the exported graph (``fplnet.graph_export``): ``torchscript``,
``onnxruntime``, and ``openvino`` (``fplnet.openvino_backend``), which with ``int8`` is first
quantized by NNCF on calibration frames the caller passes (``fplnet.calibration``). Only a variant
that names ``keep_memory`` touches the allocator, and the library's ``fast=True`` never does.
"""
from __future__ import annotations

import copy
import operator
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .graph_export import INPUT_NAME, export_onnx_bytes, onnxruntime_session, trace_torchscript
from .runtime import compile_module, keep_freed_memory, make_room, resolve_device, zero_subnormals

CONVS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)
BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)


# --- BatchNorm folding ---------------------------------------------------------------------------

def _spatial_slice_depth(node) -> int:
    """How many trailing axes ``node`` slices if it is ``x[..., a:b, c:d]`` or ``x[:, :, a:b]``
    (an indexing that keeps the batch and channel axes whole, so a per-channel affine map
    commutes with it; FPLNet's decoder crops this way); 0 for anything else."""
    if node.op != "call_function" or node.target is not operator.getitem:
        return 0
    index = node.args[1]
    if not isinstance(index, tuple) or not all(isinstance(i, slice) or i is Ellipsis for i in index):
        return 0
    if index and index[0] is Ellipsis and Ellipsis not in index[1:]:
        return len(index) - 1 if len(index) > 1 else 0
    if Ellipsis not in index and len(index) > 2 and index[:2] == (slice(None), slice(None)):
        return len(index) - 2
    return 0


def _traced_conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]]:
    import torch.fx
    graph = torch.fx.symbolic_trace(model).graph
    modules = dict(model.named_modules())
    pairs = []
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(modules.get(node.target), BATCHNORMS):
            continue
        source, sliced_axes = node.args[0], 0
        while isinstance(source, torch.fx.Node) and _spatial_slice_depth(source) and len(source.users) == 1:
            sliced_axes = max(sliced_axes, _spatial_slice_depth(source))
            source = source.args[0]
        if not (isinstance(source, torch.fx.Node) and source.op == "call_module" and len(source.users) == 1):
            continue
        conv = modules.get(source.target)
        # An Ellipsis slice of k axes is spatial only if the convolution has k spatial axes or more.
        if isinstance(conv, CONVS) and sliced_axes <= conv.weight.ndim - 2:
            pairs.append((source.target, node.target))
    return pairs


def _sequential_conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """Without a trace, only ``nn.Sequential`` says what runs after what: a convolution and the
    BN that runs right after it inside the same Sequential (nested Sequentials flattened)."""
    def leaves(prefix: str, seq: nn.Sequential):
        for name, child in seq.named_children():
            full = f"{prefix}.{name}" if prefix else name
            if isinstance(child, nn.Sequential):
                yield from leaves(full, child)
            else:
                yield full, child

    pairs, claimed = [], set()
    for prefix, module in model.named_modules():
        if not isinstance(module, nn.Sequential) or prefix in claimed:
            continue
        flat = list(leaves(prefix, module))
        claimed.update(name for name, m in module.named_modules(prefix) if isinstance(m, nn.Sequential))
        for (conv_name, conv), (bn_name, bn) in zip(flat, flat[1:]):
            if isinstance(conv, CONVS) and isinstance(bn, BATCHNORMS):
                pairs.append((conv_name, bn_name))
    return pairs


def find_conv_bn_pairs(model: nn.Module) -> list[tuple[str, str]]:
    """(convolution name, BatchNorm name) for every BN that can be folded into its convolution."""
    try:
        pairs = _traced_conv_bn_pairs(model)
    except Exception:  # symbolic tracing fails on data-dependent Python control flow
        pairs = _sequential_conv_bn_pairs(model)
    modules = dict(model.named_modules())
    return [(c, b) for c, b in pairs if _foldable(modules[c], modules[b])]


def _foldable(conv: nn.Module, bn: nn.Module) -> bool:
    if bn.running_mean is None or bn.running_var is None or conv.out_channels != bn.num_features:
        return False
    # A grouped transposed convolution stores its output channels group-major in dim 1; not worth
    # the bookkeeping, none of our models has one.
    return not (isinstance(conv, nn.modules.conv._ConvTransposeNd) and conv.groups != 1)


def _set_submodule(model: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, module)


@torch.no_grad()
def fold_batchnorm(model: nn.Module) -> nn.Module:
    """An eval-mode copy of ``model`` with every foldable BN merged into its convolution and
    replaced by ``nn.Identity``. ``len(find_conv_bn_pairs(model))`` says how many that is.

    Scaling a tiny weight by a BN's factor can make it subnormal: the copy's are zeroed
    (``fplnet.runtime.zero_subnormals``), as ``load_model`` zeroes the checkpoint's."""
    model = copy.deepcopy(model).eval()
    for conv_name, bn_name in find_conv_bn_pairs(model):
        conv, bn = model.get_submodule(conv_name), model.get_submodule(bn_name)
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps) if bn.affine else torch.rsqrt(bn.running_var + bn.eps)
        shift = (bn.bias if bn.affine else 0) - bn.running_mean * scale
        # Output channels are dim 0 of a convolution's weight and dim 1 of a transposed one's.
        axis = 1 if isinstance(conv, nn.modules.conv._ConvTransposeNd) else 0
        shape = [1] * conv.weight.ndim
        shape[axis] = -1
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        conv.weight.copy_(conv.weight * scale.view(shape))
        conv.bias = nn.Parameter(bias * scale + shift)
        _set_submodule(model, bn_name, nn.Identity())
    zero_subnormals(model)
    return model


# --- transposed convolution as 1x1 convolution + pixel shuffle ----------------------------------

class PixelShuffleDeconv(nn.Module):
    """Same output as ``nn.ConvTranspose2d(c, o, k, stride=k)``: 1x1 conv to o*k*k, pixel shuffle."""

    def __init__(self, deconv: nn.ConvTranspose2d):
        super().__init__()
        k = deconv.stride[0]
        in_chs, out_chs = deconv.in_channels, deconv.out_channels
        self.upscale = k
        self.conv = nn.Conv2d(in_chs, out_chs * k * k, 1, bias=deconv.bias is not None)
        with torch.no_grad():
            # ConvTranspose weight (in, out, ky, kx) -> 1x1 weight (out*k*k, in), in the order
            # pixel_shuffle reads channels: output channel o, then row offset ky, then column kx.
            self.conv.weight.copy_(deconv.weight.permute(1, 2, 3, 0).reshape(out_chs * k * k, in_chs, 1, 1))
            if deconv.bias is not None:
                self.conv.bias.copy_(deconv.bias.repeat_interleave(k * k))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.pixel_shuffle(self.conv(x), self.upscale)


def find_shuffle_deconvs(model: nn.Module) -> list[str]:
    """Names of the transposed convolutions that ``pixel_shuffle_deconvs`` replaces."""
    return [name for name, m in model.named_modules()
            if type(m) is nn.ConvTranspose2d and m.groups == 1 and m.dilation == (1, 1)
            and m.padding == (0, 0) and m.output_padding == (0, 0)
            and m.kernel_size == m.stride and m.stride[0] == m.stride[1]]


def pixel_shuffle_deconvs(model: nn.Module) -> nn.Module:
    """A copy of ``model`` with every kernel == stride transposed convolution replaced."""
    model = copy.deepcopy(model)
    for name in find_shuffle_deconvs(model):
        _set_submodule(model, name, PixelShuffleDeconv(model.get_submodule(name)))
    return model


# --- how to run a model: variants and the runner -------------------------------------------------

# Every switch a variant can turn on, in the order its name lists them.
VARIANT_TOKENS = {
    "keep_memory": "glibc keeps freed memory (fplnet.runtime.keep_freed_memory): process-wide and not undone, "
                   "set when the runner is built",
    "fold_bn": "BatchNorm folded into the preceding convolution (fold_batchnorm)",
    "shuffle_deconv": "kernel == stride transposed convolutions as 1x1 conv + pixel shuffle",
    "channels_last": "NHWC memory format for weights and activations",
    "bf16": "bfloat16 autocast",
    "fp16": "float16 autocast",
    "compile": "torch.compile (inductor, static shapes), compiled on the first call of each input shape",
    "freeze": "with compile: inductor freezing (weights become constants, prepacked for oneDNN)",
    "cuda_graphs": "the forward captured in a CUDA graph per input shape and replayed; with compile, the "
                   "compiled (fused) forward replayed by inductor's own CUDA graphs (torch.compile's "
                   "mode='reduce-overhead')",
    "torchscript": "torch.jit.trace + freeze + optimize_for_inference, per input shape",
    "onnxruntime": "ONNX export (BN folded) run by onnxruntime on the CPU, all graph optimizations",
    "openvino": "the same ONNX export converted to OpenVINO and run by its CPU plugin, compiled per input shape; "
                "inference precision set to f32 (bf16 with the bf16 switch), never left to the plugin",
    "int8": "with openvino: NNCF post-training INT8 quantization, calibrated on frames of the model's "
            "training split (fplnet.calibration)",
}
BACKENDS = ("torchscript", "onnxruntime", "openvino")

# What fast=True means on the CPU (``Segmenter``, ``fplnet predict``, ``fplnet demo``), from the
# variant studies of docs/benchmarks.md (FPLNet at 512x1024, batch 1, 2-core VMs): the exported
# graph in OpenVINO at f32, where OpenVINO is installed. It was the fastest fp32 path on every
# CPU measured (AMD EPYC 137.2 ms against the compiled torch path's 147.8; Intel Xeon without AMX
# 130.7 against 177.0; Xeon with AMX 111.8 against 125.6), its first call takes half a second
# where inductor's takes 35 s per input shape, and it flushes subnormal floats in its own threads
# whatever the embedding program has set (docs/benchmarks.md: trained activations that turn
# subnormal cost an unflushed Intel core 3.5x in eager torch). Its logits stay within 1e-3 of eager
# fp32 (tests/test_predict.py). Without OpenVINO (it is the ``openvino`` extra) the fast path is
# the best torch one: BN folding, channels_last, torch.compile with freezing. bf16 (autocast, or
# OpenVINO's bf16) is faster still on CPUs with native bf16, but on a trained CamVid FPLNet it
# changes the argmax of more of the pixels than the 0.1% that fast=True may change
# (docs/benchmarks.md), so it is left to an explicit variant. keep_memory is not part of either:
# it changes the whole process, so the library leaves it to its caller, and the commands add it
# (``fast_variant(device, keep_memory=True)``).
CPU_FAST = "openvino"
CPU_FAST_TORCH = "fold_bn+channels_last+compile+freeze"
# On CUDA, FPLNet's ~180 small kernels make the eager forward launch-bound: replaying a CUDA
# graph took an H200 from 8.6 ms to 4.3 ms at 512x1024 (docs/benchmarks.md, GPU section).
CUDA_FAST = "fold_bn+channels_last+cuda_graphs"


@dataclass(frozen=True)
class Variant:
    """One way of running a model, written as its switches joined by '+', e.g.
    ``channels_last+bf16``; ``eager`` is plain fp32 NCHW PyTorch."""
    switches: frozenset = frozenset()

    @classmethod
    def parse(cls, spec: str) -> "Variant":
        tokens = {t.strip() for t in str(spec).split("+") if t.strip()} - {"eager", "fp32"}
        unknown = tokens - set(VARIANT_TOKENS)
        if unknown:
            raise ValueError(f"unknown variant switch(es) {', '.join(sorted(unknown))} in {spec!r}; "
                             f"combine with '+': eager, {', '.join(VARIANT_TOKENS)}")
        if {"bf16", "fp16"} <= tokens:
            raise ValueError(f"variant {spec!r} asks for both bf16 and fp16")
        backends = tokens & set(BACKENDS)
        # OpenVINO takes bf16 as its plugin's inference precision; the other graph backends run fp32 only.
        refused = {"compile", "cuda_graphs", "fp16"} | ({"bf16"} if backends != {"openvino"} else set())
        if len(backends) > 1 or (backends and tokens & refused):
            raise ValueError(f"variant {spec!r}: {' / '.join(sorted(backends))} runs the exported graph; "
                             f"it does not combine with {', '.join(sorted(refused))}")
        # Switches that would change nothing but the name: a run would time one graph twice.
        idle = tokens & {"fold_bn", "channels_last"} if backends else set()
        if idle:
            raise ValueError(f"variant {spec!r}: {' / '.join(sorted(backends))} runs the exported graph, whose "
                             "BatchNorms are always folded and whose memory layout the runtime picks; leave out "
                             f"{', '.join(sorted(idle))}")
        if "int8" in tokens and "openvino" not in tokens:
            raise ValueError(f"variant {spec!r}: int8 is quantization by OpenVINO's tools; write openvino+int8")
        if "freeze" in tokens and "compile" not in tokens:
            raise ValueError(f"variant {spec!r}: freeze is an option of compile; add compile")
        return cls(frozenset(tokens))

    def __contains__(self, switch: str) -> bool:
        return switch in self.switches

    @property
    def name(self) -> str:
        return "+".join(t for t in VARIANT_TOKENS if t in self.switches) or "eager"

    @property
    def backend(self) -> str:
        return next((b for b in BACKENDS if b in self.switches), "torch")

    @property
    def autocast_dtype(self) -> Optional[torch.dtype]:
        if self.backend != "torch":
            return None
        return torch.bfloat16 if "bf16" in self else torch.float16 if "fp16" in self else None

    @property
    def compile_switches(self) -> dict:
        """``runtime.compile_module``'s inductor switches this variant asks for."""
        return {"freeze": "freeze" in self, "cuda_graphs": "cuda_graphs" in self}

    @property
    def cpu_only(self) -> bool:
        """The exported-graph backends (onnxruntime, OpenVINO) run here on the CPU only."""
        return self.backend in ("onnxruntime", "openvino")

    @property
    def needs_calibration(self) -> bool:
        """INT8 variants quantize the model on calibration frames when the runner is built."""
        return "int8" in self.switches

    def __str__(self) -> str:
        return self.name


def fast_variant(device, keep_memory: bool = False) -> Variant:
    """The variant ``fast=True`` means on ``device``: ``CUDA_FAST`` on a GPU; on the CPU
    ``CPU_FAST`` (OpenVINO f32) where OpenVINO is installed and loads
    (``fplnet.openvino_backend.runs_here``), else ``CPU_FAST_TORCH``.
    ``keep_memory=True`` adds the process-wide allocator switch on the CPU, where it pays
    (docs/benchmarks.md); the commands ask for it, the library does not. On CUDA the activations
    live on the GPU and it changes nothing."""
    if torch.device(device).type == "cuda":
        return Variant.parse(CUDA_FAST)
    from .openvino_backend import runs_here   # imports OpenVINO only when it is installed
    cpu_fast = CPU_FAST if runs_here() else CPU_FAST_TORCH
    return Variant.parse(f"keep_memory+{cpu_fast}" if keep_memory else cpu_fast)


def resolve_variant(spec, device="auto", keep_memory: bool = False) -> tuple[Variant, torch.device]:
    """A variant as every command and ``Segmenter`` accept it -> (the Variant, the device it runs on).

    ``spec`` is a Variant, a spec such as ``openvino+int8``, or ``fast``: the device's fast path
    (``fast_variant``; ``keep_memory`` as there). ``device`` is a name for ``resolve_device``.
    ``auto`` means the CPU for the exported-graph backends (onnxruntime, OpenVINO), which run
    there only, so that ``--variant openvino`` works unchanged on a machine with a GPU; for the
    others it means CUDA when one is visible, as everywhere."""
    name = str(device).strip().lower()
    if isinstance(spec, Variant):
        variant = spec
    elif str(spec).strip() == "fast":
        variant = None
    else:
        variant = Variant.parse(str(spec))
    if name == "auto" and variant is not None and variant.cpu_only:
        name = "cpu"
    resolved = resolve_device(name)
    return (variant or fast_variant(resolved, keep_memory)), resolved


def prepare_model(model: nn.Module, variant: Variant) -> nn.Module:
    """The rewrites and memory format of ``variant`` applied to an eval-mode copy of ``model``."""
    model = copy.deepcopy(model).eval()
    if "fold_bn" in variant or variant.backend != "torch":
        # Exported graphs always get the exact BN folding: it is what `fplnet export` ships.
        model = fold_batchnorm(model)
    if "shuffle_deconv" in variant:
        model = pixel_shuffle_deconvs(model)
    if "channels_last" in variant:
        model = model.to(memory_format=torch.channels_last)
    for p in model.parameters():
        p.requires_grad_(False)
    return model


class InferenceRunner:
    """Runs ``model`` the way ``variant`` says.

    Call it with a normalized float32 NCHW batch; it returns the logits (N, C, H, W) on
    ``device``, in bfloat16 or float16 when the variant autocasts (their argmax is the same as
    that of the float32 copy, which would cost a 40 MB conversion at 512x1024). Per-shape work (compiling, tracing, capturing a CUDA graph) happens on the first
    call with a new input shape and is added to ``setup_seconds`` (with that first call).
    If torch.compile fails (no working C++ compiler, an unsupported op), the runner warns once
    and goes on uncompiled.

    ``calibration``: for an INT8 variant (``openvino+int8``), the frames it is quantized on when
    the runner is built, normalized float32 (1, 3, H, W) at the network's size: a
    ``fplnet.calibration.CalibrationSet`` (whose description ``backend_info`` reports) or a list.
    """

    def __init__(self, model: nn.Module, variant="eager", device="cpu", threads: Optional[int] = None,
                 calibration=None, ignored_scope: Optional[dict] = None):
        self.variant = variant if isinstance(variant, Variant) else Variant.parse(variant)
        self.device = torch.device(device)
        if "cuda_graphs" in self.variant and self.device.type != "cuda":
            raise ValueError(f"variant {self.variant}: CUDA graphs need a CUDA device")
        if self.variant.cpu_only and self.device.type != "cpu":
            raise ValueError(f"variant {self.variant}: the {self.variant.backend} backend here runs on the CPU only; "
                             "pass --device cpu (device='cpu')")
        if self.variant.needs_calibration and calibration is None:
            raise ValueError(f"variant {self.variant} quantizes the model and needs calibration frames: Segmenter and "
                             "fplnet predict / evaluate / benchmark take them from --calib-data (calib_data=) or the "
                             "checkpoint's training split")
        self.calibration = getattr(calibration, "description", None) if self.variant.needs_calibration else None
        self.threads = threads or torch.get_num_threads()
        self.setup_seconds = 0.0
        # Per input shape: its TorchScript trace or CUDA graph, or None (only "seen"), newest last.
        self._per_shape: OrderedDict = OrderedDict()
        self._shapes_seen: set = set()
        self._sizes_warned = False
        started = time.perf_counter()
        if "keep_memory" in self.variant:
            keep_freed_memory()
        self.model = prepare_model(model, self.variant).to(self.device)
        self._compiled = None
        if "compile" in self.variant:
            self._compiled = compile_module(self.model, dynamic=False, **self.variant.compile_switches)
        self._session = self._onnxruntime_session() if self.variant.backend == "onnxruntime" else None
        self._openvino = None
        if self.variant.backend == "openvino":
            from .openvino_backend import OpenVINORunner
            frames = None if calibration is None else list(getattr(calibration, "frames", calibration))
            self._openvino = OpenVINORunner.from_torch(self.model, self.threads, self.openvino_precision,
                                                       [np.asarray(f, dtype=np.float32) for f in frames]
                                                       if frames is not None else None, ignored_scope,
                                                       max_shapes=self.MAX_SHAPES)
        self.setup_seconds += time.perf_counter() - started

    @property
    def openvino_precision(self) -> str:
        return "bf16" if "bf16" in self.variant else "f32"

    def backend_info(self) -> dict:
        """What ran: the backend and, for OpenVINO, its version, requested and executed precision
        (per compiled layer) and, for INT8, the quantization points and calibration set."""
        info = {"backend": self.variant.backend}
        if self._openvino is not None:
            info.update(self._openvino.info())
        if self.calibration is not None:
            info["calibration"] = self.calibration
        return info

    # -- backends --
    def _onnxruntime_session(self):
        return onnxruntime_session(export_onnx_bytes(self.model), self.threads, "the onnxruntime variant")

    def _torchscript(self, x: torch.Tensor):
        traced = trace_torchscript(self.model, x)
        return torch.jit.optimize_for_inference(torch.jit.freeze(traced.eval()))

    def _cuda_graph(self, x: torch.Tensor):
        static_input = x.clone()
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            for _ in range(3):  # cuDNN picks its algorithms before the capture
                self._forward(static_input)
        torch.cuda.current_stream(self.device).wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_output = self._forward(static_input)
        return graph, static_input, static_output

    def _forward(self, x: torch.Tensor, model: Optional[nn.Module] = None) -> torch.Tensor:
        model = self.model if model is None else model
        dtype = self.variant.autocast_dtype
        with torch.autocast(self.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
            return model(x)

    def _compiled_forward(self, x: torch.Tensor) -> torch.Tensor:
        try:
            return self._forward(x, self._compiled)
        except Exception as err:  # inductor raises many types: compiler missing, lowering errors...
            warnings.warn(f"torch.compile failed ({type(err).__name__}: {str(err).splitlines()[0][:200]}); "
                          "running this model uncompiled", RuntimeWarning, stacklevel=3)
            self._compiled = None
            return self._forward(x)

    # At most this many input shapes keep their trace, eager-captured CUDA graph (each such graph
    # holds its own GPU memory pool; inductor keeps its own graphs for compile+cuda_graphs) or
    # OpenVINO compiled model; the least recently used goes first. A model run at one
    # ``eval_size`` needs one.
    MAX_SHAPES = 8

    def _make_room_for_a_shape(self, key: tuple):
        make_room(self._per_shape, self.MAX_SHAPES)
        self._shapes_seen.add(key)
        if self._compiled is not None and not self._sizes_warned and len(self._shapes_seen) > self.MAX_SHAPES:
            # torch.compile (dynamic=False) compiles once per shape up to dynamo's limit, then
            # runs further shapes uncompiled.
            self._sizes_warned = True
            warnings.warn(f"more than {self.MAX_SHAPES} input sizes: the compiled model recompiles for each "
                          "and, past torch's limit, runs them uncompiled; set eval_size (fplnet predict "
                          "--eval-size HxW) so the network runs at one size", RuntimeWarning, stacklevel=3)

    @torch.inference_mode()
    def labels(self, x: torch.Tensor, size) -> Optional[torch.Tensor]:
        """For the OpenVINO variants: the labels (N, *size) of the logits resized to ``size``,
        resize and argmax computed by OpenVINO (``OpenVINORunner.labels``); None for the others,
        whose caller resizes the logits and takes the argmax in torch. A first call per input
        shape and size compiles, and its time goes to ``setup_seconds``."""
        if self._openvino is None:
            return None
        from .openvino_backend import call_counting_setup
        labels, setup = call_counting_setup(self._openvino, self._openvino.labels,
                                            x.to(self.device, torch.float32), size)
        self.setup_seconds += setup
        return labels

    # -- the call --
    @torch.inference_mode()
    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = x.to(self.device, torch.float32)
        if "channels_last" in self.variant:
            x = x.contiguous(memory_format=torch.channels_last)
        key = tuple(x.shape)
        first = key not in self._per_shape
        if first:
            self._make_room_for_a_shape(key)
        else:
            self._per_shape.move_to_end(key)
        started = time.perf_counter()
        if self._session is not None:
            out = torch.from_numpy(self._session.run(None, {INPUT_NAME: x.contiguous().numpy()})[0])
        elif self._openvino is not None:
            from .openvino_backend import call_counting_setup
            out, setup = call_counting_setup(self._openvino, self._openvino, x)
            first = setup > 0   # OpenVINO's cache decides, whatever this runner's list of shapes says
        elif self.variant.backend == "torchscript":
            if first:
                self._per_shape[key] = self._torchscript(x)
            out = self._per_shape[key](x)
        elif "cuda_graphs" in self.variant and "compile" not in self.variant:
            if first:
                self._per_shape[key] = self._cuda_graph(x)
            graph, static_input, static_output = self._per_shape[key]
            static_input.copy_(x)
            graph.replay()
            out = static_output.clone()  # the next replay overwrites static_output
        elif self._compiled is not None:
            out = self._compiled_forward(x)
            if "cuda_graphs" in self.variant:
                out = out.clone()        # inductor's graph pool is reused by the next replay
        else:
            out = self._forward(x)
        if first:
            self._per_shape.setdefault(key, None)
            if self.device.type == "cuda":
                torch.cuda.synchronize(self.device)
            self.setup_seconds += time.perf_counter() - started
        return out
