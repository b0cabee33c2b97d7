"""`fplnet demo` (what `make demo` runs): segment the CamVid frames that ship with the package
using the shipped weights, write colour masks, overlays and a comparison grid, and print how
well the model did on them and how long it took on this machine."""
from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Optional

import numpy as np
import torch
from PIL import Image

from ..checkpoint import load_checkpoint
from ..data import build_dataset
from ..data.info import colorize
from ..io import atomic_save_image
from ..metrics import ConfusionMatrix
from .arguments import checkpoint_name_or_file, device_name, non_negative_int, writable_dir

DEMO_ROOT = Path(__file__).resolve().parents[1] / "assets" / "camvid_demo"


def demo_dataset(root: Path = DEMO_ROOT):
    """The shipped frames, in CamVid's SegNet layout (val/ + valannot/), read by the CamVid loader."""
    return build_dataset("camvid", root, "val")


def comparison_grid(rows: list[list[np.ndarray]], scale: float = 0.5) -> Image.Image:
    """Rows of equally sized RGB tiles (input, ground truth, prediction, overlay) -> one image."""
    tiles = [[Image.fromarray(t).resize((int(t.shape[1] * scale), int(t.shape[0] * scale)), Image.Resampling.NEAREST)
              for t in row] for row in rows]
    w, h = tiles[0][0].size
    gap = 4
    grid = Image.new("RGB", (len(tiles[0]) * (w + gap) - gap, len(tiles) * (h + gap) - gap), (255, 255, 255))
    for r, row in enumerate(tiles):
        for c, tile in enumerate(row):
            grid.paste(tile, (c * (w + gap), r * (h + gap)))
    return grid


def add_arguments(parser):
    parser.add_argument("--checkpoint", type=checkpoint_name_or_file, default="camvid",
                        help="weights to demo (default: the shipped CamVid model)")
    parser.add_argument("--output", type=writable_dir, default="demo_output",
                        help="folder for the masks, overlays and grid (default demo_output)")
    parser.add_argument("--device", type=device_name, default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    parser.add_argument("--repeats", type=non_negative_int, default=5, help="timed forward passes per image")
    parser.add_argument("--no-fast", dest="fast", action="store_false",
                        help="plain eager fp32 instead of the fast path (OpenVINO f32 on a CPU that has it)")


def run(args):
    from ..fast import resolve_variant
    from ..inference import Segmenter
    # The command opts into the process-wide allocator switch on its fast path (fplnet.runtime).
    variant, device = resolve_variant("fast" if args.fast else "eager", args.device, keep_memory=True)
    segmenter = Segmenter(args.checkpoint, device=device, variant=variant)
    out = args.output
    out.mkdir(parents=True, exist_ok=True)
    info = segmenter.info
    matrix = ConfusionMatrix(info.num_classes, ignore_index=info.ignore_index)
    latencies, rows = [], []
    dataset = demo_dataset()
    print(f"FPLNet demo: {segmenter}")
    for index, (image_path, _) in enumerate(dataset.files):
        image, target = dataset.load_raw(index)
        prediction = segmenter.predict(image)  # the first call also warms up the fast path
        for _ in range(args.repeats):
            start = time.perf_counter()
            segmenter.predict(image)
            latencies.append((time.perf_counter() - start) * 1000)
        matrix.update(torch.from_numpy(prediction.astype(np.int64)), torch.from_numpy(target.astype(np.int64)))
        mask = segmenter.colorize(prediction)
        overlay = segmenter.overlay(image, prediction, 0.5)
        atomic_save_image(out / f"{image_path.stem}_mask.png", Image.fromarray(mask))
        atomic_save_image(out / f"{image_path.stem}_overlay.jpg", Image.fromarray(overlay), quality=92)
        rows.append([image, colorize(target, info), mask, overlay])
        print(f"  {image_path.name}: {image.shape[1]}x{image.shape[0]} -> {out / (image_path.stem + '_mask.png')}")
    atomic_save_image(out / "grid.png", comparison_grid(rows))
    meta = load_checkpoint(args.checkpoint)
    seen = _seen_note(meta)
    print()
    print(f"IoU per class on these {len(dataset)} CamVid val frames ({seen}):")
    print(matrix.format_table(info.class_names))
    unseen = _unseen_note(meta)
    if unseen:
        print(unseen)
    if latencies:
        print(f"{segmenter.device.type.upper()} latency per 480x360 frame ({segmenter.variant}, "
              f"{torch.get_num_threads()} threads): median {statistics.median(latencies):.0f} ms "
              f"over {len(latencies)} runs")
    print(f"Outputs: colour masks, overlays and grid.png (input | ground truth | prediction | overlay) in {out}/")
    return 0


def _seen_note(meta: dict) -> str:
    """What the weights have seen of these frames, which are CamVid val frames."""
    run = meta.get("run_config") or {}
    split, val_split = run.get("train_split"), run.get("val_split")
    if split == "trainval":
        return "the model was trained on CamVid train + val, so it HAS seen these frames"
    if split == "train" and val_split == "val":
        # Validation picked the shipped epoch, so val (these frames) chose the weights.
        return ("the model was trained on CamVid train only and never trained on these frames, but its "
                "weights were selected on CamVid val, which includes them")
    if split == "train":
        return "the model was trained on CamVid train only; these val frames were neither trained on nor validated on"
    return "the training split of these weights is not recorded"


def _unseen_note(meta: dict) -> Optional[str]:
    """The figure on frames no model of this recipe trained on, where the weights carry one: a
    model trained on every CamVid frame has none of its own, so scripts/ship_weights.py records
    its held-out sibling's (the same recipe without one sequence, scored on that sequence)."""
    heldout = meta.get("heldout")
    if not heldout:
        return None
    epochs = heldout.get("epochs")
    length = f" for {epochs} epoch{'' if epochs == 1 else 's'}" if epochs else ""
    return (f"On frames never trained on: the same recipe trained on {heldout['train_split']}{length} "
            f"scores {heldout['miou']:.2f} mIoU on {heldout['evaluated_on']}.")
