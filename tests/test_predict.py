"""`Segmenter` and `fplnet predict`: inputs of every kind, output formats, broken files."""

import numpy as np
import pytest
import torch
from PIL import Image

import fplnet.data.info
from fplnet import Segmenter
from fplnet.models import load_model
from fplnet.cli import main
from fplnet.fast import CPU_FAST_TORCH
from fplnet.openvino_backend import runs_here

from _helpers import CITYSCAPES_SAMPLE, camvid_image, camvid_images, make_checkpoint, normalized, write_video

# Plain eager: the CLI tests are about files, not speed, and must not wait for torch.compile.
EAGER = "--no-fast"


def small_pngs(folder, prefix: str, count: int) -> list:
    """``count`` small CamVid crops saved as PREFIX0.png, PREFIX1.png, ... in ``folder``."""
    paths = [folder / f"{prefix}{index}.png" for index in range(count)]
    for index, path in enumerate(paths):
        Image.fromarray(camvid_image(index)[:96, :128]).save(path)
    return paths


def printed_sources(stdout: str) -> list:
    """The inputs of predict's per-file lines ("SOURCE -> OUTPUTS (ms)"), in the order printed."""
    return [line.split(" -> ")[0] for line in stdout.splitlines() if " -> " in line]


@pytest.fixture(scope="module")
def camvid_ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "camvid.pt")


@pytest.fixture(scope="module")
def cityscapes_ckpt(tmp_path_factory):
    return make_checkpoint(tmp_path_factory.mktemp("ckpt") / "cityscapes.pt", fplnet.data.info.CITYSCAPES)


@pytest.fixture(scope="module")
def eager(camvid_ckpt):
    return Segmenter(camvid_ckpt, fast=False)


def test_eager_prediction_is_the_models_argmax(camvid_ckpt, eager):
    """Preprocessing happens once, with the checkpoint's statistics: same as normalizing by hand."""
    image = camvid_image(1)
    labels = eager.predict(image)
    assert labels.shape == image.shape[:2] and labels.dtype == np.uint8
    model, _ = load_model(camvid_ckpt)
    with torch.no_grad():
        expected = model(normalized(image)).argmax(1)[0].numpy()
    np.testing.assert_array_equal(labels, expected)
    assert len(np.unique(labels)) > 3  # a constant map would make the agreement tests below empty


@pytest.mark.parametrize("variant", [None, CPU_FAST_TORCH], ids=["fast", "compiled_torch"])
def test_fast_path_agrees_with_eager(camvid_ckpt, eager, variant):
    """fast=True (OpenVINO f32 where installed) and the compiled torch path it falls back to."""
    fast = Segmenter(camvid_ckpt, fast=True, variant=variant)
    if variant is None:
        assert fast.variant.backend == ("openvino" if runs_here() else "torch")
    else:
        assert fast.variant.backend == "torch" and "compile" in fast.variant
    image = camvid_image(2)
    agreement = (fast.predict(image) == eager.predict(image)).mean()
    assert agreement >= 0.999, f"{fast.variant}: argmax agrees on {agreement:.4%} of pixels"
    # The fp32 backends' bound (issue 9): BN folding and inductor reorder sums, no more.
    diff = (fast.logits([image]) - eager.logits([image])).abs().max().item()
    assert diff < 1e-3, f"{fast.variant}: max |logit diff| {diff:.2e}"


