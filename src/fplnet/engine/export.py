"""`fplnet export`: a checkpoint to ONNX or TorchScript, ready for deployment.

The exported graph takes a normalized float32 RGB batch ``image`` (N, 3, H, W) and returns
``logits`` (N, C, H, W); batch, height and width are free. Preprocessing is *not* in the graph:
the dataset's mean, std, class names and palette travel with the file as JSON (ONNX: the
``metadata_props`` entry "fplnet"; TorchScript: the extra file "fplnet.json"), so a consumer
can normalize its input and colour the argmax without fplnet installed.

Every BatchNorm that directly follows a convolution is folded into it first
(``fplnet.fast.fold_batchnorm``). In FPLNet that is only the two decoder upsamplers: the other
BNs follow a concatenation or a residual addition and stay in the graph.

The graphs themselves come from ``fplnet.graph_export`` (ONNX via the TorchScript-based
exporter, TorchScript by tracing; the reasons are there), the same code the runner's
``onnxruntime`` and ``torchscript`` variants use. After writing, the file is run once by
onnxruntime (or TorchScript) at ``--size`` and at a second size, against the PyTorch model, and
the differences printed.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from .. import __version__
from ..fast import find_conv_bn_pairs, fold_batchnorm
from ..graph_export import INPUT_NAME, OUTPUT_NAME, export_onnx_bytes, trace_torchscript
from ..io import atomic_write, atomic_write_bytes
from ..models import load_model
from .arguments import checkpoint_name_or_file, image_size, writable_file

EXPORT_FORMAT = "fplnet-export/1"
METADATA_KEY = "fplnet"
TORCHSCRIPT_METADATA_FILE = "fplnet.json"


# The TorchScript-based ONNX exporter (graph_export) supports these opsets.
ONNX_OPSETS = range(9, 21)


def add_arguments(parser):
    parser.add_argument("--checkpoint", type=checkpoint_name_or_file, required=True,
                        help="checkpoint file or shipped weights name (e.g. camvid)")
    parser.add_argument("--format", choices=("onnx", "torchscript"), default="onnx")
    parser.add_argument("--output", type=writable_file, required=True,
                        help="file to write: NAME.onnx for onnx, NAME.pt for torchscript")
    parser.add_argument("--opset", type=int, choices=ONNX_OPSETS, default=17, metavar="9..20",
                        help="ONNX opset, 9 to 20 (default 17)")
    parser.add_argument("--size", type=image_size, default="360x480",
                        help="HEIGHTxWIDTH of the example input used to trace and to verify (default 360x480); "
                             "the exported graph accepts any size")
    parser.add_argument("--no-fold-bn", action="store_true", help="keep every BatchNorm as a separate op")
    parser.add_argument("--no-verify", action="store_true", help="skip running the exported file against PyTorch")


def export_metadata(ckpt: dict, folded: int, **extra) -> dict:
    """What a consumer of the exported file needs besides the graph."""
    dataset = ckpt.get("dataset") or {}
    return {
        "format": EXPORT_FORMAT,
        "fplnet_version": __version__,
        "model_name": ckpt["model_name"],
        "num_classes": int(ckpt["num_classes"]),
        "dataset": dataset,
        "class_names": dataset.get("class_names"),
        "palette": dataset.get("palette"),
        "mean": dataset.get("mean"),
        "std": dataset.get("std"),
        "input": {"name": INPUT_NAME, "layout": "NCHW", "dtype": "float32", "channels": "RGB",
                  "preprocess": "x / 255, then (x - mean) / std per channel"},
        "output": {"name": OUTPUT_NAME, "layout": "NCHW", "meaning": "logits; argmax over C gives train ids"},
        "folded_batchnorms": folded,
        **extra,
    }


def write_onnx(model: nn.Module, path: Path, metadata: dict, opset: int, example_size) -> None:
    import onnx
    proto = onnx.load_from_string(export_onnx_bytes(model, opset, example_size))
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    proto.producer_name = "fplnet"
    proto.producer_version = __version__
    onnx.checker.check_model(proto)
    atomic_write_bytes(path, proto.SerializeToString())


def write_torchscript(model: nn.Module, path: Path, metadata: dict, example_size) -> None:
    traced = trace_torchscript(model, torch.zeros(1, 3, *example_size))
    extra = {TORCHSCRIPT_METADATA_FILE: json.dumps(metadata)}
    atomic_write(path, lambda file: torch.jit.save(traced, file, _extra_files=extra))


def read_metadata(path) -> dict:
    """The JSON that ``fplnet export`` stored in an .onnx or TorchScript file."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnx
        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        if METADATA_KEY not in props:
            raise ValueError(f"{path} has no '{METADATA_KEY}' metadata; was it written by `fplnet export`?")
        return json.loads(props[METADATA_KEY])
    files = {TORCHSCRIPT_METADATA_FILE: ""}
    torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    if not files[TORCHSCRIPT_METADATA_FILE]:
        raise ValueError(f"{path} has no {TORCHSCRIPT_METADATA_FILE}; was it written by `fplnet export`?")
    return json.loads(files[TORCHSCRIPT_METADATA_FILE])


