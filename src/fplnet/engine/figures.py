"""The figures the commands draw (matplotlib, imported only when a figure is asked for).

mIoU against parameters, like with like: one plot per data set and split.

* ``draw_cityscapes``: the paper's Fig. 5, drawn from its Table IV: Cityscapes **test** mIoU and
  parameters, as printed, of the networks with at most 5M parameters, FPLNet as the red star.
* ``draw_camvid``: published CamVid **test** mIoU of the baselines, each with its source, beside
  our own CamVid points, which are labelled with the split they were measured on (val or a
  held-out sequence, never test: the test split is kept away from this project).

A figure measured on one data set or split is never drawn on the axes of another: a CamVid val
mIoU on the Cityscapes-test plot reads as a comparison that it is not. ``fplnet benchmark
--plot-only --plot ... --camvid-plot ... --measured ...`` draws them (no timing).

``draw_evaluation``: one evaluation's confusion matrix, each row normalized to 100 % of its
ground-truth class, beside the per-class IoU bars with the mIoU marked (``fplnet evaluate
--plot``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..complexity import count_params
from ..io import atomic_write
from ..metrics import ConfusionMatrix


@dataclass(frozen=True)
class PublishedResult:
    """One network's figures as a paper prints them."""
    name: str
    miou: float        # percent
    params_m: float    # millions of parameters
    source: str        # where the mIoU is printed


@dataclass(frozen=True)
class MeasuredPoint:
    """One of our own results: a registry name or checkpoint file, where it was measured, mIoU."""
    name: str
    dataset: str
    split: str
    miou: float

    @classmethod
    def parse(cls, text: str) -> "MeasuredPoint":
        """'fplnet@camvid:val=62.14' -> MeasuredPoint('fplnet', 'camvid', 'val', 62.14)."""
        try:
            where, miou = text.rsplit("=", 1)
            name, where = where.split("@", 1)
            dataset, split = where.split(":", 1)
            point = cls(name.strip(), dataset.strip(), split.strip(), float(miou))
        except ValueError:
            raise ValueError(f"{text!r} is not NAME@DATASET:SPLIT=MIOU, e.g. fplnet@camvid:val=62.14") from None
        if point.dataset not in PLOTS:
            raise ValueError(f"{text!r}: the data set must be one of {', '.join(PLOTS)}")
        if not point.name or not point.split or not 0 <= point.miou <= 100:
            raise ValueError(f"{text!r}: give a model name, a split and an mIoU from 0 to 100")
        return point

    @property
    def label(self) -> str:
        caveat = "" if self.split == "test" else ", not test"
        return f"{Path(self.name).stem} (ours, {self.dataset} {self.split}{caveat})"


# FPLNet paper, Table IV: Cityscapes test mIoU and parameters as printed, for the networks with
# at most 5M parameters (the span of the paper's Fig. 5).
CITYSCAPES_TEST = (
    PublishedResult("ERFNet", 68.0, 2.2, "FPLNet Table IV"),
    PublishedResult("CABiNet", 75.9, 2.64, "FPLNet Table IV"),
    PublishedResult("BiSeNetV2", 75.3, 4.59, "FPLNet Table IV"),
    PublishedResult("RegSeg", 78.3, 3.34, "FPLNet Table IV"),
    PublishedResult("BiAttenNet", 74.7, 2.2, "FPLNet Table IV"),
    PublishedResult("DABNet", 70.1, 0.75, "FPLNet Table IV"),
    PublishedResult("ContextNet", 66.1, 0.88, "FPLNet Table IV"),
    PublishedResult("EDANet", 67.3, 0.68, "FPLNet Table IV"),
    PublishedResult("ENet", 57.0, 0.36, "FPLNet Table IV"),
    PublishedResult("ESPNet", 60.3, 0.36, "FPLNet Table IV"),
    PublishedResult("CGNet", 64.8, 0.5, "FPLNet Table IV"),
)
FPLNET_CITYSCAPES_TEST = PublishedResult("FPLNet", 66.28, 0.49, "FPLNet Table IV")

