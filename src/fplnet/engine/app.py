"""`fplnet app`: a local web page (Gradio) to try a checkpoint on your own images and videos.

    fplnet app                                   # http://127.0.0.1:7860, the shipped CamVid weights
    fplnet app --checkpoint runs/x/best.pt --variant fast --port 8000

The page shows an image beside its colour mask and an overlay whose opacity a slider sets, a
legend with the share of the image each class covers, and the measured latency per frame; a
video comes back segmented, with a progress bar. The weights (any shipped name or a checkpoint
path) and the inference variant are picked on the page.

The page is a thin layer: ``segment_image`` and ``segment_video`` below are plain functions of
a ``Segmenter`` (all inference goes through it) and run without a browser; videos are read and
written by ``fplnet predict``'s own ``Predictor``. Gradio is imported only by ``build_app``, so
this module imports without it (``pip install 'fplnet[app]'`` adds it).

The server binds to 127.0.0.1: only this machine can open the page. ``--host 0.0.0.0`` serves
it, and Gradio's HTTP API behind it, to every machine that can reach this one, without a
password: anyone there can run the model on files they upload.
"""
from __future__ import annotations

import functools
import importlib.util
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from html import escape
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from ..checkpoint import PRETRAINED
from ..exported import is_exported_file
from ..data.info import blend_overlay
from .demo import DEMO_ROOT

DEMO_FRAMES = sorted((DEMO_ROOT / "val").glob("*.png"))
IMAGE_HINT = "upload a PNG, JPEG, BMP, TIFF or WebP picture"
VIDEO_HINT = "upload an MP4, MOV, AVI or MKV video"


# --- the variant menu ----------------------------------------------------------------------------

@dataclass(frozen=True)
class AppVariant:
    """One entry of the page's variant menu. ``spec`` is a ``fplnet.fast.Variant`` spec, or "fast"
    for the device's fast path (what ``Segmenter(fast=True)`` and ``fplnet predict`` run);
    ``requires`` are the modules it needs, and the menu lists it only where they are installed."""
    label: str
    spec: Optional[str]
    note: str
    requires: tuple[str, ...] = ()

    def available(self) -> bool:
        return all(importlib.util.find_spec(module) is not None for module in self.requires)


# A new way of running the model is one more entry here once fplnet.fast has it.
VARIANTS = (
    AppVariant("eager", "eager", "plain fp32 PyTorch; no wait"),
    AppVariant("fast", "fast", "fplnet predict's fast path: on a CPU OpenVINO fp32 where it is installed, "
                             "else torch.compile, which compiles on the first image of each size (up to a minute)"),
    AppVariant("onnxruntime", "onnxruntime", "the exported ONNX graph in ONNX Runtime (CPU)",
               requires=("onnx", "onnxruntime")),
    AppVariant("openvino", "openvino", "the exported graph in OpenVINO (CPU), fp32 precision set explicitly",
               requires=("onnx", "openvino")),
    AppVariant("openvino+int8", "openvino+int8", "OpenVINO INT8: NNCF quantization on 300 frames of the model's "
                                                 "training split when first picked (needs that data set on disk)",
               requires=("onnx", "openvino", "nncf")),
)


def available_variants() -> list[AppVariant]:
    return [variant for variant in VARIANTS if variant.available()]


def find_variant(label: str) -> AppVariant:
    for variant in VARIANTS:
        if variant.label == label:
            return variant
    raise ValueError(f"unknown variant {label!r}; choose one of {', '.join(v.label for v in available_variants())}")


def load_segmenter(checkpoint: str, variant: str = "eager", device: str = "cpu"):
    """The ``Segmenter`` for a weights name or checkpoint path and a menu variant, kept between
    requests: the fast path builds (OpenVINO) or compiles (torch) once per input size, not once per
    image. A checkpoint file rewritten since (a training run's ``best.pt``) is loaded again: its
    modification time is part of the key."""
    checkpoint = str(checkpoint).strip().strip("'\"")
    if checkpoint not in PRETRAINED:
        checkpoint = str(Path(checkpoint).expanduser())
    if is_exported_file(checkpoint):
        # The page runs a checkpoint the way its variant menu says; a file runs only as it is.
        raise ValueError(f"{checkpoint} is an exported model, which runs only as it is: the app runs checkpoints "
                         "with the variant chosen on the page; segment with the file by `fplnet predict --checkpoint "
                         "FILE` or Segmenter(FILE), or give the app the checkpoint it was exported from")
    stamp = Path(checkpoint).stat().st_mtime_ns if checkpoint not in PRETRAINED and Path(checkpoint).is_file() else None
    return _load_segmenter(checkpoint, variant, device, stamp)


