"""Pictures from the command-line tools: `fplnet evaluate --plot` and its confusion matrix in
`--json`, and the class legend and progress bar of `fplnet predict` on a video."""
import json
import re

import numpy as np
import pytest
import torch
from PIL import Image

import fplnet.data.info
from fplnet import Segmenter
from fplnet.cli import main
from fplnet.data import build_dataset
from fplnet.engine.figures import draw_evaluation
from fplnet.engine.legend import Legend
from fplnet.metrics import ConfusionMatrix

from _helpers import camvid_image, make_checkpoint, write_video

CAMVID = fplnet.data.info.CAMVID
CITYSCAPES = fplnet.data.info.CITYSCAPES


@pytest.fixture(scope="module")
def camvid_ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "camvid.pt")


# --- fplnet evaluate --plot / --json ---------------------------------------------------------------

def test_evaluate_plot_and_confusion_matrix_in_json(camvid_ckpt, tiny_camvid, tmp_path, capsys):
    pytest.importorskip("matplotlib")
    plot, report = tmp_path / "figures" / "confusion.png", tmp_path / "eval.json"
    assert main(["evaluate", "--checkpoint", str(camvid_ckpt), "--dataset", "camvid", "--data-root", str(tiny_camvid),
                 "--split", "val", "--device", "cpu", "--plot", str(plot), "--json", str(report)]) == 0
    printed = capsys.readouterr().out.strip().splitlines()[-1]
    assert printed.startswith("mIoU: ")   # still the last line: the plot prints nothing after it

    with Image.open(plot) as image:
        assert image.format == "PNG"
        width, height = image.size
    assert 1000 <= width <= 4000 and 500 <= height <= 2500 and width > height   # matrix and bars side by side

    result = json.loads(report.read_text())
    confusion = result["confusion_matrix"]
    assert confusion["class_names"] == list(CAMVID.class_names)
    counts = np.array(confusion["counts"], dtype=np.int64)
    assert counts.shape == (11, 11)
    _, masks = build_dataset("camvid", tiny_camvid, "val").load_all_uint8()
    assert counts.sum() == sum(int((mask != CAMVID.ignore_index).sum()) for mask in masks)
    # The counts alone reproduce the IoU and mIoU the command printed.
    with np.errstate(invalid="ignore"):
        iou = np.diag(counts) / (counts.sum(0) + counts.sum(1) - np.diag(counts))
    assert f"mIoU: {np.nanmean(iou) * 100:.2f}" == printed
    assert result["miou"] == pytest.approx(np.nanmean(iou) * 100)


def test_draw_evaluation_with_a_class_absent(tmp_path):
    """A class in neither ground truth nor prediction has no row percentages and no IoU (NaN):
    it is drawn grey and marked absent, not as a zero or a crash."""
    pytest.importorskip("matplotlib")
    matrix = ConfusionMatrix(3)
    matrix.update(torch.tensor([0, 0, 1, 1, 1]), torch.tensor([0, 1, 1, 1, 0]))   # class 2 nowhere
    path = tmp_path / "absent.png"
    draw_evaluation(path, matrix, ["a", "b", "c"], [(255, 0, 0), (0, 255, 0), (0, 0, 255)], "hand-made")
    with Image.open(path) as image:
        assert image.format == "PNG" and min(image.size) >= 400


@pytest.mark.parametrize("plot, reason", [("figure.jpg", "ending in .png"), ("a_file/figure.png", "is a file")])
def test_evaluate_refuses_a_plot_it_cannot_write_before_evaluating(tmp_path, capsys, plot, reason):
    (tmp_path / "a_file").write_text("")
    assert main(["evaluate", "--checkpoint", "camvid", "--dataset", "camvid", "--data-root", str(tmp_path),
                 "--plot", str(tmp_path / plot)]) == 2
    err = capsys.readouterr().err
    assert "--plot" in err and reason in err


# --- the legend in video frames --------------------------------------------------------------------

