"""`fplnet evaluate` and the evaluation loop the trainer uses.

Evaluation is at full label resolution: the network runs on the whole image (resized to
``eval_size``, e.g. 1024x512 for a model trained on half-resolution Cityscapes, or to
``eval_short_side`` with the aspect ratio kept, by ``fplnet.data.resize``'s antialiased
bilinear, the resize ``train_size`` applies in training), the logits are resized bilinearly to
the label's size, and one confusion matrix accumulates every pixel that is not
``ignore_index``. ``fplnet evaluate`` reads mean, std and the sizes from the checkpoint's
inference spec (``fplnet.spec``), as ``Segmenter`` and ``fplnet predict`` do.

``--variant`` evaluates the model the way a deployment runs it (``fplnet.fast.Variant``: e.g.
``onnxruntime``, ``openvino``, ``openvino+int8``). An INT8 variant calibrates on frames of the
checkpoint's training split under ``--data-root`` (or ``--calib-data``), never on the split
being evaluated. ``--checkpoint`` also takes the file deployed, an .onnx or OpenVINO .xml that
``fplnet export`` wrote: it runs as it is, so the mIoU is that of the very file (an INT8 IR
keeps the calibration it was exported with; ``--variant openvino+int8`` quantizes again, on
frames chosen for this split). Export calibrates on the training split without only its check
frames, so for a model trained on the split scored some scored frames may be calibration frames:
evaluate counts them (``calibration_overlap`` in the JSON's ``backend``) and says so.

``--json`` records the confusion matrix's pixel counts beside the IoU, so any other metric can be
computed from the file; ``--plot`` draws it with the per-class IoU (``figures.draw_evaluation``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Optional, Sequence

import torch
from torch import nn

from ..data import DatasetError, build_dataset, list_datasets
from ..data.resize import network_input_size, resize_images, resize_logits
from ..data.transforms import normalize
from ..io import atomic_write_json
from ..metrics import ConfusionMatrix
from ..runtime import autocast
from .arguments import (add_calibration_arguments, add_network_size_arguments, add_tta_arguments,
                        checkpoint_or_exported_file, device_name, existing_dir, png_plot_file, positive_int,
                        variant_spec, writable_file)


@torch.inference_mode()
def evaluate(model, images: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], num_classes: int,
             mean, std, device, batch_size: int = 4, eval_size: Optional[tuple] = None, amp: str = "none",
             channels_last: bool = False, indices: Optional[Sequence[int]] = None,
             ignore_index: int = 255, short_side: Optional[int] = None) -> ConfusionMatrix:
    """Confusion matrix of ``model`` over uint8 ``images`` (3xHxW) and ``masks`` (HxW).

    The network runs at ``eval_size``, else at ``short_side`` with the aspect ratio kept, else at
    each image's own size (``fplnet.data.resize.network_input_size``).

    ``model`` is an ``nn.Module`` (put in eval mode for the pass) or any callable from a
    normalized float32 batch to logits, such as a ``fplnet.fast.InferenceRunner``.
    ``indices`` restricts the pass to a shard (one rank's part in distributed evaluation);
    the caller all-reduces the matrix.
    """
    module = model if isinstance(model, nn.Module) else None
    was_training = module is not None and module.training
    if module is not None:
        module.eval()
    matrix = ConfusionMatrix(num_classes, ignore_index=ignore_index, device=device)
    order = list(range(len(images))) if indices is None else list(indices)
    # Images of one batch must share a size; batch consecutive images and split when sizes change.
    batch: list[int] = []
    for pos, i in enumerate(order + [None]):
        if i is not None and (not batch or (len(batch) < batch_size and images[i].shape == images[batch[0]].shape)):
            batch.append(i)
            continue
        if batch:
            x = torch.stack([images[j] for j in batch]).to(device, non_blocking=True).float().div_(255)
            target = torch.stack([masks[j] for j in batch]).to(device, non_blocking=True).long()
            x = normalize(x, mean, std)
            x = resize_images(x, network_input_size(x.shape[-2:], eval_size, short_side))
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, amp):
                logits = model(x)
            logits = resize_logits(logits, target.shape[-2:])
            matrix.update(logits.argmax(1).to(device), target)
        batch = [] if i is None else [i]
    if module is not None:
        module.train(was_training)
    return matrix


def add_arguments(parser):
    parser.add_argument("--checkpoint", type=checkpoint_or_exported_file, required=True,
                        help="checkpoint file or shipped weights name (camvid), or a file `fplnet export` wrote "
                             "(.onnx, OpenVINO .xml), run as it is on the CPU")
    parser.add_argument("--dataset", required=True, choices=list_datasets())
    parser.add_argument("--data-root", type=existing_dir, required=True)
    parser.add_argument("--split", default="val", help="a split of the data set (default val)")
    parser.add_argument("--batch-size", type=positive_int, default=4)
    parser.add_argument("--device", type=device_name, default="auto",
                        help="auto, cpu, cuda or cuda:N (default auto: CUDA if visible; the CPU for the "
                             "onnxruntime and openvino variants, which run there only)")
    add_network_size_arguments(parser)
    parser.add_argument("--variant", type=variant_spec, default=None, metavar="SPEC",
                        help="evaluate the model run this way (default eager), e.g. fast, onnxruntime, openvino, "
                             "openvino+int8; the switches are listed by `fplnet benchmark --help`")
    add_calibration_arguments(parser, "INT8 variants", "the checkpoint's training split under --data-root")
    add_tta_arguments(parser)
    parser.add_argument("--json", type=writable_file, metavar="OUT",
                        help="write per-class IoU, mIoU, accuracy and the confusion matrix (pixel counts) as JSON")
    parser.add_argument("--plot", type=png_plot_file, metavar="FILE.png",
                        help="draw the confusion matrix (each row in %% of its ground-truth class) and the "
                             "per-class IoU bars with the mIoU marked (needs matplotlib)")


@dataclass
class CheckpointEvaluation:
    matrix: ConfusionMatrix
    dataset: object                   # the SegmentationDataset evaluated
    variant: str                      # how the model ran: a fplnet.fast.Variant name, or for an
                                      # exported file, that it ran as it is and on which backend
    backend: dict                     # InferenceRunner.backend_info(): precision that ran, calibration
    spec: object                      # the InferenceSpec as run (its sizes, after any override)
    tta: Optional[object] = None      # the TestTimeAugmentation that ran, if any


def evaluate_checkpoint(checkpoint, dataset_name: str, data_root, split: str, device, batch_size: int = 4,
                        eval_size=None, variant=None, calib_data=None,
                        calib_size: Optional[int] = None, tta_scales=None, tta_flip: bool = True,
                        short_side=None):
    """Evaluate a checkpoint (file or shipped name) on a split the way `fplnet evaluate` does, on
    ``device`` (a torch.device or a name for ``fplnet.fast.resolve_variant``, "auto" included):
    mean, std and network size from the checkpoint's inference spec (``eval_size`` or
    ``short_side`` overrides the size, ``InferenceSpec.with_size``), run as ``variant`` (default
    plain eager), with test-time augmentation at ``tta_scales`` (``fplnet.tta``; None: none).

    ``checkpoint`` may also be an exported .onnx or OpenVINO .xml file (``fplnet export``): it
    runs as it is, on the CPU, with the inference spec in its metadata (``fplnet.exported.ExportedModel``),
    so an INT8 IR is scored with the quantization it was exported with; ``variant`` and
    ``calib_data`` are refused for it."""
    from ..tta import TestTimeAugmentation
    from ..calibration import calibration_set, refuse_unused_calib_data
    from ..fast import InferenceRunner, resolve_variant
    from ..models import load_model
    from ..spec import InferenceSpec
    from ..exported import ExportedModel, exported_file_device, is_exported_file, refuse_options_for_exported_file
    exported = is_exported_file(checkpoint)
    if exported:
        refuse_options_for_exported_file(checkpoint, variant, calib_data, calib_size)
        device = exported_file_device(checkpoint, device)
    else:
        # "fast" is the device's fast path; device "auto" is the CPU for the exported-graph backends.
        variant, device = resolve_variant(variant or "eager", device)
        refuse_unused_calib_data(calib_data, variant, calib_size)
    # The data set first: a wrong split or folder is reported before the model is built.
    dataset = build_dataset(dataset_name, data_root, split)
    model = runner = None
    if exported:
        runner = ExportedModel(checkpoint)
        num_classes, spec, variant_name = runner.num_classes, runner.spec, runner.describe()
    else:
        model, ckpt = load_model(checkpoint, device)
        num_classes, spec, variant_name = ckpt["num_classes"], InferenceSpec.from_checkpoint(ckpt), variant.name
    info = dataset.info
    if info.num_classes != num_classes:
        raise ValueError(f"checkpoint {checkpoint} predicts {num_classes} classes but dataset "
                         f"{dataset_name} has {info.num_classes}; evaluate on the dataset it was trained for")
    spec = spec.with_size(eval_size, short_side)
    backend = {"backend": "torch"}
    if not exported and variant.name != "eager":
        # Never calibrated on the frames it is scored on (a train + val model evaluated on val).
        calibration = (calibration_set(ckpt, calib_data or data_root, calib_size,
                                       exclude=[image for image, _ in dataset.files], spec=spec)
                       if variant.needs_calibration else None)
        runner = InferenceRunner(model, variant, device, calibration=calibration)
    images, masks = dataset.load_all_uint8()
    network = runner or model
    tta = TestTimeAugmentation(network, tta_scales, tta_flip) if tta_scales else None
    matrix = evaluate(tta or network, images, masks, info.num_classes, spec.mean, spec.std, device, batch_size,
                      eval_size=spec.eval_size, short_side=spec.eval_short_side, ignore_index=info.ignore_index)
    if runner is not None:
        backend = runner.backend_info()   # after the pass: it reports what the compiled model executed
    if exported:
        # An INT8 file calibrated on frames of the scored split (export leaves out only its check
        # frames): said, since such frames flatter the INT8 loss.
        overlap = calibration_overlap(runner.calibration_files(), dataset)
        if overlap is not None:
            backend["calibration_overlap"] = overlap
    return CheckpointEvaluation(matrix, dataset, variant_name, backend, spec, tta)


def calibration_overlap(calibration_files: Sequence[str], dataset) -> Optional[dict]:
    """How many of the frames scored are among an INT8 file's calibration frames (None: it records
    none). Calibration names are relative to the data root they came from, so frames are matched
    by their path relative to the evaluated data set's root (the same data set, maybe elsewhere)."""
    if not calibration_files:
        return None
    root = Path(os.path.abspath(dataset.root))   # abspath, not resolve: a root of symlinks stays that root

    def relative(image) -> str:
        path = Path(os.path.abspath(image))
        return path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name
    scored = {relative(image) for image, _ in dataset.files}
    return {"scored_frames_in_calibration": len(scored & set(calibration_files)), "scored_frames": len(scored)}


