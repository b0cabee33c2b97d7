"""`fplnet predict`: segment image files, folders (recursively) and videos with a checkpoint.

Outputs, for an input ``NAME.ext`` (inside a folder input, the same sub-folders are made
under ``--output``)::

    --format color     NAME_mask.png       the dataset palette (default)
    --format trainid   NAME_trainid.png    single channel, the network's class index (255 never occurs)
    --format labelid   NAME.png            single channel, Cityscapes label ids (test-server files)
    --overlay ALPHA    NAME_overlay.jpg    the palette blended over the input (ALPHA > 0)
    videos             NAME_overlay.mp4    or NAME_mask.mp4 with --overlay 0; always in colour

A video's frames carry a legend of the class names in their palette colours in the top-left
corner, sized to the frame height (``engine.legend``; ``--no-legend`` leaves it out), and a
tqdm bar counts its frames on a terminal (``engine.progress``; not with ``--quiet``).

Cityscapes test-server files (``--format labelid``): the server reads 8-bit PNGs of the 34
official label ids (road = 7, car = 26, ...), one per test image, and finds the prediction of
``CITY_SEQ_FRAME_leftImg8bit.png`` by matching ``CITY_SEQ_FRAME*.png`` anywhere in the uploaded
folder. We keep the input's file name unchanged (``frankfurt_000000_000294_leftImg8bit.png``
-> ``frankfurt_000000_000294_leftImg8bit.png``) and its city sub-folder when a folder is
given, which satisfies that rule and leaves no doubt about which image a file belongs to.
The train ids are mapped back with the checkpoint's ``train_to_label_id`` table. Uploading
train ids instead (road = 0, car = 13, ...) is a known pitfall (DABNet issue 32): the files are
accepted and score close to zero. No overlays are written in this mode unless ``--overlay`` is
given, so the output folder can be zipped as it is.

The model runs on the fast path of ``Segmenter`` unless ``--no-fast`` (plain eager) or
``--variant`` says otherwise; on CPU that path is OpenVINO at f32 where it is installed (ready in
half a second per image size), else torch.compile, which compiles the model on the first image of
each size and pays off over a folder or a video (docs/benchmarks.md). ``--variant openvino`` and
``openvino+int8`` run OpenVINO (INT8 calibrated on ``--calib-data`` or the checkpoint's
training split; the summary says which precision ran). ``--checkpoint`` also takes a file
``fplnet export`` wrote (.onnx, OpenVINO .xml, fp32 or INT8): it runs as it is on the CPU, with the
inference spec it carries, so what is predicted is what is deployed (``fplnet.exported``; an INT8
IR keeps its exported calibration, and the flags that would change how it runs are refused).
Whatever the variant, every image is run
at the checkpoint's network size (a fixed ``eval_size``, or its ``eval_short_side`` with the
aspect ratio kept: the shipped CamVid model runs a 1920x1080 frame at 640x360; ``--eval-size``
or ``--short-side`` overrides it) and its labels come back at the image's size (``fplnet.spec``).

An INPUT that does not exist is a bad argument (exit status 2, before the model is loaded), and
so is an ``--output`` where a result would replace one of the inputs. A file that exists but
cannot be read or segmented (a broken file, running out of memory, a full disk) is reported on
stderr and skipped; the others are still processed and the exit status is 1. Inside an input
folder, hidden folders and what an earlier run wrote there are not inputs: files named as this
command names its outputs (``*_mask.png``, ``*_trainid.png``, ``*_overlay.jpg``, ``*_overlay.mp4``,
``*_mask.mp4``) and anything under an ``--output`` inside the folder; a file given by name is
always an input. A file given twice (by name, or also inside a folder given) is segmented once;
two inputs whose results would share a file (``x.png`` and ``x.jpg`` in one folder, or
``d1/x.png d2/x.png`` by name) are refused before any work, rather than one replacing the other.

Videos: frames are decoded in order and written at the stream's average frame rate, so a
variable-frame-rate clip keeps its frames but not their exact timestamps; audio is not copied. A
rotation in the container's display matrix (phone clips store portrait video as landscape
frames with a flag) is applied before the network sees a frame (``upright``): the model is run
on the scene the way up a player shows it, and the result is written that way up, with no flag.
A corrupt packet costs its frame, not the video (skipped, and counted in a warning).

The summary gives the images (or frames) per second over the whole run, and the latency per
image (preprocessing, forward pass, resizing the logits back and argmax; file reading and writing
excluded), median and p90 over the calls that were not the first at their input size; those first
calls (compiling, tracing, OpenVINO's per-shape compile, CUDA-graph capture) are counted apart,
with the longest. Images are read ahead and their files written on two threads of their own
(``read_ahead``, ``Predictor.images_batch``), so the latency is measured with those threads
running beside the network: on 2 cores it is higher than `fplnet benchmark`'s figure for the same
model, while the run takes less time than reading, predicting and writing one after the other.
"""
from __future__ import annotations

