"""Turn a training checkpoint into shipped weights: evaluate it on a split, then write a
safetensors file whose metadata records what a user needs to trust it.

    python scripts/ship_weights.py runs/long/trainval_adam/full/last.pt \
        src/fplnet/weights/fplnet_camvid.safetensors --data-root ../shared/data/camvid --split val \
        --heldout runs/long/heldout_adam/full/last.pt --heldout-split heldout_val \
        --hardware "..." --note "..."

The recorded mIoU is measured here, by the same `evaluate` that `fplnet evaluate` runs, so
`fplnet evaluate --checkpoint camvid ...` reproduces it.

``--heldout`` names a second checkpoint: the same recipe trained without the frames of
``--heldout-split`` (the held-out-sequence protocol, docs/recipe.md). A model trained on every
frame has no unseen frames left to score it on, so its generalization figure can only come from
such a sibling; it is evaluated here too and recorded under ``heldout`` with its own epochs and
training split. The two runs must share the recipe (everything but the splits, the output folder
and run-time settings such as the device); a sibling trained differently is refused, since its
figure would then say nothing about the shipped model.
"""
from __future__ import annotations

import argparse
import json
import sys

import torch

from fplnet.checkpoint import load_checkpoint, save_safetensors
from fplnet.engine.evaluate import evaluate_checkpoint
from fplnet.engine.train import RESUME_MAY_CHANGE
from fplnet.provenance import git_commit

# Run settings that may differ between the shipped run and its held-out sibling: the data each
# trained and validated on, where it wrote, what it started from, and how it ran (not what it learnt).
NOT_RECIPE = set(RESUME_MAY_CHANGE) | {"train_split", "val_split", "init_from", "notes"}


def measure(checkpoint: str, dataset: str, data_root: str, split: str) -> dict:
    """mIoU, per-class IoU and pixel accuracy of ``checkpoint`` on ``split``, as `fplnet evaluate` gives them."""
    evaluation = evaluate_checkpoint(checkpoint, dataset, data_root, split, torch.device("cpu"))
    info, result = evaluation.dataset.info, evaluation.matrix.compute()
    size = "x".join(map(str, evaluation.eval_size)) if evaluation.eval_size else "full size"
    print(f"{checkpoint} on {dataset} {split}:")
    print(evaluation.matrix.format_table(info.class_names))
    return {"miou": round(float(result["miou"]) * 100, 4),
            "iou": {n: round(float(v) * 100, 2) for n, v in zip(info.class_names, result["iou"].tolist())},
            "pixel_accuracy": round(float(result["pixel_accuracy"]) * 100, 4),
            "evaluated_on": f"{dataset} {split} ({len(evaluation.dataset)} images, network at {size}, void ignored)"}


def recipe_differences(shipped: dict, sibling: dict) -> list[str]:
    """The recipe settings in which two run configs differ."""
    keys = (set(shipped) | set(sibling)) - NOT_RECIPE
    return sorted(f"{k}: {shipped.get(k)!r} vs {sibling.get(k)!r}" for k in keys if shipped.get(k) != sibling.get(k))


def heldout_record(path: str, run: dict, data_root: str, split: str) -> dict:
    """The held-out sibling's figure, with what it trained on and for how long."""
    ckpt = load_checkpoint(path)
    sibling = ckpt.get("run_config", {})
    if sibling.get("model") != run.get("model"):
        raise SystemExit(f"--heldout {path} trains {sibling.get('model')!r}, the shipped run {run.get('model')!r}")
    differences = recipe_differences(run, sibling)
    if differences:
        raise SystemExit(f"--heldout {path} was trained with another recipe ({'; '.join(differences)}); "
                         "pass the held-out run of the shipped run's own recipe")
    if sibling.get("train_split") == run.get("train_split"):
        raise SystemExit(f"--heldout {path} trained on the same split as the shipped run "
                         f"({run.get('train_split')!r}); pass the run that left {split!r} out")
    figures = measure(path, sibling.get("dataset", "camvid"), data_root, split)
    return {"split": split, **figures, "train_split": sibling.get("train_split"), "epochs": ckpt.get("epoch"),
            "training_git_commit": ckpt.get("git_commit", ""), "checkpoint": str(path)}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint")
    parser.add_argument("output")
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--heldout", help="the same recipe's run trained without --heldout-split's frames")
    parser.add_argument("--heldout-split", default="heldout_val")
    parser.add_argument("--hardware", default="")
    parser.add_argument("--note", default="")
    parser.add_argument("--wall-minutes", type=float)
    args = parser.parse_args(argv)

    ckpt = load_checkpoint(args.checkpoint)
    run = ckpt.get("run_config", {})
    # Refuse a mismatched sibling before the (slower) evaluation of the shipped model.
    heldout = heldout_record(args.heldout, run, args.data_root, args.heldout_split) if args.heldout else None
    figures = measure(args.checkpoint, run.get("dataset", "camvid"), args.data_root, args.split)
    extra = {
        "metrics": {f"{args.split}_miou": figures["miou"], f"{args.split}_iou": figures["iou"],
                    f"{args.split}_pixel_accuracy": figures["pixel_accuracy"], "evaluated_on": figures["evaluated_on"]},
        "run_config": run,
        "epochs": ckpt.get("epoch"),
        "iterations": ckpt.get("scheduler", {}).get("last_epoch"),
        "history": ckpt.get("history", []),
        "training_git_commit": ckpt.get("git_commit", ""),
        "shipped_git_commit": git_commit(),
        "hardware": args.hardware,
        "wall_minutes": args.wall_minutes,
        "note": args.note,
    }
    if heldout:
        extra["heldout"] = heldout
    save_safetensors(ckpt, args.output, extra)
    print(json.dumps({k: extra[k] for k in ("epochs", "iterations", "hardware", "wall_minutes")}))
    if heldout:
        print(json.dumps({"heldout": {k: heldout[k] for k in ("split", "miou", "train_split", "epochs")}}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