def run(args):
    try:
        evaluation = evaluate_checkpoint(args.checkpoint, args.dataset, args.data_root, args.split,
                                         args.device, args.batch_size, args.eval_size,
                                         args.variant, args.calib_data, args.calib_size, args.tta, args.tta_flip,
                                         args.short_side)
    except DatasetError as err:   # a wrong split or layout, or a broken file: say which flags point there
        raise DatasetError(f"--dataset {args.dataset} --data-root {args.data_root} --split {args.split}: {err}") from None
    matrix, dataset, backend = evaluation.matrix, evaluation.dataset, evaluation.backend
    info = dataset.info
    result = matrix.compute()
    from ..openvino_backend import precision_label   # OpenVINO itself is imported only where it ran
    precision = precision_label(backend)
    print(f"{args.checkpoint} on {args.dataset} {args.split} ({len(dataset)} images), "
          f"network at {evaluation.spec.describe_size()}, "
          f"variant {evaluation.variant}" + (f", {evaluation.tta}" if evaluation.tta else "")
          + (f", executed in {precision}" if precision else ""))
    if "calibration_overlap" in backend:
        overlap = backend["calibration_overlap"]
        print(f"note: {overlap['scored_frames_in_calibration']} of these {overlap['scored_frames']} frames are among "
              f"the file's INT8 calibration frames")
    table = matrix.format_table(info.class_names).splitlines()
    print("\n".join(table[:-1]))
    print(f"pixel accuracy: {float(result['pixel_accuracy']) * 100:.2f}")
    print(table[-1])  # "mIoU: xx.xx" stays the last line, for scripts
    if args.json:
        payload = {"checkpoint": str(args.checkpoint), "dataset": args.dataset, "split": args.split,
                   "images": len(dataset), "variant": evaluation.variant, "backend": backend,
                   "tta": None if evaluation.tta is None else {"scales": list(evaluation.tta.scales),
                                                               "flip": evaluation.tta.flip},
                   "eval_size": list(evaluation.spec.eval_size) if evaluation.spec.eval_size else None,
                   "eval_short_side": evaluation.spec.eval_short_side,
                   "miou": float(result["miou"]) * 100,
                   "pixel_accuracy": float(result["pixel_accuracy"]) * 100,
                   "iou": {n: (None if v != v else float(v) * 100)
                           for n, v in zip(info.class_names, result["iou"].tolist())},
                   "confusion_matrix": {"rows": "ground truth", "columns": "prediction",
                                        "class_names": list(info.class_names),
                                        "counts": matrix.matrix.cpu().tolist()}}
        atomic_write_json(args.json, payload)
    if args.plot:
        from .figures import draw_evaluation
        draw_evaluation(args.plot, matrix, info.class_names, info.palette,
                        f"{args.checkpoint} on {args.dataset} {args.split} ({len(dataset)} images)")
    return 0