# CamVid test mIoU as each network's own paper prints it (the FPLNet paper has no CamVid table);
# parameters as FPLNet's Table IV prints them.
CAMVID_TEST = (
    PublishedResult("ENet", 51.3, 0.36, "Paszke et al. 2016"),
    PublishedResult("ESPNet", 55.6, 0.36, "Mehta et al. 2018"),
    PublishedResult("CGNet", 65.6, 0.5, "Wu et al. 2020"),
    PublishedResult("DABNet", 66.4, 0.75, "Li et al. 2019"),
)

# data set -> (published figures, what they are, the title of its plot)
PLOTS = {
    "cityscapes": (CITYSCAPES_TEST + (FPLNET_CITYSCAPES_TEST,), "Cityscapes test, FPLNet paper Table IV",
                   "Cityscapes test mIoU vs parameters, as reported (the paper's Fig. 5)"),
    "camvid": (CAMVID_TEST, "CamVid test, as published (source in brackets)",
               "CamVid mIoU vs parameters: published test figures, ours on the split named"),
}


def measured_params(point: MeasuredPoint) -> int:
    """Parameters of a measured point's model: read from its checkpoint file, or built from the
    registry with its data set's class count."""
    if Path(point.name).is_file():
        from ..models import load_model
        return count_params(load_model(point.name)[0])
    from ..data.info import get_info
    from ..models import create_model
    return count_params(create_model(point.name, num_classes=get_info(point.dataset).num_classes))


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")   # files only: no display needed, and no GUI backend picked up by accident
    import matplotlib.pyplot as plt
    return plt


def _draw(path: Path, dataset: str, measured: Sequence[MeasuredPoint]) -> None:
    plt = _pyplot()

    published, what, title = PLOTS[dataset]
    fig, ax = plt.subplots(figsize=(7.5, 5), dpi=150)
    for result in published:
        star = result is FPLNET_CITYSCAPES_TEST
        ax.scatter(result.params_m, result.miou, s=90 if star else 36, marker="*" if star else "o",
                   color="red" if star else "0.45", zorder=3 if star else 2)
        label = result.name if dataset == "cityscapes" else f"{result.name} [{result.source}]"
        ax.annotate(label, (result.params_m, result.miou), textcoords="offset points", xytext=(5, 3), fontsize=8,
                    color="red" if star else "0.25")
    ax.scatter([], [], s=36, color="0.45", label=f"reported: {what}")
    for point in measured:
        params = measured_params(point) / 1e6
        ax.scatter(params, point.miou, s=60, marker="s", facecolor="none", edgecolor="tab:blue", linewidth=1.5,
                   zorder=4, label=point.label)
        ax.annotate(point.label, (params, point.miou), textcoords="offset points", xytext=(6, -10), fontsize=8,
                    color="tab:blue")
    ax.set_xlabel("parameters (millions)")
    ax.set_ylabel("mIoU (%)")
    ax.set_title(title, fontsize=10)
    ax.margins(x=0.12, y=0.08)   # room for the labels right of the points
    ax.grid(True, alpha=0.3)
    # "best": wherever no point is, which "lower right" was not once ours fell below the baselines.
    ax.legend(fontsize=8, loc="best")
    fig.tight_layout()
    atomic_write(path, lambda file: fig.savefig(file, format="png"))
    plt.close(fig)


def draw_cityscapes(path: Path, measured: Sequence[MeasuredPoint] = ()) -> None:
    """The paper's Fig. 5, with any of our points measured on Cityscapes (labelled by split)."""
    _draw(path, "cityscapes", [p for p in measured if p.dataset == "cityscapes"])


def draw_camvid(path: Path, measured: Sequence[MeasuredPoint] = ()) -> None:
    """Published CamVid test figures of the baselines beside our CamVid points."""
    _draw(path, "camvid", [p for p in measured if p.dataset == "camvid"])