def test_inputs_of_every_kind_and_size(eager):
    path = camvid_images()[0]
    array = np.asarray(Image.open(path).convert("RGB"))
    from_path = eager.predict(path)
    np.testing.assert_array_equal(from_path, eager.predict(str(path)))
    np.testing.assert_array_equal(from_path, eager.predict(Image.open(path)))
    np.testing.assert_array_equal(from_path, eager.predict(array))
    rgba = np.concatenate([array, np.full(array.shape[:2] + (1,), 255, np.uint8)], axis=2)
    np.testing.assert_array_equal(from_path, eager.predict(rgba))

    odd = array[:97, :131]
    assert eager.predict(odd).shape == (97, 131)
    batch = eager.predict_batch([odd, array, array, odd[:50]], batch_size=2)
    assert [b.shape for b in batch] == [(97, 131), (360, 480), (360, 480), (50, 131)]
    np.testing.assert_array_equal(batch[1], from_path)
    read = []

    def frames():                       # a long stream: images are read as the passes need them
        for index in range(100):
            read.append(index)
            yield odd
    first = next(eager.iter_predict(frames(), batch_size=2))
    assert first.shape == (97, 131) and len(read) == 3   # one pass of 2, and the frame that ended it

    with pytest.raises(ValueError, match="uint8"):
        eager.predict(array.astype(np.float32))
    with pytest.raises(ValueError, match="uint8"):   # the array entry points check too
        eager.predict_arrays([array.astype(np.float32) / 255])


def test_colorize_and_overlay(eager):
    image = camvid_image(0)
    labels = eager.predict(image)
    color = eager.colorize(labels)
    palette = np.asarray(fplnet.data.info.CAMVID.palette, dtype=np.uint8)
    np.testing.assert_array_equal(color, palette[labels])
    np.testing.assert_array_equal(eager.overlay(image, labels, alpha=0.0), image)
    np.testing.assert_array_equal(eager.overlay(image, labels, alpha=1.0), color)
    # A rotated view of an image (not C-contiguous) gives a C-contiguous overlay, as it always did.
    turned = np.rot90(image)
    assert fplnet.data.info.blend_overlay(turned, np.rot90(labels), fplnet.data.info.CAMVID).flags.c_contiguous
    # In between, (1 - alpha) * image + alpha * colour in float32, rounded to the nearest level.
    for alpha in (0.3, 0.5, 0.85):
        expected = np.clip(np.rint((1 - alpha) * image.astype(np.float32) + alpha * color.astype(np.float32)), 0, 255)
        np.testing.assert_array_equal(eager.overlay(image, labels, alpha=alpha), expected.astype(np.uint8))


