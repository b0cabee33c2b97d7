"""Turn a training checkpoint into shipped weights: evaluate it on a split, then write a
safetensors file whose metadata records what a user needs to trust it.

    python scripts/ship_weights.py runs/camvid_train/last.pt src/fplnet/weights/fplnet_camvid.safetensors \
        --data-root ../shared/data/camvid --split val --hardware "..." --note "..."

The recorded mIoU is measured here, by the same `evaluate` that `fplnet evaluate` runs, so
`fplnet evaluate --checkpoint camvid ...` reproduces it.
"""
from __future__ import annotations

import argparse
import json

import torch

from fplnet.checkpoint import load_checkpoint, save_safetensors
from fplnet.engine.evaluate import evaluate_checkpoint
from fplnet.provenance import git_commit


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("output")
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--split", default="val")
    parser.add_argument("--hardware", default="")
    parser.add_argument("--note", default="")
    parser.add_argument("--wall-minutes", type=float)
    args = parser.parse_args()

    ckpt = load_checkpoint(args.checkpoint)
    run = ckpt.get("run_config", {})
    # The same evaluation `fplnet evaluate` runs, so it reproduces the figure recorded here.
    evaluation = evaluate_checkpoint(args.checkpoint, run.get("dataset", "camvid"), args.data_root, args.split,
                                     torch.device("cpu"))
    matrix, dataset = evaluation.matrix, evaluation.dataset
    info = dataset.info
    result = matrix.compute()
    miou = round(float(result["miou"]) * 100, 4)
    iou = {n: round(float(v) * 100, 2) for n, v in zip(info.class_names, result["iou"].tolist())}
    extra = {
        "metrics": {f"{args.split}_miou": miou, f"{args.split}_iou": iou,
                    f"{args.split}_pixel_accuracy": round(float(result["pixel_accuracy"]) * 100, 4),
                    "evaluated_on": f"{run.get('dataset')} {args.split} ({len(dataset)} images, network at "
                                    f"{'x'.join(map(str, evaluation.eval_size)) if evaluation.eval_size else 'full size'}, "
                                    "void ignored)"},
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
    save_safetensors(ckpt, args.output, extra)
    print(matrix.format_table(info.class_names))
    print(json.dumps({k: extra[k] for k in ("epochs", "iterations", "hardware", "wall_minutes")}))


if __name__ == "__main__":
    main()