def draw_evaluation(path: Path, matrix: ConfusionMatrix, class_names: Sequence[str],
                    palette: Sequence[Sequence[int]], title: str) -> None:
    """Left: the confusion matrix with each row (a ground-truth class) in percent of that class's
    pixels, so the diagonal is the per-class recall and a row's other cells say where its pixels
    went; a class absent from the ground truth is a grey row. Right: IoU per class as bars in the
    class's palette colour, rows aligned with the matrix, the mIoU as a dashed line."""
    plt = _pyplot()
    n = matrix.num_classes
    if len(class_names) != n or len(palette) != n:
        raise ValueError(f"{len(class_names)} class names and {len(palette)} colours for {n} classes")
    counts = matrix.matrix.double().cpu()
    # 0/0 -> NaN for a class with no ground-truth pixels: drawn grey, not as a row of zeros.
    percent = (counts / counts.sum(1, keepdim=True) * 100).numpy()
    result = matrix.compute()
    iou = (result["iou"] * 100).numpy()
    miou = result["miou"] * 100

    side = max(5.0, 0.42 * n + 1.5)   # inches: room for a readable number in every cell
    fig, (ax_matrix, ax_iou) = plt.subplots(1, 2, figsize=(side * 1.75, side * 0.9), dpi=130,
                                            gridspec_kw={"width_ratios": [1.45, 1]})
    colormap = plt.get_cmap("Blues").with_extremes(bad="0.85")
    # aspect="auto": both panels get the same height, so the bars line up with the matrix rows.
    image = ax_matrix.imshow(percent, cmap=colormap, vmin=0, vmax=100, aspect="auto")
    cell_font = 8 if n <= 12 else 6
    for row in range(n):
        for col in range(n):
            value = percent[row, col]
            if not np.isnan(value) and value >= 0.05:   # skip NaN and cells that round to 0.0
                ax_matrix.text(col, row, f"{value:.1f}" if value < 10 else f"{value:.0f}", ha="center",
                               va="center", fontsize=cell_font, color="white" if value > 55 else "0.15")
    ax_matrix.set_xticks(range(n), class_names, rotation=45, ha="right", rotation_mode="anchor", fontsize=8)
    ax_matrix.set_yticks(range(n), class_names, fontsize=8)
    ax_matrix.set_xlabel("predicted class")
    ax_matrix.set_ylabel("ground-truth class")
    ax_matrix.set_title("confusion matrix, % of each ground-truth class", fontsize=10)
    fig.colorbar(image, ax=ax_matrix, fraction=0.046, pad=0.02).set_label("% of the row's pixels", fontsize=8)

    colors = [tuple(channel / 255 for channel in color) for color in palette]
    present = ~np.isnan(iou)
    ax_iou.barh([i for i in range(n) if present[i]], iou[present], height=0.7,
                color=[c for c, keep in zip(colors, present) if keep], edgecolor="0.2", linewidth=0.6)
    for i in range(n):
        ax_iou.text(iou[i] + 1 if present[i] else 1, i, f"{iou[i]:.1f}" if present[i] else "absent (not in the mean)",
                    va="center", fontsize=8, color="0.15" if present[i] else "0.5",
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.6, "alpha": 0.8})   # over the mIoU line
    if not np.isnan(miou):
        ax_iou.axvline(miou, color="red", linestyle="--", linewidth=1.2, zorder=1)
    ax_iou.set_ylim(n - 0.5, -0.5)   # first class on top, as in the matrix
    ax_iou.set_yticks(range(n), class_names, fontsize=8)
    ax_iou.set_xlim(0, 110)
    ax_iou.set_xlabel("IoU (%)")
    ax_iou.set_title(f"IoU per class; red dashes: mIoU {miou:.2f}", fontsize=10)
    ax_iou.grid(True, axis="x", alpha=0.3)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda file: fig.savefig(file, format="png"))
    plt.close(fig)