def test_cli_images_folders_and_a_broken_file(camvid_ckpt, tmp_path, capsys):
    images = camvid_images()
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    Image.open(images[0]).save(folder / "a.png")
    Image.open(images[1]).save(folder / "sub" / "b.jpg")
    (folder / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    small = tmp_path / "small.png"
    Image.fromarray(camvid_image(2)[:97, :131]).save(small)
    out = tmp_path / "out"

    status = main(["predict", "--checkpoint", str(camvid_ckpt), str(folder), str(small), "--output", str(out), EAGER])
    captured = capsys.readouterr()
    assert status == 1
    assert "broken.png" in captured.err
    assert "latency" in captured.out
    for name, size in (("a", (480, 360)), ("sub/b", (480, 360)), ("small", (131, 97))):
        mask = Image.open(out / f"{name}_mask.png")
        assert mask.mode == "RGB" and mask.size == size
        assert Image.open(out / f"{name}_overlay.jpg").size == size
    assert not list(out.glob("broken*"))
    # Every pixel of a colour mask is a palette colour.
    colors = np.asarray(Image.open(out / "a_mask.png")).reshape(-1, 3)
    assert set(map(tuple, np.unique(colors, axis=0))) <= set(fplnet.data.info.CAMVID.palette)


def test_cli_trainid_format(camvid_ckpt, tmp_path, eager):
    out = tmp_path / "out"
    image = camvid_images()[3]
    assert main(["predict", "--checkpoint", str(camvid_ckpt), str(image), "--output", str(out),
                 "--format", "trainid", "--overlay", "0", EAGER]) == 0
    written = Image.open(out / f"{image.stem}_trainid.png")
    assert written.mode == "L"
    np.testing.assert_array_equal(np.asarray(written), eager.predict(image))
    assert not list(out.glob("*_overlay.jpg"))


def test_cli_eval_size_runs_the_network_at_that_size(camvid_ckpt, tmp_path, eager, capsys):
    out = tmp_path / "out"
    image = camvid_images()[3]
    assert main(["predict", "--checkpoint", str(camvid_ckpt), str(image), "--output", str(out),
                 "--format", "trainid", "--overlay", "0", "--eval-size", "180x240", EAGER]) == 0
    assert "network at 180x240" in capsys.readouterr().out
    written = np.asarray(Image.open(out / f"{image.stem}_trainid.png"))
    small = Segmenter(camvid_ckpt, fast=False, eval_size=(180, 240))
    assert written.shape == (360, 480)
    np.testing.assert_array_equal(written, small.predict(image))
    assert (written != eager.predict(image)).any()      # not the full-size result under another name


def test_cli_labelid_for_the_cityscapes_server(cityscapes_ckpt, tmp_path):
    source = CITYSCAPES_SAMPLE / "leftImg8bit"
    out = tmp_path / "submission"
    assert main(["predict", "--checkpoint", str(cityscapes_ckpt), str(source), "--output", str(out),
                 "--format", "labelid", EAGER]) == 0
    written = out / "val" / "frankfurt" / "frankfurt_000000_000294_leftImg8bit.png"
    labels = np.asarray(Image.open(written))
    with Image.open(source / "val" / "frankfurt" / written.name) as image:
        assert labels.shape == (image.height, image.width)
    official = set(fplnet.data.info.CITYSCAPES.train_to_label_id)
    assert set(np.unique(labels)) <= official, "the server wants label ids (7 = road, 26 = car...), not train ids"
    assert len(np.unique(labels)) > 1
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == [written.name]  # nothing else to zip


def test_cli_refuses_to_write_over_its_inputs(cityscapes_ckpt, tmp_path, capsys):
    folder = tmp_path / "frames"
    folder.mkdir()
    with Image.open(next((CITYSCAPES_SAMPLE / "leftImg8bit").rglob("*.png"))) as image:
        image.resize((256, 128)).save(folder / "frame.png")
    before = (folder / "frame.png").read_bytes()
    assert main(["predict", "--checkpoint", str(cityscapes_ckpt), str(folder), "--output", str(folder),
                 "--format", "labelid", EAGER]) == 2
    assert "which is one of the inputs; choose another --output" in capsys.readouterr().err
    assert (folder / "frame.png").read_bytes() == before


def test_cli_a_second_run_does_not_segment_the_first_runs_results(camvid_ckpt, tmp_path, capsys):
    folder = tmp_path / "frames"
    (folder / ".cache").mkdir(parents=True)
    Image.fromarray(camvid_image(1)[:96, :128]).save(folder / "a.png")
    Image.fromarray(camvid_image(2)[:96, :128]).save(folder / ".cache" / "hidden.png")
    for output in (folder, folder / "pred"):      # the folder itself, and a folder inside it
        for _ in range(2):
            assert main(["predict", "--checkpoint", str(camvid_ckpt), str(folder), "--output", str(output), EAGER]) == 0
            assert "1 images in" in capsys.readouterr().out
    assert sorted(p.name for p in folder.iterdir() if p.is_file()) == ["a.png", "a_mask.png", "a_overlay.jpg"]
    assert sorted(p.name for p in (folder / "pred").iterdir()) == ["a_mask.png", "a_overlay.jpg"]


@pytest.mark.parametrize("failing", [0, 1], ids=["first", "while_the_one_before_is_written"])
def test_cli_an_input_that_fails_in_the_model_is_reported_and_the_rest_go_on(camvid_ckpt, tmp_path, capsys,
                                                                            monkeypatch, failing):
    """A forward pass that fails costs its batch only; one that fails while the batch before it is
    still being written on the writing thread keeps that batch's files and line, printed before the
    failure is reported (stdout and stderr in one stream here)."""
    import sys

    from fplnet.engine import predict as predict_module
    real, calls = predict_module.Predictor._run, {"n": 0}

    def out_of_memory_once(self, rgbs):
        calls["n"] += 1
        if calls["n"] == failing + 1:
            raise RuntimeError("not enough memory")
        return real(self, rgbs)

    monkeypatch.setattr(predict_module.Predictor, "_run", out_of_memory_once)
    inputs = small_pngs(tmp_path, "f", 3)
    out = tmp_path / "out"
    monkeypatch.setattr(sys, "stderr", sys.stdout)
    assert main(["predict", "--checkpoint", str(camvid_ckpt), *map(str, inputs), "--output", str(out), EAGER]) == 1
    stream = capsys.readouterr().out
    assert "cannot process" in stream and f"f{failing}.png: RuntimeError: not enough memory" in stream
    kept = [index for index in range(3) if index != failing]
    assert printed_sources(stream) == [str(inputs[i]) for i in kept]
    told = [line for line in stream.splitlines() if " -> " in line or "cannot process" in line]
    assert f"f{failing}.png: RuntimeError" in told[failing], stream   # in input order
    assert sorted(p.name for p in out.glob("*_mask.png")) == [f"f{i}_mask.png" for i in kept]


def test_cli_refuses_labelid_without_a_label_id_table(camvid_ckpt, tmp_path, capsys):
    status = main(["predict", "--checkpoint", str(camvid_ckpt), str(camvid_images()[0]),
                   "--output", str(tmp_path), "--format", "labelid", EAGER])
    assert status == 2
    assert "Cityscapes" in capsys.readouterr().err


def test_cli_video(camvid_ckpt, tmp_path):
    av = pytest.importorskip("av")
    frames = [camvid_image(i)[::2, ::2] for i in range(5)]   # 180 x 240
    video = tmp_path / "clip.mp4"
    write_video(video, frames)

    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", str(camvid_ckpt), str(video), "--output", str(out),
                 "--batch-size", "2", EAGER]) == 0
    with av.open(str(out / "clip_overlay.mp4")) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 5
    assert all(f.shape == (180, 240, 3) for f in decoded)
    # Encoded with x264's veryfast preset at crf 19, whose settings x264 writes into the stream.
    settings = (out / "clip_overlay.mp4").read_bytes()
    settings = settings[settings.index(b"x264 - core"):].split(b"\x00")[0].decode()
    assert all(f" {option} " in settings for option in ("ref=1", "me=hex", "subme=2", "trellis=0", "crf=19.0")), settings

    # A video that fails part-way leaves no torn file and the earlier output of its name untouched.
    broken = tmp_path / "broken" / "clip.mp4"
    broken.parent.mkdir()
    broken.write_bytes(video.read_bytes()[: len(video.read_bytes()) // 3])
    earlier = out / "broken_out" / "clip_overlay.mp4"
    earlier.parent.mkdir()
    earlier.write_bytes(b"an earlier result")
    assert main(["predict", "--checkpoint", str(camvid_ckpt), str(broken), "--output", str(earlier.parent), EAGER]) != 0
    assert earlier.read_bytes() == b"an earlier result"
    assert sorted(p.name for p in earlier.parent.iterdir()) == ["clip_overlay.mp4"]


def test_a_phone_clip_is_segmented_the_way_up_its_rotation_flag_says(tmp_path):
    """A portrait phone clip stores landscape frames and a display matrix rotated -90 degrees
    (turn clockwise to view, as ffmpeg's autorotate does): the network sees the upright scene and
    the result is written upright, with no flag."""
    av = pytest.importorskip("av")
    upright_scene = [camvid_image(i)[::2, ::2].transpose(1, 0, 2)[:, ::-1] for i in range(2)]   # 240 x 180
    stored = [np.ascontiguousarray(np.rot90(frame, 1)) for frame in upright_scene]               # 180 x 240
    video = tmp_path / "portrait.mp4"
    write_video(video, stored, rotation=-90)
    with av.open(str(video)) as container:
        first = next(container.decode(video=0))
        assert first.rotation == -90 and (first.height, first.width) == (180, 240)

    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", "camvid", str(video), "--output", str(out),
                 "--overlay", "0", "--no-legend", EAGER]) == 0
    with av.open(str(out / "portrait_mask.mp4")) as container:
        decoded = [f for f in container.decode(video=0)]
    assert len(decoded) == 2 and all(f.rotation == 0 for f in decoded)
    masks = [f.to_ndarray(format="rgb24") for f in decoded]
    assert all(mask.shape == (240, 180, 3) for mask in masks)
    # The colours are those of the upright scene's labels (up to the video codec's loss; the
    # shipped model, whose label maps are smooth enough to survive it), not those the sideways
    # frames give, turned upright.
    segmenter = Segmenter("camvid", fast=False)
    from fplnet.engine.predict import upright
    with av.open(str(video)) as container:
        turned = [upright(f) for f in container.decode(video=0)]
    # upright() gives back the scene the clip was made from (up to the codec), not a wrong turn of it.
    for scene, frame in zip(upright_scene, turned):
        assert frame.shape == scene.shape
        error, wrong_turn = np.abs(frame.astype(int) - scene).mean(), np.abs(frame.astype(int) - scene[::-1, ::-1]).mean()
        assert error < 8 and wrong_turn > 3 * error
    expected = [segmenter.colorize(segmenter.predict(frame)) for frame in turned]
    sideways = [np.rot90(segmenter.colorize(segmenter.predict(np.rot90(frame, 1))), -1) for frame in turned]
    for mask, right, wrong in zip(masks, expected, sideways):
        error, turned_error = np.abs(mask.astype(int) - right).mean(), np.abs(mask.astype(int) - wrong).mean()
        print(f"mean colour error {error:.1f} upright, {turned_error:.1f} segmented sideways")
        assert error < 8 and error < turned_error / 2