def offered_weights(weights: str, choices: list[str], any_path: bool) -> str:
    """``weights`` if the page may load it: any name or path on this machine's own page, only
    ``choices`` on a page other machines can reach."""
    if not any_path and weights not in choices:
        raise ValueError(f"this server offers only these weights: {', '.join(choices)}")
    return weights


@functools.lru_cache(maxsize=4)
def _load_segmenter(checkpoint: str, variant: str, device: str, stamp: Optional[int]):
    from ..inference import Segmenter
    entry = find_variant(variant)
    if not entry.available():
        raise ValueError(f"variant {variant} needs {', '.join(entry.requires)}; install them or pick another variant")
    return Segmenter(checkpoint, device=device, variant=entry.spec)


# --- the functions behind the page ---------------------------------------------------------------

@dataclass(frozen=True)
class ClassShare:
    name: str
    color: tuple[int, int, int]
    fraction: float   # of the image's pixels


@dataclass
class ImageResult:
    image: np.ndarray      # H x W x 3 uint8 RGB, as read
    labels: np.ndarray     # H x W train ids
    mask: np.ndarray       # H x W x 3 uint8, the dataset palette
    overlay: np.ndarray    # H x W x 3 uint8, the mask blended over the image
    shares: list[ClassShare]
    latency_ms: float      # preprocessing, forward pass and argmax, as fplnet predict measures it
    first_of_size: bool    # this call paid the variant's one-time setup (compiling, tracing) for the size


def read_image(path, name: Optional[str] = None) -> np.ndarray:
    """An uploaded file -> H x W x 3 uint8 RGB, read the way fplnet reads every image
    (``fplnet.inference.load_rgb``); anything else is a ValueError that names the file as the
    user knows it (``name``, not Gradio's temporary path) and says what to upload."""
    from PIL import UnidentifiedImageError
    from ..inference import load_rgb
    name = name or Path(path).name
    try:
        return load_rgb(Path(path))
    except (OSError, SyntaxError, ValueError) as err:
        # fplnet's reader wraps Pillow's error in its own, which speaks of data sets; the page
        # gives Pillow's reason, or the reader's own where there is none (a 16-bit image).
        cause = err if isinstance(err, UnidentifiedImageError) else (err.__cause__ or err.__context__)
        if isinstance(cause, UnidentifiedImageError):
            raise ValueError(f"{name} is not an image; {IMAGE_HINT}") from None
        reason = str(cause) if cause is not None else str(err).replace(str(path), name)
        raise ValueError(f"{name} could not be read as an image ({reason}); {IMAGE_HINT}") from err


def class_shares(labels: np.ndarray, info) -> list[ClassShare]:
    """The fraction of the pixels of each class of ``info`` (a DatasetInfo), in class order."""
    counts = np.bincount(np.asarray(labels).ravel(), minlength=info.num_classes)[: info.num_classes]
    total = max(int(np.asarray(labels).size), 1)
    return [ClassShare(name, tuple(color), int(count) / total)
            for name, color, count in zip(info.class_names, info.palette, counts)]


def segment_image(segmenter, image, alpha: float = 0.5) -> ImageResult:
    """One image (a path, PIL image or uint8 RGB array) through ``segmenter``."""
    rgb = image if isinstance(image, np.ndarray) else read_image(image)
    setup_before = segmenter.runner.setup_seconds
    started = time.perf_counter()
    labels = segmenter.predict_arrays([rgb])[0]
    latency_ms = (time.perf_counter() - started) * 1000
    return ImageResult(image=rgb, labels=labels, mask=segmenter.colorize(labels),
                       overlay=segmenter.overlay(rgb, labels, alpha), shares=class_shares(labels, segmenter.info),
                       latency_ms=latency_ms, first_of_size=segmenter.runner.setup_seconds > setup_before)