import statistics
import sys
import time
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator, Optional

import numpy as np

from ..data.base import is_image_file
from ..io import atomic_output_path, atomic_save_image
from ..runtime import require_package
from .arguments import (add_calibration_arguments, add_network_size_arguments, add_tta_arguments,
                        checkpoint_or_exported_file, device_name, existing_path, float_between_0_and_1, positive_int,
                        variant_spec, writable_dir)
from .latency import summarize_ms
from .legend import Legend
from .progress import progress_bar

# Containers PyAV (FFmpeg) decodes, dash-cam and phone formats included (.ts / .mts from
# camcorders and dash cams, .m4v / .3gp from phones, .webm from browsers).
VIDEO_SUFFIXES = {".mp4", ".avi", ".mov", ".mkv", ".m4v", ".webm", ".ts", ".mts", ".m2ts", ".3gp"}
# The names this command gives its outputs: inside an input folder they are not inputs.
OUTPUT_ENDINGS = ("_mask.png", "_trainid.png", "_overlay.jpg", "_overlay.mp4", "_mask.mp4")
FORMATS = ("color", "trainid", "labelid")


def add_arguments(parser):
    parser.add_argument("--checkpoint", type=checkpoint_or_exported_file, required=True,
                        help="checkpoint file or shipped weights name (e.g. camvid), or a file `fplnet export` wrote "
                             "(.onnx, OpenVINO .xml), run as it is on the CPU")
    parser.add_argument("inputs", type=existing_path, nargs="+", metavar="INPUT",
                        help="image files, folders (searched recursively) and videos ("
                             + " ".join(sorted(VIDEO_SUFFIXES)) + ")")
    parser.add_argument("--output", type=writable_dir, required=True,
                        help="folder to write the results to (created if needed)")
    parser.add_argument("--format", choices=FORMATS, default="color",
                        help="color: palette PNG; trainid: class index PNG; labelid: Cityscapes label id PNG "
                             "named like the input (test-server submission)")
    parser.add_argument("--overlay", type=float_between_0_and_1, default=None, metavar="ALPHA",
                        help="blend the colour mask over the input with this weight and write NAME_overlay.jpg "
                             "(default 0.5; 0 for --format labelid; 0 disables)")
    parser.add_argument("--device", type=device_name, default="cpu", help="cpu, cuda, cuda:N or auto (default cpu)")
    add_network_size_arguments(parser)
    parser.add_argument("--batch-size", type=positive_int, default=1,
                        help="images (or video frames) per forward pass")
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--no-fast", action="store_true",
                     help="plain fp32 NCHW eager PyTorch instead of the fast path (see docs/benchmarks.md)")
    how.add_argument("--variant", type=variant_spec, default=None, metavar="SPEC",
                     help="run the model another way, e.g. keep_memory+channels_last, openvino+int8, "
                          "keep_memory+fold_bn+channels_last+compile+freeze (compiled torch), or fast (the "
                          "default: OpenVINO f32 on a CPU where it is installed, else compiled torch); "
                          "the switches are listed by `fplnet benchmark --help`")
    add_calibration_arguments(parser, "INT8 variants", "the training split the checkpoint records, if reachable")
    add_tta_arguments(parser)
    parser.add_argument("--no-legend", action="store_true",
                        help="videos: no legend of class names and colours in the top-left corner")
    parser.add_argument("--quiet", action="store_true", help="no line per file, only the summary")