def test_a_photo_is_segmented_the_way_up_its_exif_orientation_says(eager, tmp_path):
    from fplnet.data.base import read_rgb_image
    from fplnet.inference import load_rgb
    image = Image.fromarray(camvid_image(0)[:120, :200])
    exif = image.getexif()
    exif[0x0112] = 6                       # "rotate 90 degrees clockwise to view"
    path = tmp_path / "phone.jpg"
    image.save(path, exif=exif)
    assert read_rgb_image(path).shape == (120, 200, 3)         # data sets: the stored pixels
    assert load_rgb(path).shape == (200, 120, 3)               # prediction: as a viewer shows it
    assert eager.predict(path).shape == (200, 120)


def test_the_runner_keeps_at_most_a_few_shapes_of_traces():
    """Each input size gets its own trace (or CUDA graph, with its memory pool); a folder of photos
    of many sizes keeps only the most recent ones."""
    from fplnet.fast import InferenceRunner
    runner = InferenceRunner(torch.nn.Conv2d(3, 4, 1).eval(), "torchscript")
    sizes = [(16 + i, 20) for i in range(InferenceRunner.MAX_SHAPES + 2)]
    # The first size is used again before the others overflow: the least recently used go, not the oldest.
    for size in sizes[:InferenceRunner.MAX_SHAPES] + [sizes[0]] + sizes[InferenceRunner.MAX_SHAPES:]:
        assert runner(torch.rand(1, 3, *size)).shape == (1, 4, *size)
    kept = sizes[3:InferenceRunner.MAX_SHAPES] + [sizes[0]] + sizes[InferenceRunner.MAX_SHAPES:]
    assert list(runner._per_shape) == [(1, 3, *size) for size in kept]