@dataclass
class VideoResult:
    path: Path                # the segmented video (H.264 MP4)
    frames: int
    size: tuple[int, int]     # width, height of the frames as shown (a rotation flag applied)
    latency_ms: float         # median per frame


def probe_video(path) -> Optional[int]:
    """The frames the container announces, or None when it does not say; a ValueError if the file
    is not a video that can be decoded."""
    import av
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise ValueError(f"{Path(path).name} has no video stream; {VIDEO_HINT}")
            stream = container.streams.video[0]
            if stream.frames:
                return int(stream.frames)
            if stream.duration and stream.time_base and stream.average_rate:
                return max(1, round(float(stream.duration * stream.time_base * stream.average_rate)))
            return None
    except av.FFmpegError as err:
        raise ValueError(f"{Path(path).name} could not be decoded as a video ({err}); {VIDEO_HINT}") from err


def segment_video(segmenter, source, output_dir, alpha: float = 0.5,
                  progress: Optional[Callable[[int, Optional[int]], None]] = None) -> VideoResult:
    """Segment every frame of ``source`` into ``output_dir`` with ``fplnet predict``'s video code:
    the overlay at opacity ``alpha`` (the colour mask when ``alpha`` is 0). ``progress(done,
    total)`` is called after each frame; ``total`` is None when the container does not say."""
    import av
    from .predict import Item, Predictor, Writer
    source = Path(source)
    total = probe_video(source)
    done = 0

    def on_predicted(count: int) -> None:
        nonlocal done
        done += count
        if progress is not None:
            progress(done, total)

    predictor = Predictor(segmenter, Writer(segmenter, Path(output_dir), "color", alpha), batch_size=1,
                          quiet=True, on_predicted=on_predicted)
    try:
        path = predictor.video(Item(source, Path(source.stem), is_video=True))
    except av.FFmpegError as err:
        raise ValueError(f"{source.name} could not be decoded as a video ({err}); {VIDEO_HINT}") from err
    except ValueError as err:  # Predictor.video: no frame could be decoded
        raise ValueError(f"{source.name}: {err}; {VIDEO_HINT}") from err
    return VideoResult(path=path, frames=predictor.frames, size=predictor.frame_size,
                       latency_ms=statistics.median(predictor.latencies_ms or predictor.first_of_shape_ms))


# --- what the page shows -------------------------------------------------------------------------

def legend_html(shares: list[ClassShare]) -> str:
    """Colour swatch, class name and share of the image, one row per class, largest share first;
    classes absent from the image are greyed out."""
    cell = "padding:1px 8px;border:none"
    rows = []
    for share in sorted(shares, key=lambda s: -s.fraction):
        r, g, b = share.color
        rows.append(f'<tr style="opacity:{1 if share.fraction else 0.4}">'
                    f'<td style="{cell}"><span style="display:inline-block;width:1.1em;height:1.1em;'
                    f'vertical-align:middle;border:1px solid #888;background:rgb({r},{g},{b})"></span></td>'
                    f'<td style="{cell}">{escape(share.name)}</td>'
                    f'<td style="{cell};text-align:right">{100 * share.fraction:.1f}%</td></tr>')
    return (f'<table class="fplnet-legend" style="border-collapse:collapse;margin:0;font-size:0.9em">'
            f'<tr><th style="{cell}"></th><th style="{cell};text-align:left">class</th>'
            f'<th style="{cell};text-align:right">share of the image</th></tr>{"".join(rows)}</table>')


def latency_text(segmenter, milliseconds: float, size: tuple[int, int], first_of_size: bool = False) -> str:
    width, height = size
    net_h, net_w = segmenter.spec.network_size((height, width))
    network = "" if (net_w, net_h) == (width, height) else f", network at {net_w}x{net_h}"
    text = (f"{milliseconds:.0f} ms per frame at {width}x{height}{network} ({segmenter.model_name}, variant "
            f"{segmenter.variant}, {segmenter.device}; preprocessing, forward pass and argmax)")
    if first_of_size:
        text += " - the first image of this size includes one-time setup; the next one shows the steady latency"
    return text