@dataclass
class Item:
    source: Path
    relative: Path   # where the outputs go under --output, without suffix (sub-folders kept)
    is_video: bool


def is_earlier_output(path: Path, folder: Path, output: Optional[Path]) -> bool:
    """A file of an earlier run inside an input ``folder``: named as this command names its outputs
    (``OUTPUT_ENDINGS``), or anywhere under an ``--output`` that lies inside the folder (so a second
    run does not segment the first run's masks and overlays)."""
    if path.name.endswith(OUTPUT_ENDINGS):
        return True
    if output is None:
        return False
    output = output.resolve()
    return output != folder.resolve() and output.is_relative_to(folder.resolve()) and path.resolve().is_relative_to(output)


def collect_inputs(inputs, report, output: Optional[Path] = None) -> list[Item]:
    """Files, and the images and videos inside folders (not hidden ones, nor what an earlier run
    wrote there), in a stable order."""
    items = []
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*")
                           if p.is_file() and (is_image_file(p) or p.suffix.lower() in VIDEO_SUFFIXES)
                           and not any(part.startswith(".") for part in p.relative_to(path).parts)
                           and not is_earlier_output(p, path, output))
            if not found:
                report(path, "no images or videos in this folder")
            items += [Item(p, p.relative_to(path).with_suffix(""), p.suffix.lower() in VIDEO_SUFFIXES) for p in found]
        elif path.is_file():
            items.append(Item(path, Path(path.stem), path.suffix.lower() in VIDEO_SUFFIXES))
        else:
            report(path, "not a file or folder")
    return items


def video_output_path(item: Item, output: Path, alpha: float) -> Path:
    """The video file ``item`` (a video) gives under ``output``."""
    base = output / item.relative
    return base.with_name(f"{base.name}_{'overlay' if alpha > 0 else 'mask'}.mp4")


def item_outputs(item: Item, output: Path, fmt: str, alpha: float) -> list[Path]:
    """Every file ``item`` gives under ``output``, video or image."""
    return [video_output_path(item, output, alpha)] if item.is_video else output_paths(item, output, fmt, alpha)


def output_paths(item: Item, output: Path, fmt: str, alpha: float) -> list[Path]:
    """The image files ``item`` gives under ``output``: its --format file, then its overlay."""
    base = output / item.relative
    name = {"color": f"{base.name}_mask.png", "trainid": f"{base.name}_trainid.png",
            "labelid": f"{item.source.stem}.png"}[fmt]
    paths = [base.with_name(name)]
    if alpha > 0:
        paths.append(base.with_name(f"{base.name}_overlay.jpg"))
    return paths


class Writer:
    """Turns label maps into the files of the chosen --format."""

    def __init__(self, segmenter, output: Path, fmt: str, overlay: float):
        self.segmenter, self.output, self.format, self.alpha = segmenter, output, fmt, overlay

    def paths(self, item: Item) -> list[Path]:
        return output_paths(item, self.output, self.format, self.alpha)

    def write(self, item: Item, rgb: np.ndarray, labels: np.ndarray) -> list[Path]:
        from PIL import Image
        paths = self.paths(item)
        if self.format == "color":
            atomic_save_image(paths[0], Image.fromarray(self.segmenter.colorize(labels)))
        elif self.format == "trainid":
            atomic_save_image(paths[0], Image.fromarray(labels.astype(np.uint8), mode="L"))
        else:
            atomic_save_image(paths[0], Image.fromarray(self.segmenter.to_label_ids(labels), mode="L"))
        if self.alpha > 0:
            atomic_save_image(paths[1], Image.fromarray(self.segmenter.overlay(rgb, labels, self.alpha)), quality=90)
        return paths


def upright(frame) -> np.ndarray:
    """A decoded video frame as H x W x 3 RGB, turned the way a player shows it. PyAV reads the
    display matrix's rotation as degrees counterclockwise (``VideoFrame.rotation``), which
    ``np.rot90`` applies in quarter turns; a mirrored matrix (no camera writes one) is not undone."""
    rgb = frame.to_ndarray(format="rgb24")
    quarter_turns = round(frame.rotation / 90) % 4
    return np.ascontiguousarray(np.rot90(rgb, quarter_turns)) if quarter_turns else rgb