def test_cli_refuses_two_inputs_that_would_share_an_output(camvid_ckpt, tmp_path, capsys):
    """x.png and x.jpg in one folder both give x_mask.png: the second would replace the first's."""
    folder = tmp_path / "in"
    folder.mkdir()
    Image.fromarray(camvid_image(0)[:64, :96]).save(folder / "x.png")
    Image.fromarray(camvid_image(1)[:64, :96]).save(folder / "x.jpg")
    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", str(camvid_ckpt), str(folder), "--output", str(out), EAGER]) == 2
    err = capsys.readouterr().err
    assert "would both be written to" in err and "x_mask.png" in err
    assert not out.exists()


def test_cli_an_input_given_twice_runs_once_and_first_calls_per_size_are_reported_apart(camvid_ckpt, tmp_path,
                                                                                         capsys):
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        Image.fromarray(camvid_image(i)[:64, :96]).save(folder / f"f{i}.png")
    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", str(camvid_ckpt), str(folder), str(folder / "f0.png"),
                 "--output", str(out), "--batch-size", "1", EAGER]) == 0
    printed = capsys.readouterr().out
    assert printed.count(" -> ") == 3
    # The first call at the one input size is the per-shape setup, kept out of the median.
    assert "first call at each input size (per-shape setup) apart: 1 image(s)" in printed
    assert "latency per image (network, pre- and post-processing): median" in printed


