"""Turn a training checkpoint into shipped weights: evaluate it on a split, then write a
safetensors file whose metadata records what a user needs to trust it.

    python scripts/ship_weights.py runs/long/trainval_adam/full/last.pt \
        src/fplnet/weights/fplnet_camvid.safetensors --data-root ../shared/data/camvid --split val \
        --heldout runs/long/heldout_adam/full/last.pt --heldout-split heldout_val --eval-short-side 360 \
        --hardware "..." --note "..."

The recorded mIoU is measured here, by the same `evaluate` that `fplnet evaluate` runs, so
`fplnet evaluate --checkpoint camvid ...` reproduces it.

``--heldout`` names a second checkpoint: the same recipe trained without the frames of
``--heldout-split`` (the held-out-sequence protocol, docs/recipe.md). A model trained on every
frame has no unseen frames left to score it on, so its generalization figure can only come from
such a sibling; it is evaluated here too and recorded under ``heldout`` with its own epochs and
training split. Refused, since the figure would then say nothing true about the shipped model:
a sibling of another recipe (every setting but those in ``NOT_RECIPE``, compared with the
defaults filled in; initialised from a checkpoint or not, as the shipped run was, and the two
stage-1 runs compared the same way where their folders are here), a sibling that trained on any
frame of ``--heldout-split``, and a sibling whose schedule has not ended (only the last epoch of
a poly schedule gives a figure to quote). The shipped checkpoint itself must have ended its
schedule too: the project ships the last epoch, not a point selected along the way.

``--eval-short-side N`` records the size users' images are run at (``fplnet.spec``): scaled,
aspect ratio kept, so that the shorter side is N pixels, the scale of the training frames (360
for CamVid). Both models are evaluated that way here (CamVid's 360x480 frames are unchanged by
it). A checkpoint that records a fixed ``eval_size`` keeps it; the two are refused together.

The wall time is the sum of the ``wall_seconds`` the checkpoint and the stage-1 run it was
initialised from record (its ``summary.json``, or its checkpoint, when either is here), unless
``--wall-minutes`` is given; epochs cut short by an interruption are not in it.
"""
from __future__ import annotations

import argparse
import json
import sys

from pathlib import Path

import torch
import yaml

from fplnet.checkpoint import load_checkpoint, recorded_eval_short_side, recorded_eval_size, save_safetensors
from fplnet.data import build_dataset
from fplnet.engine.arguments import positive_int
from fplnet.engine.evaluate import evaluate_checkpoint
from fplnet.engine.train import TrainConfig
from fplnet.provenance import git_commit

# Run settings that may differ between the shipped run and its held-out sibling: the data each
# trained and validated on, where it wrote and what it started from (compared apart), and how it
# ran, not what it learnt. Spelled out rather than derived from what a resume may change, so that
# loosening resume never loosens this check (tests/test_ship_weights.py pins it).
NOT_RECIPE = frozenset({"train_split", "val_split", "data_root", "output", "init_from", "notes", "device", "amp",
                        "eval_short_side",
                        "channels_last", "compile", "save_every_minutes", "save_every_epochs",
                        "time_budget_minutes", "log_every", "tensorboard", "val_every", "eval_batch_size"})


def measure(checkpoint: str, dataset: str, data_root: str, split: str, short_side=None) -> dict:
    """mIoU, per-class IoU and pixel accuracy of ``checkpoint`` on ``split``, as `fplnet evaluate`
    gives them (with ``--short-side short_side`` when given)."""
    evaluation = evaluate_checkpoint(checkpoint, dataset, data_root, split, torch.device("cpu"), short_side=short_side)
    info, result = evaluation.dataset.info, evaluation.matrix.compute()
    size = evaluation.spec.describe_size()
    print(f"{checkpoint} on {dataset} {split}:")
    print(evaluation.matrix.format_table(info.class_names))
    return {"miou": round(float(result["miou"]) * 100, 4),
            "iou": {n: round(float(v) * 100, 2) for n, v in zip(info.class_names, result["iou"].tolist())},
            "pixel_accuracy": round(float(result["pixel_accuracy"]) * 100, 4),
            "evaluated_on": f"{dataset} {split} ({len(evaluation.dataset)} images, network at {size}, void ignored)"}


def recipe_differences(shipped: dict, sibling: dict) -> list[str]:
    """The recipe settings in which two run configs differ, defaults filled in for missing keys."""
    defaults = TrainConfig().to_dict()
    a, b = {**defaults, **shipped}, {**defaults, **sibling}
    keys = (set(a) | set(b)) - NOT_RECIPE
    differences = [f"{k}: {a.get(k)!r} vs {b.get(k)!r}" for k in keys if a.get(k) != b.get(k)]
    if bool(a.get("init_from")) != bool(b.get("init_from")):
        differences.append(f"init_from: {a.get('init_from')!r} vs {b.get('init_from')!r}")
    return sorted(differences)