@pytest.mark.parametrize("info, width, height", [(CAMVID, 480, 360), (CITYSCAPES, 2048, 1024), (CITYSCAPES, 480, 360)])
def test_legend_fits_the_frame_and_scales_with_it(info, width, height):
    legend = Legend(info, width, height)
    left, top, right, bottom = legend.box
    assert 0 < left < right <= width and 0 < top < bottom <= height
    assert right < width / 4   # a corner, not a banner
    assert len(legend.swatches) == info.num_classes
    for _, (x0, y0, x1, y1) in legend.swatches:
        assert left <= x0 < x1 <= right and top <= y0 < y1 <= bottom
        assert min(x1 - x0, y1 - y0) >= 9     # a visible patch of colour
    assert legend.font_px == max(11, round(height / 40))


def test_legend_draws_palette_swatches_and_leaves_the_rest_alone():
    frame = camvid_image(0)
    legend = Legend(CAMVID, frame.shape[1], frame.shape[0])
    drawn = legend.draw(frame)
    left, top, right, bottom = legend.box
    outside = np.ones(frame.shape[:2], bool)
    outside[top:bottom, left:right] = False
    np.testing.assert_array_equal(drawn[outside], frame[outside])
    for index, (x0, y0, x1, y1) in legend.swatches:
        assert (drawn[y0:y1, x0:x1] == np.array(CAMVID.palette[index], np.uint8)).all(), CAMVID.class_names[index]
    with pytest.raises(ValueError, match="laid out for 480x360 frames, got 240x180"):
        legend.draw(frame[::2, ::2])


def _read_video(path):
    import av
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24").astype(int) for frame in container.decode(video=0)]


def test_predict_video_legend_and_progress(tmp_path, capsys, monkeypatch):
    """The shipped weights: their label maps have the smooth regions of real predictions, which
    H.264 keeps close to the truth (a random network's speckle would not survive 4:2:0 chroma)."""
    pytest.importorskip("av")
    video = tmp_path / "clip.mp4"
    write_video(video, [camvid_image(i) for i in range(2)])   # 480 x 360

    monkeypatch.setenv("FPLNET_PROGRESS", "1")   # stderr is captured, not a terminal
    assert main(["predict", "--checkpoint", "camvid", str(video), "--output", str(tmp_path / "legend"),
                 "--no-fast"]) == 0
    err = capsys.readouterr().err
    assert re.search(r"clip\.mp4: .*\d/2 \[", err), err   # tqdm: frames done / total

    monkeypatch.delenv("FPLNET_PROGRESS")
    assert main(["predict", "--checkpoint", "camvid", str(video), "--output", str(tmp_path / "plain"),
                 "--no-fast", "--no-legend"]) == 0
    assert "/2 [" not in capsys.readouterr().err   # no terminal, no bar

    with_legend = _read_video(tmp_path / "legend" / "clip_overlay.mp4")
    without = _read_video(tmp_path / "plain" / "clip_overlay.mp4")
    assert len(with_legend) == len(without) == 2
    # What the videos should hold: the overlay of each decoded input frame, with and without legend.
    segmenter = Segmenter("camvid", fast=False)
    inputs = [frame.astype(np.uint8) for frame in _read_video(video)]
    overlays = [segmenter.overlay(rgb, labels) for rgb, labels in zip(inputs, segmenter.predict_arrays(inputs))]
    legend = Legend(CAMVID, 480, 360)
    left, top, right, bottom = legend.box
    for framed, plain, overlay in zip(with_legend, without, overlays):
        expected = legend.draw(overlay)
        # The frames are the overlay, legend or not, up to H.264's loss (crf 20: about 3 levels)...
        assert np.abs(framed - expected).max(axis=2).mean() < 5 and np.abs(plain - overlay).max(axis=2).mean() < 5
        # ... and in the corner the legend is really there, not the bare overlay (about 40 off).
        corner = (slice(top, bottom), slice(left, right))
        assert (np.abs(framed[corner] - expected[corner]).max(axis=2).mean() < 6
                < 20 < np.abs(framed[corner] - overlay[corner]).max(axis=2).mean())
        # The swatches in their palette colours (4:2:0 chroma blurs their edges: look at the centres).
        errors = [np.abs(framed[(y0 + y1) // 2, (x0 + x1) // 2] - np.array(CAMVID.palette[index])).max()
                  for index, (x0, y0, x1, y1) in legend.swatches]
        assert np.median(errors) <= 20 and max(errors) <= 48, errors