def load_exported(path, threads: int = 0):
    """A callable float32 NCHW tensor -> logits tensor for an exported file (onnxruntime on CPU
    for .onnx, ``torch.jit.load`` otherwise)."""
    path = Path(path)
    if path.suffix == ".onnx":
        import onnxruntime
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        return lambda x: torch.from_numpy(session.run(None, {INPUT_NAME: x.contiguous().numpy()})[0])
    module = torch.jit.load(str(path), map_location="cpu").eval()

    def run(x):
        with torch.no_grad():
            return module(x)
    return run


def compare(reference: torch.Tensor, exported: torch.Tensor) -> dict:
    """Largest reference logit (the scale of the difference), max abs difference of the logits and
    the share of pixels whose argmax agrees: the columns of docs/benchmarks.md's export table."""
    return {"max_abs_logit": float(reference.abs().max()), "max_abs_diff": float((reference - exported).abs().max()),
            "argmax_agreement": float((reference.argmax(1) == exported.argmax(1)).float().mean())}


def verify(model: nn.Module, path: Path, size) -> list[tuple[tuple, dict]]:
    """Run the exported file at ``size`` and at a second, odd size, against ``model``."""
    run = load_exported(path)
    results = []
    generator = torch.Generator().manual_seed(0)
    for shape in ((1, 3, *size), (2, 3, size[0] // 2 + 7, size[1] // 2 + 13)):
        x = torch.randn(*shape, generator=generator)
        with torch.no_grad():
            reference = model(x)
        results.append((shape, compare(reference, run(x))))
    return results


def run(args) -> int:
    # Readers tell the two formats apart by the suffix (read_metadata, load_exported).
    if (args.output.suffix == ".onnx") != (args.format == "onnx"):
        wanted = "end in .onnx" if args.format == "onnx" else "not end in .onnx (e.g. NAME.pt)"
        raise ValueError(f"--output {args.output}: a --format {args.format} file must {wanted}")
    size = args.size
    model, ckpt = load_model(args.checkpoint, device="cpu")
    pairs = find_conv_bn_pairs(model)
    total_bn = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    folded = 0 if args.no_fold_bn else len(pairs)
    deploy = model if args.no_fold_bn else fold_batchnorm(model)
    print(f"{ckpt['model_name']}: {folded} of {total_bn} BatchNorm layers folded into the preceding convolution"
          + ("" if args.no_fold_bn else f" ({', '.join(b for _, b in pairs) or 'none follows a convolution directly'})"))

    output = args.output
    if args.format == "onnx":
        metadata = export_metadata(ckpt, folded, opset=args.opset)
        write_onnx(deploy, output, metadata, args.opset, size)
    else:
        metadata = export_metadata(ckpt, folded)
        write_torchscript(deploy, output, metadata, size)
    print(f"wrote {output} ({output.stat().st_size / 1e6:.2f} MB, {args.format}, input 'image' N x 3 x H x W, "
          f"output 'logits' N x {ckpt['num_classes']} x H x W; dataset metadata under '{METADATA_KEY}')")

    if not args.no_verify:
        worst = 0.0
        for shape, result in verify(model, output, size):
            worst = max(worst, result["max_abs_diff"])
            print(f"  check {'x'.join(map(str, shape))}: max |logit| {result['max_abs_logit']:.1f}, "
                  f"max |logits diff| {result['max_abs_diff']:.2e}, "
                  f"argmax agreement {100 * result['argmax_agreement']:.3f}%")
        if worst > 1e-3:
            print(f"warning: the exported model differs from PyTorch by up to {worst:.2e}", flush=True)
    return 0
