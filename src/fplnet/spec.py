"""The inference spec: everything besides the weights that running a trained network needs.

    mean, std        per-channel normalization of RGB in [0, 1]
    class_names      one per output channel, in order
    palette          an RGB colour per class
    eval_size        (H, W) the network runs at, whatever the input's size
    eval_short_side  without eval_size: the input is scaled, aspect ratio kept, so that its
                     shorter side is this many pixels; neither: the input's own size

A checkpoint carries it (its ``dataset`` description and the two sizes), and so do shipped
safetensors (their metadata) and exported graphs (their metadata, ``to_dict``).
``InferenceSpec.from_checkpoint`` is the one reader: ``fplnet evaluate``, ``Segmenter`` (and so
``fplnet predict``, the web app and the demo), ``fplnet export``, ``fplnet benchmark`` and models
built with ``create_model(pretrained=...)`` / torch.hub (``model.inference_spec``) all take it from
here.

How it is applied, the same way everywhere (``fplnet.data.resize``): the image is normalized,
resized to the network size (``network_size``: ``eval_size``, else the short side) with
antialiased bilinear (the resize ``train_size`` applies to training images), run, and the
logits are resized bilinearly back to the input's size before the argmax. A model trained on
Cityscapes at 1024x512 is therefore run at 1024x512 whatever the size of the image it is given,
and its labels come back at the image's size.

Why a short side as well as a fixed size: CamVid's frames are all 360x480, so a CamVid model
needs no resize on CamVid, but the images users give it are not CamVid's. A 1920x1080 dashcam
frame run at its own size shows the network every object three times larger than anything it
trained on (and costs 12 times the pixels); squeezed to 360x480 it is distorted from 16:9 to
4:3. Scaling it to 640x360 keeps both the aspect ratio and the scale of the objects the network
learnt, which is what segmentation toolkits do with a keep-ratio resize in their test
pipelines. The shipped CamVid weights record ``eval_short_side`` 360 (their training frames'
short side); a checkpoint records what its run config asks for.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional, Sequence

import numpy as np
import torch

from .checkpoint import recorded_eval_short_side, recorded_eval_size
from .data.info import DatasetInfo, numbered_info
from .data.resize import network_input_size, resize_images, resize_logits
from .data.transforms import normalize


def preprocess(images: Sequence[np.ndarray], mean, std, device="cpu") -> torch.Tensor:
    """Same-size H x W x 3 uint8 RGB arrays -> normalized float32 (N, 3, H, W) on ``device``:
    [0, 255] -> [0, 1] -> (x - mean) / std per channel. The only preprocessing of fplnet's
    inference (``Segmenter``, calibration frames, the benchmark's agreement check); the resize
    to the network size follows (``InferenceSpec.to_network``)."""
    wrong = [f"{i}: {a.dtype}, shape {a.shape}" for i, a in enumerate(images)
             if a.dtype != np.uint8 or a.ndim != 3 or a.shape[2] != 3]
    if wrong:
        # A float image in [0, 1] would otherwise be divided by 255 a second time, silently.
        raise ValueError(f"expected H x W x 3 uint8 RGB arrays (values 0..255); image {wrong[0]}. Pass the "
                         "image through fplnet.inference.load_rgb, or convert floats in [0, 1] with "
                         "(image * 255).round().astype(np.uint8)")
    batch = torch.from_numpy(np.stack(images)).to(device)
    # NHWC -> NCHW as a real copy: a permuted view would run the eager model in channels_last
    # without anyone asking for it; the runner picks the memory format.
    batch = batch.permute(0, 3, 1, 2).contiguous().float().div_(255)
    return normalize(batch, mean, std)


@dataclass(frozen=True)
class InferenceSpec:
    info: DatasetInfo                          # classes, palette, mean, std, Cityscapes label ids
    eval_size: Optional[tuple[int, int]] = None
    eval_short_side: Optional[int] = None       # used only without eval_size

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> "InferenceSpec":
        """The spec a checkpoint dict records; one without a dataset description gets numbered
        classes, default colours and ImageNet statistics."""
        dataset = ckpt.get("dataset") or {}
        info = DatasetInfo.from_dict(dataset) if dataset else numbered_info(int(ckpt["num_classes"]))
        return cls(info, recorded_eval_size(ckpt), recorded_eval_short_side(ckpt))

    @classmethod
    def from_dict(cls, data: dict) -> "InferenceSpec":
        """Read back ``to_dict`` (e.g. from an exported file's metadata)."""
        size, short = data.get("eval_size"), data.get("eval_short_side")
        return cls(DatasetInfo.from_dict(data["dataset"]), None if size is None else (int(size[0]), int(size[1])),
                   None if short is None else int(short))

    def with_size(self, eval_size: Optional[Sequence[int]] = None, short_side: Optional[int] = None) -> "InferenceSpec":
        """This spec run at another size: a fixed ``eval_size`` (H, W), or ``short_side``; the
        one given replaces both recorded ones (None, None: unchanged)."""
        if eval_size is None and short_side is None:
            return self
        if eval_size is not None and short_side is not None:
            raise ValueError("give a fixed eval size or a short side, not both")
        if short_side is not None and (int(short_side) != short_side or short_side < 1):
            raise ValueError(f"short side {short_side!r}: must be a positive whole number of pixels")
        if eval_size is not None and (len(eval_size) != 2 or min(int(v) for v in eval_size) < 1):
            raise ValueError(f"eval size {eval_size!r}: must be (height, width) in positive pixels")
        return replace(self, eval_size=None if eval_size is None else (int(eval_size[0]), int(eval_size[1])),
                       eval_short_side=None if short_side is None else int(short_side))

    def to_dict(self) -> dict:
        """JSON-able: the fields a consumer without fplnet reads, and the full dataset description."""
        info = self.info.to_dict()
        return {"mean": info["mean"], "std": info["std"], "class_names": info["class_names"],
                "palette": info["palette"], "eval_size": None if self.eval_size is None else list(self.eval_size),
                "eval_short_side": self.eval_short_side,
                "resize": "input: antialiased bilinear (align_corners=False) to eval_size if set, else scaled "
                          "with its aspect ratio kept so its shorter side is eval_short_side if set, else "
                          "unchanged; logits: bilinear back to the input size",
                "dataset": info}

    # --- the fields by name --------------------------------------------------------------------
    @property
    def mean(self) -> tuple[float, ...]:
        return self.info.mean

    @property
    def std(self) -> tuple[float, ...]:
        return self.info.std

    @property
    def class_names(self) -> tuple[str, ...]:
        return self.info.class_names

    @property
    def palette(self) -> tuple[tuple[int, int, int], ...]:
        return self.info.palette

    @property
    def num_classes(self) -> int:
        return self.info.num_classes

    # --- applying it ---------------------------------------------------------------------------
    def preprocess(self, images: Sequence[np.ndarray], device="cpu") -> torch.Tensor:
        """uint8 RGB arrays of one size -> normalized (N, 3, H, W) at that size (``preprocess``)."""
        return preprocess(images, self.mean, self.std, device)

    def network_size(self, input_size: Sequence[int]) -> tuple[int, int]:
        """The (H, W) the network runs at for an input of ``input_size``."""
        return network_input_size(input_size, self.eval_size, self.eval_short_side)

    def describe_size(self) -> str:
        """How the network's input size is chosen, in words: HxW (e.g. 512x1024), a short side, or neither."""
        if self.eval_size is not None:
            return "x".join(map(str, self.eval_size))
        if self.eval_short_side is not None:
            return f"short side {self.eval_short_side} (aspect kept)"
        return "each input's own size"

    def to_network(self, images: torch.Tensor) -> torch.Tensor:
        """Normalized (N, 3, H, W) -> the network's input size (unchanged if it already is)."""
        return resize_images(images, self.network_size(images.shape[-2:]))

    def to_input_size(self, logits: torch.Tensor, input_size: Sequence[int]) -> torch.Tensor:
        """Logits at the network's size -> at ``input_size`` (unchanged if they already are)."""
        return resize_logits(logits, input_size)