def _video_writer(path: Path, rate, width: int, height: int):
    import av
    container = av.open(str(path), mode="w")
    stream = container.add_stream("libx264", rate=rate)
    stream.width, stream.height = width, height
    # 4:2:0 halves the chroma planes, which needs even sides; 4:4:4 takes any size.
    stream.pix_fmt = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
    # x264's "veryfast" preset instead of its default "medium", at crf 19 instead of 20: encoding a
    # 1920x1080 frame took longer than the INT8 network on the 2-core VM; veryfast takes about a
    # quarter of the time, and at crf 19 decodes as close to the frames as medium at crf 20, for a
    # 9 % larger file (docs/runs/predict_pipeline_2026-12-03/, README "Videos").
    stream.options = {"crf": "19", "preset": "veryfast"}
    return container, stream


class Predictor:
    def __init__(self, segmenter, writer: Writer, batch_size: int, quiet: bool,
                 on_predicted: Optional[Callable[[int], None]] = None, legend: bool = False,
                 progress: bool = False):
        """``on_predicted(n)`` is called after each forward pass with the number of images or
        frames it predicted (the web app's progress bar). ``legend``: draw the class legend into
        video frames (``engine.legend``); ``progress``: a tqdm bar per video on a terminal."""
        self.segmenter, self.writer = segmenter, writer
        self.batch_size = max(1, batch_size)
        self.quiet = quiet
        self.on_predicted = on_predicted
        self.legend, self.progress = legend, progress
        # Per image or frame, pre- and post-processing included. A call that was the first at its
        # input shape (compiling, tracing, a CUDA graph, OpenVINO's per-shape compile) is kept apart,
        # so that the median says what a steady stream of inputs costs.
        self.latencies_ms: list[float] = []
        self.first_of_shape_ms: list[float] = []
        self.last_ms = 0.0
        self.images = self.frames = 0
        self.frame_size: Optional[tuple[int, int]] = None   # (width, height) of the last video's upright frames
        # Images' files are written on a thread of their own while the network runs the next
        # batch (see ``images_batch``); (item, latency, future of its paths), oldest first.
        self._writes: Optional[ThreadPoolExecutor] = None
        self._pending: deque[tuple[Item, float, Future]] = deque()

    def _run(self, rgbs: list[np.ndarray]) -> list[np.ndarray]:
        runner = self.segmenter.runner
        setup_before = runner.setup_seconds
        started = time.perf_counter()
        labels = self.segmenter.predict_arrays(rgbs)
        self.last_ms = (time.perf_counter() - started) * 1000 / len(rgbs)
        first_of_shape = runner.setup_seconds > setup_before   # the runner adds a new shape's first call there
        (self.first_of_shape_ms if first_of_shape else self.latencies_ms).extend([self.last_ms] * len(rgbs))
        if self.on_predicted is not None:
            self.on_predicted(len(rgbs))
        return labels

    def images_batch(self, batch: list[tuple[Item, np.ndarray]]) -> list[tuple[Item, Exception]]:
        """Predict a batch and hand each image's files to the writing thread. Returns the (item,
        error) of the images, of this batch or the one before, whose files could not be written;
        a failed prediction raises for the whole batch. ``finish_images`` waits for the rest.

        Why a thread: colouring, blending and encoding an image's PNG and JPEG take about as long
        as the INT8 network on a CamVid frame, and one core sits idle while they run between
        forward passes. Batch k is written while batch k + 1 is predicted and the next one read
        (``read_ahead``): about three batches in memory, where one after the other held one; the
        files, the lines printed and the failures reported come out in input order as before."""
        labels = self._run([rgb for _, rgb in batch])
        if self._writes is None:
            self._writes = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fplnet-write",
                                              initializer=_lower_priority)
        for (item, rgb), label_map in zip(batch, labels):
            self._pending.append((item, self.last_ms, self._writes.submit(self.writer.write, item, rgb, label_map)))
        return self._settle(keep=len(batch))

    def finish_images(self) -> list[tuple[Item, Exception]]:
        """Wait for every image's files; the (item, error) of those that could not be written."""
        return self._settle(keep=0)

    def close(self) -> None:
        """Stop the writing thread; writes not yet started are dropped (each file is written
        atomically, so nothing half-written is left), as when the run is interrupted."""
        if self._writes is not None:
            self._writes.shutdown(wait=True, cancel_futures=True)
            self._writes = None
        self._pending.clear()   # cancelled or unreported: not to be reported as failed writes later

    def _settle(self, keep: int) -> list[tuple[Item, Exception]]:
        """Wait for the oldest writes until ``keep`` are pending; report each in input order."""
        failed = []
        while len(self._pending) > keep:
            item, latency_ms, future = self._pending.popleft()
            try:
                paths = future.result()
            except Exception as err:   # a full disk, a folder in the way: this image only
                failed.append((item, err))
                continue
            self.images += 1
            if not self.quiet:
                print(f"{item.source} -> {', '.join(str(p) for p in paths)} ({latency_ms:.1f} ms)")
        return failed

    def video(self, item: Item) -> Path:
        """Segment a video into an .mp4 beside the other outputs; a video that fails leaves no
        file and no latencies behind (the summary counts written frames only)."""
        counted = len(self.latencies_ms), len(self.first_of_shape_ms)
        try:
            return self._video(item)
        except BaseException:
            del self.latencies_ms[counted[0]:], self.first_of_shape_ms[counted[1]:]
            raise

    def _video(self, item: Item) -> Path:
        av = require_package("av", "segmenting a video")
        overlay = self.writer.alpha > 0
        out_path = video_output_path(item, self.writer.output, self.writer.alpha)
        frames, frame_ms, skipped = 0, [], 0
        # Encoded under a temporary name and moved into place only when complete: an interrupted
        # or failed video leaves no torn file and an earlier one of the same name untouched.
        with atomic_output_path(out_path) as partial, av.open(str(item.source)) as source:
            if not source.streams.video:
                raise ValueError("the file has no video stream")
            stream = source.streams.video[0]
            rate = stream.average_rate or 25
            output, out_stream, legend = None, None, None
            # The total is known when the container records the frame count (0 when it does not).
            bar = progress_bar(stream.frames or None, item.source.name, "frame", enabled=self.progress)
            try:
                pending: list[np.ndarray] = []

                def flush():
                    nonlocal output, out_stream, frames, legend
                    labels = self._run(pending)
                    frame_ms.extend([self.last_ms] * len(pending))
                    for rgb, label_map in zip(pending, labels):
                        picture = (self.segmenter.overlay(rgb, label_map, self.writer.alpha) if overlay
                                   else self.segmenter.colorize(label_map))
                        if output is None:
                            self.frame_size = (rgb.shape[1], rgb.shape[0])
                            output, out_stream = _video_writer(partial, rate, rgb.shape[1], rgb.shape[0])
                            if self.legend:
                                legend = Legend(self.segmenter.info, rgb.shape[1], rgb.shape[0])
                        if legend is not None:
                            picture = legend.draw(picture)
                        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(picture), format="rgb24")
                        output.mux(out_stream.encode(frame))
                        frames += 1
                        bar.update()
                    pending.clear()

                # Packet by packet, so that one corrupt packet costs its frame, not the video.
                for packet in source.demux(stream):
                    try:
                        decoded = packet.decode()
                    except av.error.InvalidDataError:
                        skipped += 1
                        continue
                    for frame in decoded:
                        pending.append(upright(frame))
                        if len(pending) == self.batch_size:
                            flush()
                if pending:
                    flush()
            finally:
                bar.close()
                if output is not None:
                    output.mux(out_stream.encode(None))
                    output.close()
            if frames == 0:
                raise ValueError("no video frames could be decoded")
        if skipped:
            print(f"warning: {item.source}: {skipped} corrupt packet(s) could not be decoded; their frames are "
                  "left out of the output", file=sys.stderr)
        self.frames += frames
        if not self.quiet:
            print(f"{item.source} -> {out_path} ({frames} frames, {statistics.median(frame_ms):.1f} ms per frame)")
        return out_path

    def summary(self, wall_s: float) -> str:
        if not (self.images or self.frames):
            return "nothing was predicted"
        what = ", ".join(f"{n} {name}" for n, name in ((self.images, "images"), (self.frames, "video frames")) if n)
        from ..openvino_backend import precision_label
        precision = precision_label(self.segmenter.runner.backend_info())
        stats = summarize_ms(self.latencies_ms) if self.latencies_ms else None
        steady = (f"median {stats['median']:.1f} ms, p90 {stats['p90']:.1f} ms" if stats
                  else "no call after the first at its size")
        setup = (f"; first call at each input size (per-shape setup) apart: {len(self.first_of_shape_ms)} image(s), "
                 f"up to {max(self.first_of_shape_ms):.1f} ms" if self.first_of_shape_ms else "")
        rate = (self.images + self.frames) / wall_s if wall_s > 0 else float("inf")
        return (f"{what} in {wall_s:.1f} s ({rate:.1f} per second, reading and writing included); "
                f"latency per image (network, pre- and post-processing): {steady}{setup}; "
                f"{self.segmenter.model_name} on {self.segmenter.device}, {self.segmenter.runs_as}"
                + (f" (executed in {precision})" if precision else "")
                + f", network at {self.segmenter.spec.describe_size()}, "
                f"batch {self.batch_size}")


