"""mIoU against parameters, like with like: one plot per data set and split.

* ``draw_cityscapes``: the paper's Fig. 5, drawn from its Table IV: Cityscapes **test** mIoU and
  parameters, as printed, of the networks with at most 5M parameters, FPLNet as the red star.
* ``draw_camvid``: published CamVid **test** mIoU of the baselines, each with its source, beside
  our own CamVid points, which are labelled with the split they were measured on (val or a
  held-out sequence, never test: the test split is kept away from this project).

A figure measured on one data set or split is never drawn on the axes of another: a CamVid val
mIoU on the Cityscapes-test plot reads as a comparison that it is not. ``fplnet benchmark
--plot-only --plot ... --camvid-plot ... --measured ...`` draws them (no timing).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from ..complexity import count_params
from ..io import atomic_write


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


def _draw(path: Path, dataset: str, measured: Sequence[MeasuredPoint]) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

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
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    atomic_write(path, lambda file: fig.savefig(file, format="png"))
    plt.close(fig)


def draw_cityscapes(path: Path, measured: Sequence[MeasuredPoint] = ()) -> None:
    """The paper's Fig. 5, with any of our points measured on Cityscapes (labelled by split)."""
    _draw(path, "cityscapes", [p for p in measured if p.dataset == "cityscapes"])


def draw_camvid(path: Path, measured: Sequence[MeasuredPoint] = ()) -> None:
    """Published CamVid test figures of the baselines beside our CamVid points."""
    _draw(path, "camvid", [p for p in measured if p.dataset == "camvid"])
