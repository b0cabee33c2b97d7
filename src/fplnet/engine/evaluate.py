"""`fplnet evaluate` and the evaluation loop the trainer uses.

Evaluation is at full label resolution: the network runs on the whole image (optionally
resized to ``eval_size``, e.g. 1024x512 for a model trained on half-resolution Cityscapes), the
logits are resized bilinearly to the label's size, and one confusion matrix accumulates
every pixel that is not ``ignore_index``.
"""
from __future__ import annotations

from typing import Optional, Sequence

import torch
import torch.nn.functional as F

from ..data import DatasetError, build_dataset, list_datasets
from ..data.transforms import normalize
from ..io import atomic_write_json
from ..metrics import ConfusionMatrix
from ..runtime import autocast, resolve_device
from .arguments import checkpoint_name_or_file, device_name, existing_dir, image_size, positive_int, writable_file


@torch.inference_mode()
def evaluate(model, images: Sequence[torch.Tensor], masks: Sequence[torch.Tensor], num_classes: int,
             mean, std, device, batch_size: int = 4, eval_size: Optional[tuple] = None, amp: str = "none",
             channels_last: bool = False, indices: Optional[Sequence[int]] = None,
             ignore_index: int = 255) -> ConfusionMatrix:
    """Confusion matrix of ``model`` over uint8 ``images`` (3xHxW) and ``masks`` (HxW).

    ``indices`` restricts the pass to a shard (one rank's part in distributed evaluation);
    the caller all-reduces the matrix.
    """
    was_training = model.training
    model.eval()
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
            if eval_size is not None and tuple(x.shape[-2:]) != tuple(eval_size):
                x = F.interpolate(x, size=eval_size, mode="bilinear", align_corners=False)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with autocast(device, amp):
                logits = model(x)
            if logits.shape[-2:] != target.shape[-2:]:
                logits = F.interpolate(logits.float(), size=target.shape[-2:], mode="bilinear", align_corners=False)
            matrix.update(logits.argmax(1), target)
        batch = [] if i is None else [i]
    model.train(was_training)
    return matrix


def add_arguments(parser):
    parser.add_argument("--checkpoint", type=checkpoint_name_or_file, required=True,
                        help="checkpoint file or shipped weights name (camvid)")
    parser.add_argument("--dataset", required=True, choices=list_datasets())
    parser.add_argument("--data-root", type=existing_dir, required=True)
    parser.add_argument("--split", default="val", help="a split of the data set (default val)")
    parser.add_argument("--batch-size", type=positive_int, default=4)
    parser.add_argument("--device", type=device_name, default="auto", help="auto, cpu, cuda or cuda:N (default auto)")
    parser.add_argument("--eval-size", type=image_size, default=None,
                        help="run the network at HxW (e.g. 512x1024); logits are resized to the label size")
    parser.add_argument("--json", type=writable_file, metavar="OUT",
                        help="write per-class IoU, mIoU and accuracy as JSON")


def evaluate_checkpoint(checkpoint, dataset_name: str, data_root, split: str, device, batch_size: int = 4,
                        eval_size=None):
    """Evaluate a checkpoint (file or shipped name) on a split the way `fplnet evaluate` does:
    normalization from the checkpoint, its recorded eval size unless ``eval_size`` is given.
    Returns (confusion matrix, dataset)."""
    from ..models import load_model
    # The data set first: a wrong split or folder is reported before the model is built.
    dataset = build_dataset(dataset_name, data_root, split)
    model, ckpt = load_model(checkpoint, device)
    info = dataset.info
    if info.num_classes != ckpt["num_classes"]:
        raise ValueError(f"checkpoint {checkpoint} predicts {ckpt['num_classes']} classes but dataset "
                         f"{dataset_name} has {info.num_classes}; evaluate on the dataset it was trained for")
    norm = ckpt.get("dataset") or {}
    mean, std = norm.get("mean", info.mean), norm.get("std", info.std)
    images, masks = dataset.load_all_uint8()
    eval_size = eval_size or ckpt.get("eval_size")
    matrix = evaluate(model, images, masks, info.num_classes, mean, std, device, batch_size,
                      eval_size=tuple(eval_size) if eval_size else None, ignore_index=info.ignore_index)
    return matrix, dataset


def run(args):
    try:
        matrix, dataset = evaluate_checkpoint(args.checkpoint, args.dataset, args.data_root, args.split,
                                              resolve_device(args.device), args.batch_size, args.eval_size)
    except DatasetError as err:   # a wrong split or layout, or a broken file: say which flags point there
        raise DatasetError(f"--dataset {args.dataset} --data-root {args.data_root} --split {args.split}: {err}") from None
    info = dataset.info
    result = matrix.compute()
    print(f"{args.checkpoint} on {args.dataset} {args.split} ({len(dataset)} images)")
    table = matrix.format_table(info.class_names).splitlines()
    print("\n".join(table[:-1]))
    print(f"pixel accuracy: {float(result['pixel_accuracy']) * 100:.2f}")
    print(table[-1])  # "mIoU: xx.xx" stays the last line, for scripts
    if args.json:
        payload = {"checkpoint": str(args.checkpoint), "dataset": args.dataset, "split": args.split,
                   "images": len(dataset), "miou": float(result["miou"]) * 100,
                   "pixel_accuracy": float(result["pixel_accuracy"]) * 100,
                   "iou": {n: (None if v != v else float(v) * 100)
                           for n, v in zip(info.class_names, result["iou"].tolist())}}
        atomic_write_json(args.json, payload)
    return 0