def _lower_priority() -> None:
    """Give the calling thread a lower scheduling priority (nice 10), on Linux.

    Why: the reading and writing threads of ``run`` share the cores with the network's threads.
    At the same priority they preempt them: on 2 cores the INT8 IR's median latency per CamVid
    frame rose from 37 to 45 ms; at nice 10 to 41 ms, the run as fast or faster
    (docs/runs/predict_pipeline_2026-12-03). Linux schedules threads as tasks, so a thread id
    sets one thread's priority; elsewhere that call would name a process, so nothing is changed."""
    if not sys.platform.startswith("linux"):
        return
    import os
    import threading
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
    except OSError:   # a sandbox that forbids it: the threads keep their priority
        pass


def read_ahead(items: list[Item], depth: int) -> Iterator[tuple[Item, Optional[Future]]]:
    """Each item in order with the future of its RGB array (None for a video), the images read on
    a thread of their own up to ``depth`` items ahead of the one handed out: decoding the next
    PNG or JPEG overlaps the forward pass of this one. A file that cannot be read raises from
    ``result()``, as ``load_rgb`` would have."""
    from ..inference import load_rgb
    pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fplnet-read", initializer=_lower_priority)
    queued: deque[tuple[Item, Optional[Future]]] = deque()
    upcoming = iter(items)

    def queue_next() -> None:
        item = next(upcoming, None)
        if item is not None:
            queued.append((item, None if item.is_video else pool.submit(load_rgb, item.source)))

    try:
        for _ in range(depth):
            queue_next()
        while queued:
            yield queued.popleft()
            queue_next()
    finally:   # also when the run stops early: reads not yet started are dropped
        pool.shutdown(wait=True, cancel_futures=True)