def test_cli_a_corrupt_video_packet_costs_its_frame_not_the_video(camvid_ckpt, tmp_path, capsys):
    av = pytest.importorskip("av")
    video = tmp_path / "clip.avi"
    with av.open(str(video), "w") as container:        # MJPEG: every frame its own JPEG packet
        stream = container.add_stream("mjpeg", rate=5)
        stream.width, stream.height, stream.pix_fmt = 160, 120, "yuvj420p"
        for i in range(6):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(camvid_image(i % 3)[:120, :160]), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))
    data = bytearray(video.read_bytes())
    starts = [i for i in range(len(data) - 3) if data[i:i + 3] == b"\xff\xd8\xff"]   # each JPEG's start
    assert len(starts) == 6
    end = starts[4] - 16                                                              # the 4th frame's payload, scrambled
    data[starts[3] + 200:end] = bytes((byte * 7 + 13) & 0xFF for byte in data[starts[3] + 200:end])
    video.write_bytes(bytes(data))
    out = tmp_path / "out"
    assert main(["predict", "--checkpoint", str(camvid_ckpt), str(video), "--output", str(out), EAGER]) == 0
    assert "corrupt packet(s) could not be decoded" in capsys.readouterr().err
    with av.open(str(out / "clip_overlay.mp4")) as container:
        assert len(list(container.decode(video=0))) == 5


def test_cli_reads_ahead_and_writes_on_threads_of_its_own_in_input_order(camvid_ckpt, tmp_path, capsys, monkeypatch):
    """Images are decoded on a reading thread and their files written on a writing thread while
    the network runs; what it prints and reports (stdout and stderr in one stream here) comes in
    input order as one image after the other would give it: a failed write, a broken file, then
    a video after images."""
    import sys
    import threading

    import fplnet.inference
    from fplnet.engine import predict as predict_module
    pytest.importorskip("av")
    threads = {"read": set(), "write": set()}
    real_read, real_write = fplnet.inference.load_rgb, predict_module.Writer.write

    def read(image):
        if not isinstance(image, np.ndarray):   # a file read (overlay passes arrays through it too)
            threads["read"].add(threading.current_thread().name)
        return real_read(image)

    def write(self, item, rgb, labels):
        threads["write"].add(threading.current_thread().name)
        if item.source.stem == "i1":
            raise OSError("No space left on device")
        return real_write(self, item, rgb, labels)

    monkeypatch.setattr(fplnet.inference, "load_rgb", read)
    monkeypatch.setattr(predict_module.Writer, "write", write)
    images = small_pngs(tmp_path, "i", 5)
    images[2].write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    clip = tmp_path / "clip.mp4"
    write_video(clip, [camvid_image(i)[:96, :128] for i in range(3)])
    inputs = images[:4] + [clip, images[4]]
    out = tmp_path / "out"
    monkeypatch.setattr(sys, "stderr", sys.stdout)   # one stream: the order of lines and reports
    assert main(["predict", "--checkpoint", str(camvid_ckpt), *map(str, inputs), "--output", str(out), EAGER]) == 1
    stream = capsys.readouterr().out
    assert threads["read"] and threading.main_thread().name not in threads["read"]
    assert threads["write"] and threading.main_thread().name not in threads["write"]
    told = [next(str(path) for path in inputs if line.startswith(str(path)) or f" {path}: " in line)
            for line in stream.splitlines() if " -> " in line or "cannot process" in line]
    assert told == [str(path) for path in inputs], stream
    assert "i1.png: OSError: No space left on device" in stream and "i2.png: " in stream
    assert "3 images, 3 video frames in" in stream and "per second" in stream
    assert sorted(p.name for p in out.glob("*.png")) == [f"i{i}_mask.png" for i in (0, 3, 4)]