def stage_one_differences(shipped: dict, sibling: dict) -> list[str]:
    """The same comparison for the runs the two were initialised from, where both folders are here."""
    configs = [Path(run["init_from"]).parent / "config.yaml" if run.get("init_from") else None
               for run in (shipped, sibling)]
    if not all(c is not None and c.is_file() for c in configs):
        return []
    return [f"stage 1 {d}" for d in recipe_differences(*(yaml.safe_load(c.read_text()) for c in configs))]


def require_finished(ckpt: dict, what: str) -> None:
    """Only the last epoch of a poly schedule, where the learning rate has reached zero, is quoted or shipped."""
    scheduled = ckpt.get("total_iters")
    if scheduled is not None and ckpt.get("scheduler", {}).get("last_epoch") != scheduled:
        epochs = ckpt.get("run_config", {}).get("epochs")
        raise SystemExit(f"{what} stopped at epoch {ckpt.get('epoch')} of {epochs}: only the last epoch of its "
                         "schedule gives a figure to quote; finish the run first")


def training_wall_minutes(ckpt: dict) -> tuple[float, list]:
    """Minutes of training the checkpoint and its stage-1 checkpoint (if here) record, and per stage."""
    stages = [("this run", float(ckpt.get("wall_seconds", 0.0)), ckpt.get("epoch"))]
    init = ckpt.get("run_config", {}).get("init_from")
    summary = Path(init).parent / "summary.json" if init else None
    if summary is not None and summary.is_file():   # a finished stage 1 needs no checkpoint for this
        first = json.loads(summary.read_text())
        stages.insert(0, (f"stage 1 ({summary.parent})", float(first.get("wall_seconds", 0.0)), first.get("epochs_done")))
    elif init and Path(init).is_file():
        first = load_checkpoint(init)
        stages.insert(0, (f"stage 1 ({init})", float(first.get("wall_seconds", 0.0)), first.get("epoch")))
    elif init:
        raise SystemExit(f"the run was initialised from {init}, and neither that checkpoint nor the summary.json "
                         "beside it is here to count stage 1's wall time; restore that folder or pass --wall-minutes")
    return (round(sum(seconds for _, seconds, _ in stages) / 60, 1),
            [{"stage": name, "wall_minutes": round(seconds / 60, 1), "epochs": epochs} for name, seconds, epochs in stages])


def heldout_record(path: str, run: dict, data_root: str, split: str, short_side=None) -> dict:
    """The held-out sibling's figure, with what it trained on and for how long."""
    ckpt = load_checkpoint(path)
    sibling = ckpt.get("run_config", {})
    differences = recipe_differences(run, sibling) + stage_one_differences(run, sibling)
    if differences:
        raise SystemExit(f"--heldout {path} was trained with another recipe ({'; '.join(differences)}); "
                         "pass the held-out run of the shipped run's own recipe")
    dataset = sibling.get("dataset", "camvid")
    held_out = {Path(image).name for image, _ in build_dataset(dataset, data_root, split).files}
    trained = {Path(image).name for image, _ in build_dataset(dataset, data_root, sibling.get("train_split")).files}
    if held_out & trained:
        raise SystemExit(f"--heldout {path} trained on {len(held_out & trained)} of the {len(held_out)} frames of "
                         f"{split!r} (its train split is {sibling.get('train_split')!r}); pass the run that left "
                         "them out, or the --heldout-split it left out")
    require_finished(ckpt, f"--heldout {path}")
    figures = measure(path, dataset, data_root, split, short_side)
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
    parser.add_argument("--eval-short-side", type=positive_int, metavar="N",
                        help="run users' images scaled, aspect kept, to this shorter side (360 for CamVid)")
    parser.add_argument("--wall-minutes", type=float,
                        help="default: what the checkpoints record (stage 1 + this run)")
    args = parser.parse_args(argv)

    ckpt = load_checkpoint(args.checkpoint)
    run = ckpt.get("run_config", {})
    require_finished(ckpt, args.checkpoint)
    if args.eval_short_side is not None:
        fixed = recorded_eval_size(ckpt)
        if fixed is not None:
            raise SystemExit(f"{args.checkpoint} runs at a fixed eval size {fixed}, which "
                             "--eval-short-side cannot replace; ship it without --eval-short-side")
        ckpt["eval_short_side"] = args.eval_short_side
    # Both models are scored the way the shipped file will run (its run config may record a short side).
    short_side = recorded_eval_short_side(ckpt)
    wall_minutes, stages = training_wall_minutes(ckpt) if args.wall_minutes is None else (args.wall_minutes, [])
    # Refuse a mismatched sibling before the (slower) evaluation of the shipped model.
    heldout = (heldout_record(args.heldout, run, args.data_root, args.heldout_split, short_side)
               if args.heldout else None)
    figures = measure(args.checkpoint, run.get("dataset", "camvid"), args.data_root, args.split, short_side)
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
        "wall_minutes": args.wall_minutes if args.wall_minutes is not None else wall_minutes,
        "wall_minutes_by_stage": stages,
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
