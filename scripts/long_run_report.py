"""Where the long CamVid runs stand, from their own logs: per split and stage, the epochs done,
the last train loss, every validation, and the speed over a range of epochs. The progress tables
of docs/recipe.md ("The long run") are this script's output, committed beside them.

    python scripts/long_run_report.py docs/runs/long --since 199    # speed over epochs 199 on
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
from pathlib import Path


def stage_report(folder: Path, since: int) -> str:
    rows = list(csv.DictReader((folder / "log.csv").open()))
    if not rows:
        return f"{folder}: no epochs logged"
    done = int(rows[-1]["epoch"])
    summary = folder / "summary.json"
    schedule = json.loads(summary.read_text())["epochs"] if summary.is_file() else None
    vals = [f"{int(r['epoch'])}: {float(r['val_miou']):.2f}" for r in rows if r.get("val_miou")]
    recent = [r for r in rows if int(r["epoch"]) >= since and r.get("img_per_s")]
    speeds = sorted(float(r["img_per_s"]) for r in recent)
    speed = (f"img/s over epochs {since}-{done}: median {statistics.median(speeds):.2f}, range "
             f"{speeds[0]:.2f}-{speeds[-1]:.2f}; epoch seconds median "
             f"{statistics.median(float(r['epoch_seconds']) for r in recent):.1f}") if speeds else "no epochs in range"
    loss = rows[-1]["train_loss"]
    return "\n".join([
        f"{folder}: epoch {done}" + (f" of {schedule}, complete" if schedule else ""),
        f"  last train loss {float(loss):.4f}" if loss else "  last train loss -",
        f"  validations (epoch: mIoU): {', '.join(vals) if vals else '-'}",
        f"  {speed}",
    ])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="folder holding <split>_adam/{encoder,full}/log.csv (runs/long or docs/runs/long)")
    parser.add_argument("--since", type=int, default=1, help="first epoch of the speed figures")
    args = parser.parse_args(argv)
    root = Path(args.root)
    stages = sorted(p.parent for p in root.glob("*/*/log.csv"))
    if not stages:
        print(f"long_run_report: no */*/log.csv under {root}", file=sys.stderr)
        return 2
    print("\n".join(stage_report(stage, args.since) for stage in stages))
    return 0


if __name__ == "__main__":
    sys.exit(main())