def build_app(checkpoint: str = "camvid", variant: str = "eager", device: str = "cpu", any_path: bool = True):
    """The page as a ``gradio.Blocks``; ``serve`` starts it. ``any_path=False`` (a server other
    machines can reach) offers only the shipped weights and ``checkpoint``: a typed path would let
    any visitor load files of this machine and tell from the messages which paths exist."""
    import gradio as gr

    videos_dir = tempfile.TemporaryDirectory(prefix="fplnet-app-")   # removed when the process exits
    weights_choices = list(PRETRAINED) + ([checkpoint] if checkpoint not in PRETRAINED else [])

    def segmenter_for(weights, variant_label):
        return load_segmenter(offered_weights(weights, weights_choices, any_path), variant_label, device)
    variants = available_variants()
    if variant not in [v.label for v in variants]:
        raise ValueError(f"variant {variant} is not available here; choose one of {', '.join(v.label for v in variants)}")

    def problem(err: Exception) -> str:
        """The message box's text for a file or checkpoint that cannot be used: no stack trace."""
        return f"**Cannot process this:** {escape(str(err))}"

    def on_image(upload, weights, variant_label, alpha):
        # Called with Gradio's preprocessing off (the upload is a dict naming a file that Gradio has
        # checked into its upload folder): gr.Image would open the file with PIL and fail with its
        # own unhelpful error on a file that only looks like an image; read_image says what is wrong.
        # -> mask, overlay, legend, latency, message, state
        try:
            segmenter = segmenter_for(weights, variant_label)   # a mistyped path is reported at once
            if not upload:
                return None, None, "", "", "", None
            if not upload.get("path"):
                raise ValueError("the image did not arrive as a file; upload it again")
            result = segment_image(segmenter, read_image(upload["path"], upload.get("orig_name")), alpha)
        except (FileNotFoundError, ValueError) as err:
            return None, None, "", "", problem(err), None
        latency = latency_text(segmenter, result.latency_ms, result.image.shape[1::-1], result.first_of_size)
        return (result.mask, result.overlay, legend_html(result.shares), latency, "",
                (segmenter.info, result.image, result.labels))

    def on_opacity(state, alpha):
        # Blends again from the state: no model is needed (or rebuilt after the cache dropped it).
        if state is None:
            return None
        info, rgb, labels = state
        return blend_overlay(rgb, labels, info, alpha)

    def on_video(path, weights, variant_label, alpha, progress=gr.Progress()):
        # -> output video, latency, message
        if path is None:
            return None, "", "Upload a video first."
        try:
            segmenter = segmenter_for(weights, variant_label)
            progress((0, None), desc="segmenting", unit="frames")
            result = segment_video(segmenter, path, tempfile.mkdtemp(dir=videos_dir.name), alpha,
                                   progress=lambda done, total: progress((done, total), desc="segmenting",
                                                                         unit="frames"))
        except (FileNotFoundError, ValueError) as err:
            return None, "", problem(err)
        latency = latency_text(segmenter, result.latency_ms, result.size) + f"; median of {result.frames} frames"
        return str(result.path), latency, ""

    notes = "; ".join(f"{v.label}: {v.note}" for v in variants)
    # Gradio's cache of uploads and results is emptied of files over an hour old, every hour: a
    # long-running server's disk does not fill up.
    with gr.Blocks(title="FPLNet segmentation", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        app.fplnet_videos_dir = videos_dir   # lives as long as the app
        gr.Markdown("# FPLNet road-scene segmentation\nDrop an image or pick a CamVid frame below; "
                    "the Video tab segments a short clip.")
        with gr.Row():
            weights = gr.Dropdown(weights_choices, value=checkpoint, allow_custom_value=any_path,
                                  label="Weights: a shipped name, or type a checkpoint path" if any_path
                                  else "Weights")
            variant_menu = gr.Dropdown([v.label for v in variants], value=variant, label="Inference variant",
                                       info=notes)
            opacity = gr.Slider(0, 1, value=0.5, step=0.05, label="Overlay opacity", elem_id="opacity")
        message = gr.Markdown("", elem_id="message")
        with gr.Tab("Image"):
            with gr.Row(equal_height=True):
                image = gr.Image(type="filepath", label="Input", sources=["upload", "clipboard"],
                                 elem_id="input-image")
                mask = gr.Image(label="Colour mask", format="png", interactive=False, elem_id="mask-image")
                overlay = gr.Image(label="Overlay", format="png", interactive=False, elem_id="overlay-image")
            with gr.Row():
                with gr.Column(scale=2):
                    latency = gr.Textbox(label="Latency", interactive=False, elem_id="latency")
                    gr.Examples([[str(path)] for path in DEMO_FRAMES], inputs=[image], label="CamVid val frames",
                                elem_id="examples")
                with gr.Column(scale=1):
                    legend = gr.HTML(elem_id="legend")
        with gr.Tab("Video"):
            with gr.Row():
                video_in = gr.Video(label="Input video", sources=["upload"], include_audio=True, elem_id="input-video")
                video_out = gr.Video(label="Segmented (overlay at the opacity above; mask at 0)", interactive=False,
                                     elem_id="output-video")
            run_video = gr.Button("Segment video", variant="primary", elem_id="run-video")
            video_latency = gr.Textbox(label="Latency", interactive=False, elem_id="video-latency")
        state = gr.State(None)

        image_inputs = [image, weights, variant_menu, opacity]
        image_outputs = [mask, overlay, legend, latency, message, state]
        # One model-running event at a time: the Segmenters are shared, and a compiled one is not thread-safe.
        for trigger in (image.change, weights.change, variant_menu.change):
            trigger(on_image, image_inputs, image_outputs, preprocess=False, concurrency_id="model",
                    concurrency_limit=1)
        opacity.change(on_opacity, [state, opacity], [overlay], show_progress="hidden", trigger_mode="always_last")
        run_video.click(on_video, [video_in, weights, variant_menu, opacity], [video_out, video_latency, message],
                        concurrency_id="model", concurrency_limit=1)
    return app


# --- the command ---------------------------------------------------------------------------------

def add_arguments(parser):
    parser.add_argument("--checkpoint", default="camvid",
                        help=f"weights shown first: a shipped name ({', '.join(PRETRAINED)}) or a checkpoint file")
    parser.add_argument("--variant", default="eager", choices=[v.label for v in VARIANTS],
                        help="inference variant selected first (the page switches between them)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 or auto (default cpu)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default 127.0.0.1: this machine only; 0.0.0.0 serves the page "
                             "and its API to the whole network, without a password)")
    parser.add_argument("--port", type=int, default=7860, help="port to listen on (default 7860)")


def run(args) -> int:
    try:
        import gradio  # noqa: F401
    except ModuleNotFoundError:
        raise SystemExit("fplnet app: error: the web app needs Gradio: pip install 'fplnet[app]' "
                         "(make install includes it)") from None
    load_segmenter(args.checkpoint, args.variant, args.device)   # a bad checkpoint fails here, not in the page
    local = args.host in ("127.0.0.1", "localhost", "::1")
    app = build_app(args.checkpoint, args.variant, args.device, any_path=local)
    if not local:
        print(f"note: listening on {args.host}: every machine that can reach this one can use the page and its "
              "API, without a password; the page offers only the shipped weights and --checkpoint",
              file=sys.stderr)
    try:
        serve(app, args.host, args.port)
    except OSError:
        # Gradio's own text advises launch() parameters and environment variables; say it in fplnet's terms.
        raise SystemExit(f"fplnet app: error: cannot listen on {args.host}:{args.port} (in use by another "
                         "server, or not an address of this machine); pass another --port or --host") from None
    return 0


def serve(app, host: str = "127.0.0.1", port: int = 7860, block: bool = True) -> str:
    """Start the server (the demo frames may be served as examples) and return the page's URL;
    with ``block`` print it and wait until Ctrl+C. Without, the server keeps running in its
    threads until ``app.close()``."""
    app.launch(server_name=host, server_port=port, allowed_paths=[str(DEMO_ROOT)],
               prevent_thread_lock=True, quiet=True)
    if block:
        print(f"fplnet app: open {app.local_url} in a browser; Ctrl+C stops the server", flush=True)
        app.block_thread()
    return app.local_url
