"""Plot the two-stage training curves (train loss, learning rate, val mIoU per epoch) from the
runs' log.csv files into one PNG.

    python scripts/plot_training.py runs/camvid_train_encoder/log.csv runs/camvid_train/log.csv \
        --output docs/images/camvid_training.png
"""
from __future__ import annotations

import argparse
import csv

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def read(path):
    with open(path) as fh:
        return list(csv.DictReader(fh))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("logs", nargs="+", help="log.csv of each stage, in order")
    parser.add_argument("--labels", default="stage 1: encoder,stage 2: full FPLNet")
    parser.add_argument("--output", required=True)
    args = parser.parse_args()
    labels = args.labels.split(",")
    fig, (ax_loss, ax_miou) = plt.subplots(1, 2, figsize=(11, 4))
    offset = 0
    for path, label in zip(args.logs, labels):
        rows = read(path)
        epochs = [offset + int(r["epoch"]) for r in rows]
        ax_loss.plot(epochs, [float(r["train_loss"]) for r in rows], label=label)
        val = [(offset + int(r["epoch"]), float(r["val_miou"])) for r in rows if r["val_miou"]]
        if val:
            ax_miou.plot(*zip(*val), marker="o", ms=3, label=label)
        offset = epochs[-1]
        ax_loss.axvline(offset, color="grey", lw=0.5, ls=":")
    ax_loss.set(xlabel="epoch (both stages)", ylabel="weighted cross-entropy", title="training loss")
    ax_miou.set(xlabel="epoch (both stages)", ylabel="mIoU (%)", title="CamVid val mIoU")
    for ax in (ax_loss, ax_miou):
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(args.output, dpi=110)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