@pytest.mark.skipif(not runs_here(), reason="OpenVINO is not installed")
def test_openvino_resizes_and_takes_the_argmax_in_its_graph_when_sizes_differ(camvid_ckpt, eager, monkeypatch):
    """An image run at another size than its own: the fast path (OpenVINO) returns labels resized in
    its graph, as torch's resize + argmax of the same logits give them, up to float rounding; its
    first call per size is setup, not a steady call; TTA and same-size images keep the torch path."""
    from fplnet.openvino_backend import OpenVINORunner
    calls = []
    real = OpenVINORunner.labels
    monkeypatch.setattr(OpenVINORunner, "labels", lambda self, x, size: calls.append(size) or real(self, x, size))
    fast = Segmenter(camvid_ckpt, eval_size=(48, 64))
    image = camvid_image(5)[:96, :128]
    before = fast.runner.setup_seconds
    labels = fast.predict(image)
    assert calls == [(96, 128)] and labels.shape == (96, 128) and labels.dtype == np.uint8
    assert fast.runner.setup_seconds > before          # compiled for that shape and size: setup
    steady = fast.runner.setup_seconds
    fast.predict(image)
    assert fast.runner.setup_seconds == steady and len(calls) == 2
    torch_path = fast.logits([image]).argmax(1)[0].numpy()
    assert (labels == torch_path).mean() >= 0.9999
    plain = Segmenter(camvid_ckpt, fast=False, eval_size=(48, 64))
    assert (labels == plain.predict(image)).mean() >= 0.999
    Segmenter(camvid_ckpt, eval_size=(48, 64), tta="1").predict(image)
    Segmenter(camvid_ckpt, eval_size=(96, 128)).predict(image)
    assert len(calls) == 2


@pytest.mark.skipif(not runs_here(), reason="OpenVINO is not installed")
def test_labels_in_the_graph_leave_bf16_alone_and_recompiles_count_as_setup(camvid_ckpt):
    """At bf16 an appended resize would move more layers into bf16: no labels path there. And the
    logits and labels models share OpenVINO's cache of compiled models, so a logits model evicted
    by labels models for other sizes is compiled again, and that call is setup."""
    assert Segmenter(camvid_ckpt, variant="openvino+bf16", eval_size=(48, 64)).runner.labels(
        torch.zeros(1, 3, 48, 64), (96, 128)) is None
    runner = Segmenter(camvid_ckpt, eval_size=(32, 48)).runner
    x = torch.zeros(1, 3, 32, 48)
    runner(x)
    steady = runner.setup_seconds
    runner(x)
    assert runner.setup_seconds == steady
    for extra in range(runner.MAX_SHAPES):          # fills the cache: the logits model is dropped
        runner.labels(x, (40 + extra, 60))
    before = runner.setup_seconds
    runner(x)
    assert runner.setup_seconds > before
