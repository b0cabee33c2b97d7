"""`fplnet export`: a checkpoint to ONNX, TorchScript or OpenVINO IR (fp32 or INT8), ready for deployment.

The exported graph takes a normalized float32 RGB batch ``image`` (N, 3, H, W) and returns
``logits`` (N, C, H, W); batch, height and width are free. Preprocessing is *not* in the graph:
the checkpoint's inference spec (``fplnet.spec``: mean, std, class names, palette and
``eval_size`` or ``eval_short_side``, the size to run the network at) travels with the file as
JSON (ONNX: the ``metadata_props`` entry "fplnet"; TorchScript: the extra file "fplnet.json";
OpenVINO: the model's ``rt_info`` entry "fplnet" inside the .xml), so a consumer can normalize and resize its
input and colour the argmax without fplnet installed.

OpenVINO (``--format openvino --output NAME.xml``) writes NAME.xml and NAME.bin with fp32
weights, converted from the same ONNX graph. ``--int8`` quantizes it with NNCF post-training
quantization calibrated on ``--calib-size`` frames of the model's training split
(``fplnet.calibration``: ``--calib-data`` when given, else the data set the checkpoint records if
its folder is reachable), and records in the metadata the calibration set and the accuracy delta:
fp32 vs INT8 argmax agreement and mIoU on ``--check-frames`` frames of the validation split, chosen
first and left out of calibration (a plain image folder has no labels: agreement only, on frames
held out of it). An existing output is replaced only with ``--overwrite``.

Every BatchNorm that directly follows a convolution is folded into it first
(``fplnet.fast.fold_batchnorm``). In FPLNet that is only the two decoder upsamplers: the other
BNs follow a concatenation or a residual addition and stay in the graph. The graph holds no
subnormal weights (``load_model`` and ``fold_batchnorm`` zero them), so runtimes that keep IEEE
subnormals (plain onnxruntime, OpenVINO by default, TorchScript in a process that has not switched
on flush-to-zero) run it at full speed on Intel CPUs too.

The graphs themselves come from ``fplnet.graph_export`` (ONNX via the TorchScript-based
exporter, TorchScript by tracing; the reasons are there), the same code the runner's
``onnxruntime`` and ``torchscript`` variants use. After writing, the file is run once by
onnxruntime (or TorchScript, or OpenVINO) at ``--size`` (default: the checkpoint's network size
for a 360x480 input) and at a second size, against the PyTorch model, and the differences printed.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from .. import __version__
from ..checkpoint import weights_digest
from ..calibration import calibration_set, evenly_spaced, recorded_data, training_files
from ..fast import find_conv_bn_pairs, fold_batchnorm
from ..exported import TORCHSCRIPT_METADATA_FILE, load_exported
from ..graph_export import (GRAPH_SUFFIXES, INPUT_NAME, METADATA_KEY, OUTPUT_NAME, export_onnx_bytes,
                            graph_format, trace_torchscript)
from ..io import atomic_write, atomic_write_bytes
from ..models import load_model
from ..runtime import require_package
from ..spec import InferenceSpec
from .arguments import add_calibration_arguments, checkpoint_name_or_file, image_size, positive_int, writable_file

EXPORT_FORMAT = "fplnet-export/1"


# Opsets at which every registered model exports and matches PyTorch (max |logit diff| < 1e-7
# under onnxruntime at opset 11). Below 11 the exporter either fails (opset 9: no Slice with
# dynamic bounds for the decoder's crop; ENet's pad at opset 10) or, worse, writes a bilinear
# Upsample whose sampling is not PyTorch's (the encoder-only FPLNet, ESPNet-C, CGNet).
ONNX_OPSETS = range(11, 21)
DEFAULT_OPSET = 17
DEFAULT_CHECK_FRAMES = 20
FORMATS = ("onnx", "torchscript", "openvino")


def add_arguments(parser):
    parser.add_argument("--checkpoint", type=checkpoint_name_or_file, required=True,
                        help="checkpoint file or shipped weights name (e.g. camvid)")
    parser.add_argument("--format", choices=FORMATS, default="onnx")
    parser.add_argument("--output", type=writable_file, required=True,
                        help="file to write: NAME.onnx for onnx, NAME.pt for torchscript, NAME.xml for openvino "
                             "(NAME.bin is written beside it)")
    # --opset and --check-frames default to None so that run() can refuse them where they do nothing.
    parser.add_argument("--opset", type=int, choices=ONNX_OPSETS, default=None, metavar="11..20",
                        help=f"onnx: ONNX opset, 11 to 20 (default {DEFAULT_OPSET})")
    parser.add_argument("--size", type=image_size, default=None,
                        help="HEIGHTxWIDTH of the example input used to trace and to verify (default: the checkpoint's "
                             "network size for a 360x480 input); the exported graph accepts any size")
    parser.add_argument("--int8", action="store_true",
                        help="openvino: quantize to INT8 (NNCF post-training quantization)")
    add_calibration_arguments(parser, "--int8", "the training split the checkpoint records, if that folder is reachable")
    parser.add_argument("--check-frames", type=positive_int, default=None, metavar="N",
                        help="--int8: validation frames on which fp32 and INT8 are compared for the metadata "
                             f"(default {DEFAULT_CHECK_FRAMES})")
    parser.add_argument("--no-fold-bn", action="store_true", help="keep every BatchNorm as a separate op")
    parser.add_argument("--no-verify", action="store_true", help="skip running the exported file against PyTorch")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace an existing --output (and, for openvino, the NAME.bin beside it)")


def export_metadata(ckpt: dict, folded: int, **extra) -> dict:
    """What a consumer of the exported file needs besides the graph: the inference spec's fields
    at the top level (mean, std, class_names, palette, eval_size, eval_short_side) and the spec as a whole."""
    spec = InferenceSpec.from_checkpoint(ckpt).to_dict()
    return {
        "format": EXPORT_FORMAT,
        "fplnet_version": __version__,
        "model_name": ckpt["model_name"],
        "num_classes": int(ckpt["num_classes"]),
        "dataset": spec["dataset"],
        "class_names": spec["class_names"],
        "palette": spec["palette"],
        "mean": spec["mean"],
        "std": spec["std"],
        "eval_size": spec["eval_size"],
        "eval_short_side": spec["eval_short_side"],
        "inference_spec": spec,
        "input": {"name": INPUT_NAME, "layout": "NCHW", "dtype": "float32", "channels": "RGB",
                  "preprocess": "x / 255, then (x - mean) / std per channel, then resized (antialiased "
                                "bilinear) to eval_size when it is set, else scaled with the aspect ratio kept "
                                "so that the shorter side is eval_short_side when that is set"},
        "output": {"name": OUTPUT_NAME, "layout": "NCHW", "meaning": "logits; argmax over C gives train ids"},
        "folded_batchnorms": folded,
        # Matches the file to its checkpoint (fplnet benchmark --exported checks it).
        "source_weights_sha256": weights_digest(ckpt["state_dict"]),
        # load_model and fold_batchnorm zero them (fplnet.runtime.zero_subnormals): a runtime that
        # keeps IEEE subnormals would otherwise slow down on each, several times over on Intel CPUs.
        "subnormal_weights": "zeroed",
        **extra,
    }


def write_onnx(model: nn.Module, path: Path, metadata: dict, opset: int, example_size) -> None:
    onnx = require_package("onnx", "--format onnx")
    try:
        proto = onnx.load_from_string(export_onnx_bytes(model, opset, example_size))
    except torch.onnx.errors.OnnxExporterError as error:   # an op this opset cannot express
        message = " ".join(str(error).splitlines()[:1])
        raise ValueError(f"--opset {opset}: this model does not export at that opset ({message}); "
                         f"use a later one (default {DEFAULT_OPSET})") from error
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


def write_openvino(ov_model, path: Path, metadata: dict) -> None:
    from ..openvino_backend import save_ir
    save_ir(ov_model, path, metadata)


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


# --- INT8: calibration and the accuracy delta ---------------------------------------------------------

def check_frames(ckpt: dict, data, count: int) -> tuple[list, list, dict, list]:
    """(uint8 RGB images, uint8 masks or [], description, their files): the frames the INT8 model is
    scored on, chosen before calibration so that calibration leaves them out (``calibration_set``'s
    ``exclude``). ``count`` frames evenly spaced over the validation split the checkpoint records,
    under the data set root calibration draws from; for a plain folder of images, or a root whose
    validation split cannot be read (said in the description), frames of the calibration pool
    without labels. A check split the model trained on (train + val models) is marked as seen."""
    from ..data import DatasetError, build_dataset
    from ..data.base import read_rgb_image
    recorded = recorded_data(ckpt)
    pool, source, data_root = training_files(ckpt, data)
    note = "no labelled validation split: argmax agreement only, on frames held out of calibration"
    if data_root is not None:
        try:
            dataset = build_dataset(recorded["dataset"], data_root, recorded["val_split"])
        except DatasetError as error:
            note = (f"the validation split {recorded['val_split']!r} under {data_root} could not be read ({error}): "
                    "argmax agreement only, on frames held out of calibration")
        else:
            indices = evenly_spaced(len(dataset), count)
            pairs = [dataset.load_raw(i) for i in indices]
            paths = [dataset.files[i][0] for i in indices]
            trained = {Path(p).resolve() for p in pool}
            seen = sum(Path(p).resolve() in trained for p in paths)
            described = {"dataset": recorded["dataset"], "split": recorded["val_split"], "frames": len(pairs),
                         "of": len(dataset), "selection": "evenly spaced in file-name order",
                         "left_out_of_calibration": True, "seen_in_training": seen}
            if seen:
                described["note"] = (f"{seen} of the {len(pairs)} check frames are in the model's training split "
                                     f"({recorded['train_split']}): the mIoU is on data it trained on")
            return [image for image, _ in pairs], [mask for _, mask in pairs], described, paths
    # Every other frame of the pool at most, so that calibration keeps at least half of it.
    chosen = [pool[i] for i in evenly_spaced(len(pool), min(count, len(pool) // 2))]
    if not chosen:
        raise ValueError(f"calibration data {source['root']}: {len(pool)} image(s) are too few to both calibrate "
                         "and check the INT8 model; pass a folder with more frames (--calib-data)")
    return ([read_rgb_image(path, upright=True) for path in chosen], [],   # as calibration_set reads a folder
            {"folder": source["root"], "frames": len(chosen), "labels": False, "left_out_of_calibration": True,
             "note": note}, chosen)


@torch.inference_mode()
def accuracy_delta(fp32, int8, spec: InferenceSpec, images: list, masks: list, ignore_index: int) -> dict:
    """fp32 vs INT8 on the check frames: share of pixels whose argmax agrees and, with labels,
    the mIoU of each (in %, over the frames together), each frame run as ``Segmenter`` runs it."""
    from ..metrics import ConfusionMatrix
    matrices = {name: ConfusionMatrix(spec.num_classes, ignore_index=ignore_index) for name in ("fp32", "int8")}
    same = total = 0
    for index, image in enumerate(images):
        x = spec.preprocess([image])
        labels = {name: spec.to_input_size(run(spec.to_network(x)), x.shape[-2:]).argmax(1)
                  for name, run in (("fp32", fp32), ("int8", int8))}
        same += int((labels["fp32"] == labels["int8"]).sum())
        total += labels["fp32"].numel()
        if masks:
            target = torch.from_numpy(masks[index]).long()[None]
            for name in matrices:
                matrices[name].update(labels[name], target)
    delta = {"argmax_agreement": round(same / total, 6)}
    if masks:
        miou = {name: round(float(m.compute()["miou"]) * 100, 3) for name, m in matrices.items()}
        delta.update({"miou_fp32": miou["fp32"], "miou_int8": miou["int8"],
                      "miou_delta": round(miou["int8"] - miou["fp32"], 3)})
    return delta


def quantize_for_export(deploy: nn.Module, ckpt: dict, args) -> tuple[object, dict]:
    """The INT8 OpenVINO model and the metadata that describes its quantization."""
    from ..openvino_backend import OpenVINORunner, fake_quantize_count, keep_in_float
    spec = InferenceSpec.from_checkpoint(ckpt)
    images, masks, checked, checked_files = check_frames(ckpt, args.calib_data, args.check_frames or DEFAULT_CHECK_FRAMES)
    calibration = calibration_set(ckpt, args.calib_data, args.calib_size, exclude=checked_files)
    print(f"calibrating on {calibration.description['frames']} frames of {calibration.description['root']} "
          f"({calibration.description.get('split', 'image folder')})", flush=True)
    threads = torch.get_num_threads()
    fp32 = OpenVINORunner.from_torch(deploy, threads)
    int8 = fp32.quantized(calibration.frames, keep_in_float(deploy))
    delta = accuracy_delta(fp32, int8, spec, images, masks, spec.info.ignore_index)
    return int8.ov_model, {"int8": {
        **int8.quantization, "fake_quantize_ops": fake_quantize_count(int8.ov_model),
        "float_layers_run_at": "INFERENCE_PRECISION_HINT f32",
        "calibration": calibration.description, "check_frames": checked, "accuracy_delta": delta}}


def refuse_unused_flags(args) -> None:
    """Flags that would do nothing for the format asked for are refused, not silently dropped: the
    user meant something else (the IR is always converted from opset 17, whatever --opset says)."""
    if args.opset is not None and args.format != "onnx":
        raise ValueError(f"--opset {args.opset} sets the ONNX opset of --format onnx; leave it out for "
                         f"--format {args.format}")
    for flag, value in (("--calib-data", args.calib_data), ("--calib-size", args.calib_size),
                        ("--check-frames", args.check_frames)):
        if value is not None and not args.int8:
            raise ValueError(f"{flag} sets up INT8 calibration; add --int8 (with --format openvino)")


def run(args) -> int:
    # Readers tell the formats apart by the suffix (read_metadata, load_exported).
    wanted_suffix = GRAPH_SUFFIXES.get(args.format)
    if graph_format(args.output) != (args.format if wanted_suffix else None):
        wanted = f"end in {wanted_suffix}" if wanted_suffix else "not end in .onnx or .xml (e.g. NAME.pt)"
        raise ValueError(f"--output {args.output}: a --format {args.format} file must {wanted}")
    if args.int8 and args.format != "openvino":
        raise ValueError("--int8 quantizes an OpenVINO model; add --format openvino (and --output NAME.xml)")
    written = [args.output] + ([args.output.with_suffix(".bin")] if args.format == "openvino" else [])
    folders = [str(path) for path in written if path.is_dir()]
    if folders:
        raise ValueError(f"--output: {folders[0]} is a folder, where the export writes a file; choose another --output")
    existing = [str(path) for path in written if path.exists()]
    if existing and not args.overwrite:
        raise ValueError(f"--output: {' and '.join(existing)} already exist(s); pass --overwrite to replace, "
                         "or choose another --output")
    refuse_unused_flags(args)
    model, ckpt = load_model(args.checkpoint, device="cpu")
    spec = InferenceSpec.from_checkpoint(ckpt)
    size = args.size or spec.network_size((360, 480))
    pairs = find_conv_bn_pairs(model)
    total_bn = sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    folded = 0 if args.no_fold_bn else len(pairs)
    deploy = model if args.no_fold_bn else fold_batchnorm(model)
    print(f"{ckpt['model_name']}: {folded} of {total_bn} BatchNorm layers folded into the preceding convolution"
          + ("" if args.no_fold_bn else f" ({', '.join(b for _, b in pairs) or 'none follows a convolution directly'})"))

    output = args.output
    if args.format == "onnx":
        opset = args.opset or DEFAULT_OPSET
        metadata = export_metadata(ckpt, folded, opset=opset)
        write_onnx(deploy, output, metadata, opset, size)
    elif args.format == "openvino":
        from ..openvino_backend import require, to_openvino
        # NNCF stores the weights of the layers it quantizes as int8 constants; the rest stay f32.
        extra = {"openvino": require("openvino").__version__,
                 "weights_precision": "int8 (quantized layers), f32 (layers kept in float)" if args.int8 else "f32",
                 "run_at": "INFERENCE_PRECISION_HINT f32 (the CPU plugin would pick bf16 by itself where the CPU has it)"}
        if args.int8:
            ov_model, quantization = quantize_for_export(deploy, ckpt, args)
            extra.update(quantization)
        else:
            ov_model = to_openvino(deploy)
        metadata = export_metadata(ckpt, folded, **extra)
        write_openvino(ov_model, output, metadata)
    else:
        metadata = export_metadata(ckpt, folded)
        write_torchscript(deploy, output, metadata, size)
    written = output.stat().st_size + (output.with_suffix(".bin").stat().st_size if args.format == "openvino" else 0)
    print(f"wrote {output}{' and ' + str(output.with_suffix('.bin')) if args.format == 'openvino' else ''} "
          f"({written / 1e6:.2f} MB, {args.format}{' INT8' if args.int8 else ''}, input 'image' N x 3 x H x W, "
          f"output 'logits' N x {ckpt['num_classes']} x H x W; inference spec under '{METADATA_KEY}'"
          + f", network at {spec.describe_size()})")
    if args.int8:
        delta = metadata["int8"]["accuracy_delta"]
        checked = metadata["int8"]["check_frames"]
        print(f"  INT8 vs fp32 on {checked['frames']} check frames: argmax agreement "
              f"{100 * delta['argmax_agreement']:.2f}%"
              + (f", mIoU {delta['miou_fp32']:.2f} -> {delta['miou_int8']:.2f} ({delta['miou_delta']:+.2f})"
                 if "miou_fp32" in delta else ""))

    if not args.no_verify:
        worst = 0.0
        for shape, result in verify(model, output, size):
            worst = max(worst, result["max_abs_diff"])
            print(f"  check {'x'.join(map(str, shape))}: max |logit| {result['max_abs_logit']:.1f}, "
                  f"max |logits diff| {result['max_abs_diff']:.2e}, "
                  f"argmax agreement {100 * result['argmax_agreement']:.3f}%"
                  # Random input tells whether the graph runs at any shape; INT8's accuracy is measured
                  # on real frames (the line above), not on noise, where its argmax drifts further.
                  + (" (random input: INT8's accuracy is the check-frames line)" if args.int8 else ""))
        if worst > 1e-3 and not args.int8:
            print(f"warning: the exported model differs from PyTorch by up to {worst:.2e}", flush=True)
    return 0
