"""``Segmenter``: a trained checkpoint as a function from RGB images to label maps.

    from fplnet import Segmenter
    seg = Segmenter("camvid")                    # or a checkpoint path; device="cuda" works too
    labels = seg.predict("street.png")           # H x W uint8 train ids, at the input's size
    Image.fromarray(seg.overlay("street.png", labels)).save("overlay.jpg")
    deployed = Segmenter("fplnet_camvid_int8.xml")   # a file `fplnet export` wrote, run as it is

Pre-processing follows the checkpoint's inference spec (``fplnet.spec``) and nowhere else: uint8 RGB ->
float in [0, 1] -> per-channel (x - mean) / std with the statistics stored in the checkpoint ->
antialiased bilinear resize to the checkpoint's network size (a fixed ``eval_size``, or the image
scaled to its ``eval_short_side`` with the aspect ratio kept, if it records either); the logits are
resized back to the image's size before the argmax, as ``fplnet evaluate`` does. Post-processing
(palette, train id -> Cityscapes label id) comes from the checkpoint's ``DatasetInfo``.

``fast=True`` runs the fastest variant measured for the device that stays in float32
(``fplnet.fast.fast_variant``; see docs/benchmarks.md). On a CPU that is the exported graph in
OpenVINO at f32 where OpenVINO is installed (the ``openvino`` extra; ``make install`` has it):
the fastest fp32 path on every CPU we measured, ready in half a second per input size. Without
OpenVINO it is BN folding, channels_last and torch.compile with freezing, which compiles on the
first image of each size (tens of seconds the first time on a machine, a few once inductor's
cache is warm); pass ``variant="channels_last"`` for no wait at all. On CUDA it is a CUDA graph
per input size. ``fast=False`` is plain fp32 NCHW eager PyTorch. Fast and plain agree on the
argmax of at least 99.9% of the pixels (tests/test_predict.py).

Building a ``Segmenter`` changes nothing outside it. The one process-wide switch, glibc keeping
freed memory (``fplnet.runtime.keep_freed_memory``; about 30% off a torch CPU forward at
512x1024, docs/benchmarks.md), is opt-in: name it in the variant (``variant="keep_memory+
openvino"``, which is what ``fplnet predict`` runs on CPU where OpenVINO is installed, else
``keep_memory+fold_bn+channels_last+compile+freeze``) or call ``keep_freed_memory()`` yourself.
It is not undone: the process keeps its peak memory.

Subnormal floats: trained weights hold thousands, and a trained network's activations turn
subnormal at run time; each is a slow microcode assist on Intel CPUs (the shipped CamVid model's
eager 512x1024 forward on a 2-core Xeon: 2.1-2.8 s as IEEE has it, 0.26-0.34 s flushed).
``load_model`` sets the weights' ones to zero, which halves the cost, not more (about 1.0 s:
the activations are the rest). The OpenVINO variants (the CPU fast path) and onnxruntime flush
in their own threads whatever the process has set. With a torch variant on an Intel CPU, call
``fplnet.runtime.flush_denormals()`` first thing in your program, before any tensor work: the
``fplnet`` commands do it at start-up; a ``Segmenter`` cannot, since the switch is per thread and
only takes hold in torch's worker threads if set before they start.

``variant="openvino"`` runs the exported graph in OpenVINO (fp32, precision set explicitly);
``variant="openvino+int8"`` quantizes it first with NNCF on ``calib_size`` frames of the model's
training split (``fplnet.calibration``: the data set the checkpoint records if reachable, else
pass ``calib_data=`` a data set root or a folder of images). ``segmenter.runner.backend_info()``
says which precision ran.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterable, Iterator, Optional, Sequence, Union

import numpy as np
import torch

from .calibration import calibration_set, refuse_unused_calib_data
from .data.base import read_rgb_image, rgb_array
from .data.info import blend_overlay, colorize, train_ids_to_label_ids
from .exported import ExportedModel, exported_file_device, is_exported_file, refuse_options_for_exported_file
from .fast import InferenceRunner, Variant, resolve_variant
from .models import load_model
from .spec import InferenceSpec
from .tta import DEFAULT_SCALES, TestTimeAugmentation

ImageLike = Union[str, Path, "PIL.Image.Image", np.ndarray]


def load_rgb(image: ImageLike) -> np.ndarray:
    """A path, PIL image or array -> H x W x 3 uint8 RGB (grey is repeated, alpha dropped).
    Files and PIL images follow the data sets' policy (``fplnet.data.base``: 8-bit modes are
    converted, 16-bit images refused); a file is turned upright by its EXIF orientation, as a photo
    viewer shows it; arrays must already be uint8."""
    if isinstance(image, (str, Path)):
        return read_rgb_image(Path(image), upright=True)
    if hasattr(image, "convert") and hasattr(image, "size"):  # a PIL image
        return rgb_array(image, "the PIL image")
    array = np.asarray(image)
    if array.ndim == 2:
        array = np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4):
        raise ValueError(f"expected an H x W x 3 RGB image, got an array of shape {array.shape}")
    if array.dtype != np.uint8:
        raise ValueError(f"expected a uint8 image (values 0..255), got {array.dtype}; "
                         "convert with (image * 255).round().astype(np.uint8) if it holds floats in [0, 1]")
    return np.ascontiguousarray(array[:, :, :3])


class Segmenter:
    def __init__(self, checkpoint: Union[str, Path], device: str = "cpu", fast: bool = True,
                 variant: Optional[str] = None, calib_data: Optional[Union[str, Path]] = None,
                 calib_size: Optional[int] = None, tta: Union[None, bool, Sequence[float]] = None,
                 tta_flip: bool = True, eval_size: Optional[Sequence[int]] = None,
                 short_side: Optional[int] = None):
        """``checkpoint``: a checkpoint file or a shipped weights name (``"camvid"``), or a file
        ``fplnet export`` wrote (.onnx, OpenVINO .xml, fp32 or INT8), which runs as it is on the CPU
        (``fplnet.exported``: ``variant``, ``fast=False`` and the calibration arguments are refused
        for it; ``variant`` then names its backend).
        ``variant`` overrides ``fast`` with an explicit ``fplnet.fast.Variant`` spec (or Variant),
        or ``"fast"`` for the device's fast path; with ``device="auto"`` the onnxruntime and
        OpenVINO variants run on the CPU, the only device they run on;
        only a variant with ``keep_memory`` changes the process's allocator (module docstring).
        ``calib_data`` and ``calib_size``: the calibration frames of an INT8 variant (default: the
        training split the checkpoint records, ``DEFAULT_CALIBRATION_FRAMES`` of them); refused for
        a variant that does not quantize.
        ``tta``: test-time augmentation (``fplnet.tta``): True for the default scales, or the
        scales to run; each is also run mirrored unless ``tta_flip`` is False.
        ``eval_size``: (H, W) the network runs at instead of the checkpoint's own network size;
        ``short_side``: instead, each image is scaled, aspect ratio kept, to this shorter side (a
        checkpoint that records neither runs each image at its own size: a 12-megapixel photo is
        then 70 times CamVid's pixels, at a scale the model never saw)."""
        if is_exported_file(checkpoint):
            self._load_exported(checkpoint, device, fast, variant, calib_data, calib_size)
        else:
            self._load_checkpoint(checkpoint, device, fast, variant, calib_data, calib_size, eval_size, short_side)
        self.spec = self.spec.with_size(eval_size, short_side)
        self.info = self.spec.info
        if self.info.num_classes != self.num_classes:
            raise ValueError(f"checkpoint {checkpoint}: its dataset lists {self.info.num_classes} classes "
                             f"but the model has {self.num_classes}")
        scales = DEFAULT_SCALES if tta is True else tta
        self.tta = TestTimeAugmentation(self.runner, scales, tta_flip) if scales else None

    def _load_checkpoint(self, checkpoint, device, fast, variant, calib_data, calib_size, eval_size, short_side):
        # "fast" (or fast=True) is the device's fast path; device "auto" is the CPU for the
        # exported-graph backends, which run there only (fplnet.fast.resolve_variant).
        self.variant, self.device = resolve_variant(variant if variant is not None else "fast" if fast else "eager",
                                                    device)
        refuse_unused_calib_data(calib_data, self.variant, calib_size)
        model, ckpt = load_model(checkpoint, device="cpu")
        self.model_name = ckpt["model_name"]
        self.num_classes = int(ckpt["num_classes"])
        self.spec = InferenceSpec.from_checkpoint(ckpt)
        # INT8 calibration frames are preprocessed at the size the model will run at.
        calibration = (calibration_set(ckpt, calib_data, calib_size, spec=self.spec.with_size(eval_size, short_side))
                       if self.variant.needs_calibration else None)
        self.runner = InferenceRunner(model, self.variant, self.device, calibration=calibration)

    def _load_exported(self, path, device, fast, variant, calib_data, calib_size):
        # The file runs as it is, on the CPU (fplnet.exported); ``variant`` names its backend.
        refuse_options_for_exported_file(path, variant, calib_data, calib_size, fast)
        self.device = exported_file_device(path, device)
        self.runner = ExportedModel(path)
        self.variant = Variant.parse(self.runner.backend)
        self.model_name, self.num_classes, self.spec = self.runner.model_name, self.runner.num_classes, self.runner.spec

    @property
    def runs_as(self) -> str:
        """How the model runs, for report lines: "variant SPEC", or "the exported file as it is
        (BACKEND)" for a file ``fplnet export`` wrote."""
        return self.runner.describe() if isinstance(self.runner, ExportedModel) else f"variant {self.variant}"

    def __repr__(self) -> str:
        return (f"Segmenter({self.model_name}, {self.num_classes} classes of {self.info.name}, "
                f"runs at {self.spec.describe_size()}, "
                f"device={self.device}, {self.runs_as}" + (f", tta={self.tta}" if self.tta else "") + ")")

    # -- pre- and post-processing ---------------------------------------------------------------
    def preprocess(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Same-size H x W x 3 uint8 RGB arrays -> normalized float32 (N, 3, H, W) on the device,
        at the images' own size (``logits`` resizes to the spec's network size)."""
        return self.spec.preprocess(images, self.device)

    def colorize(self, label_map: np.ndarray) -> np.ndarray:
        """H x W train ids -> H x W x 3 uint8 RGB in the dataset's palette."""
        return colorize(label_map, self.info)

    def overlay(self, image: ImageLike, label_map: np.ndarray, alpha: float = 0.5) -> np.ndarray:
        """The colour mask blended over the image: (1 - alpha) * image + alpha * colour."""
        return blend_overlay(load_rgb(image), label_map, self.info, alpha)

    def to_label_ids(self, label_map: np.ndarray) -> np.ndarray:
        """Train ids -> the dataset's official label ids (Cityscapes: the 34 ids of the test
        server); anything that is not a train id becomes 0, 'unlabeled'."""
        if self.info.train_to_label_id is None:
            raise ValueError(f"the checkpoint's dataset ({self.info.name}) has no train id -> label id table; "
                             "label ids exist for Cityscapes checkpoints only (use --format trainid or color)")
        return train_ids_to_label_ids(label_map, self.info)

    # -- prediction -----------------------------------------------------------------------------
    def logits(self, images: Sequence[np.ndarray]) -> torch.Tensor:
        """Same-size uint8 RGB arrays -> logits (N, C, H, W) at the images' size, on the device:
        the network runs at the spec's network size and its logits are resized back."""
        x = self.preprocess(images)
        return self.spec.to_input_size((self.tta or self.runner)(self.spec.to_network(x)), x.shape[-2:])

    def predict_arrays(self, images: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Same-size H x W x 3 uint8 RGB arrays, one forward pass -> H x W train id maps.

        When the network runs at another size than the images' and the runner is OpenVINO's at f32
        (the CPU fast path, ``openvino``, ``openvino+int8``, an IR file), without TTA, OpenVINO
        resizes the logits and takes the argmax in its own graph (``OpenVINORunner.labels``): the
        same bilinear resize up to float rounding, faster than torch's resize and argmax of the
        full-size logits (a 1080p frame: docs/runs/predict_pipeline_2026-12-03/)."""
        x = self.preprocess(images)
        size = tuple(x.shape[-2:])
        network_input = self.spec.to_network(x)
        if self.tta is None and tuple(network_input.shape[-2:]) != size:
            labels = self.runner.labels(network_input, size)
            if labels is not None:
                return list(labels.cpu().numpy())
        labels = self.spec.to_input_size((self.tta or self.runner)(network_input), size).argmax(1)
        labels = labels.to(torch.uint8) if self.num_classes <= 256 else labels
        return list(labels.cpu().numpy())

    def predict(self, image: ImageLike) -> np.ndarray:
        """One image (path, PIL image or H x W x 3 uint8 RGB array) -> H x W train ids (uint8)."""
        return self.predict_arrays([load_rgb(image)])[0]

    def predict_batch(self, images: Iterable[ImageLike], batch_size: int = 8) -> list[np.ndarray]:
        """Several images, in order; consecutive images of the same size share a forward pass."""
        return list(self.iter_predict(images, batch_size))

    def iter_predict(self, images: Iterable[ImageLike], batch_size: int = 8) -> Iterator[np.ndarray]:
        """``predict_batch`` as a generator: images are read as the passes need them (at most
        ``batch_size`` held at once), so a long sequence of frames is never all in memory."""
        group: list[np.ndarray] = []
        for image in images:
            array = load_rgb(image)
            if group and (len(group) == batch_size or array.shape != group[0].shape):
                yield from self.predict_arrays(group)
                group = []
            group.append(array)
        if group:
            yield from self.predict_arrays(group)