def check_outputs(items: list[Item], output: Path, fmt: str, alpha: float) -> list[Item]:
    """``items`` without repeats of one file (given twice, or a folder and a file in it), after
    refusing, before any work, outputs that would replace an input or that two inputs would share
    (``x.jpg`` and ``x.png`` in one folder, or ``d1/x.png d2/x.png`` given by name): the second
    would silently replace the first's result."""
    unique, seen = [], set()
    for item in items:
        if item.source.resolve() not in seen:
            seen.add(item.source.resolve())
            unique.append(item)
    owner: dict[Path, Path] = {}
    for item in unique:
        for path in item_outputs(item, output, fmt, alpha):
            if path.resolve() in seen:
                raise ValueError(f"--output {output}: the result for {item.source} would be written to {path}, "
                                 "which is one of the inputs; choose another --output")
            if path.resolve() in owner:
                raise ValueError(f"--output {output}: {owner[path.resolve()]} and {item.source} would both be written "
                                 f"to {path}; rename one, or predict them in separate runs with different --output")
            owner[path.resolve()] = item.source
    return unique


def run(args) -> int:
    from ..exported import is_exported_file
    from ..fast import resolve_variant
    from ..inference import Segmenter

    failures: list[str] = []

    def report(path, reason):
        failures.append(str(path))
        print(f"fplnet predict: cannot process {path}: {reason}", file=sys.stderr, flush=True)

    overlay = args.overlay if args.overlay is not None else (0.0 if args.format == "labelid" else 0.5)
    # A file name the terminal cannot encode must not stop the run at its progress line.
    if hasattr(sys.stdout, "reconfigure"):
        sys.stdout.reconfigure(errors="backslashreplace")
    # Inputs and output names first: a result that would replace an input is refused before any work.
    items = check_outputs(collect_inputs(args.inputs, report, args.output), args.output, args.format, overlay)

    if is_exported_file(args.checkpoint):
        # The file runs as it is: Segmenter refuses --variant, --no-fast and calibration for it.
        how = {"device": args.device, "variant": args.variant, "fast": not args.no_fast}
    else:
        # The command opts into the process-wide allocator switch on its fast path (fplnet.runtime).
        variant, device = resolve_variant(args.variant or ("eager" if args.no_fast else "fast"), args.device,
                                          keep_memory=True)
        how = {"device": device, "variant": variant}
    segmenter = Segmenter(args.checkpoint, **how, calib_data=args.calib_data, calib_size=args.calib_size, tta=args.tta,
                          tta_flip=args.tta_flip, eval_size=args.eval_size, short_side=args.short_side)
    if args.format == "labelid" and segmenter.info.train_to_label_id is None:
        raise ValueError(f"--format labelid needs a checkpoint trained on Cityscapes (its dataset maps train ids "
                         f"to label ids); {args.checkpoint} was trained on {segmenter.info.name!r}. "
                         "Use --format trainid or color")
    if "compile" in segmenter.variant:
        print(f"note: the fast path ({segmenter.variant}) compiles the model on the first image of each size "
              "(seconds with a warm cache, up to a minute the first time); --variant keep_memory+channels_last "
              "starts at once", file=sys.stderr, flush=True)
    if args.format != "color" and any(item.is_video for item in items):
        print("note: videos are written in colour; --format applies to images", file=sys.stderr)
    predictor = Predictor(segmenter, Writer(segmenter, args.output, args.format, overlay), args.batch_size, args.quiet,
                          legend=not args.no_legend, progress=not args.quiet)

    started = time.perf_counter()
    batch: list[tuple[Item, np.ndarray]] = []

    def report_each(failed: list[tuple[Item, Exception]]) -> None:
        for item, err in failed:   # go on with the rest
            report(item.source, f"{type(err).__name__}: {err}")

    def flush():
        if batch:
            try:
                failed = predictor.images_batch(batch)
            except Exception as err:   # out of memory...: the prediction failed for the whole batch
                failed = predictor.finish_images() + [(item, err) for item, _ in batch]
            report_each(failed)
            batch.clear()

    try:
        for item, reading in read_ahead(items, depth=predictor.batch_size + 1):
            if item.is_video:
                flush()
                report_each(predictor.finish_images())   # the images before it are reported before it
                try:
                    predictor.video(item)
                except Exception as err:  # a broken video must not stop the other inputs
                    report(item.source, f"{type(err).__name__}: {err}")
                continue
            try:
                rgb = reading.result()
            except Exception as err:  # PIL raises OSError, SyntaxError, ValueError... for broken files
                # Reported in input order: after the images before it are predicted and written
                # (a rare stall of the pipeline, for a broken file only).
                flush()
                report_each(predictor.finish_images())
                report(item.source, f"{type(err).__name__}: {err}")
                continue
            if batch and (rgb.shape != batch[0][1].shape or len(batch) == predictor.batch_size):
                flush()
            batch.append((item, rgb))
        flush()
        report_each(predictor.finish_images())
    finally:
        predictor.close()

    print(predictor.summary(time.perf_counter() - started))
    if failures:
        print(f"fplnet predict: {len(failures)} input(s) could not be processed: {', '.join(failures)}",
              file=sys.stderr)
        return 1
    return 0
