"""The inference spec: everything besides the weights that running a trained network needs.

    mean, std        per-channel normalization of RGB in [0, 1]
    class_names      one per output channel, in order
    palette          an RGB colour per class
    eval_size        (H, W) the network runs at; None: at the input's own size

A checkpoint carries it (its ``dataset`` description and ``eval_size``), and so do shipped
safetensors (their metadata) and exported graphs (their metadata, ``to_dict``).
``InferenceSpec.from_checkpoint`` is the one reader: ``fplnet evaluate``, ``Segmenter`` (and so
``fplnet predict``, the web app and the demo), ``fplnet export``, ``fplnet benchmark`` and models
built with ``create_model(pretrained=...)`` / torch.hub (``model.inference_spec``) all take it from
here.

How it is applied, the same way everywhere (``fplnet.data.resize``): the image is normalized,
resized to ``eval_size`` with antialiased bilinear (the resize ``train_size`` applies to
training images), run, and the logits are resized bilinearly back to the input's size before
the argmax. A model trained on Cityscapes at 1024x512 is therefore run at 1024x512 whatever the
size of the image it is given, and its labels come back at the image's size.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np
import torch

from .checkpoint import recorded_eval_size
from .data.info import DatasetInfo, numbered_info
from .data.resize import resize_images, resize_logits
from .data.transforms import normalize


def preprocess(images: Sequence[np.ndarray], mean, std, device="cpu") -> torch.Tensor:
    """Same-size H x W x 3 uint8 RGB arrays -> normalized float32 (N, 3, H, W) on ``device``:
    [0, 255] -> [0, 1] -> (x - mean) / std per channel. The only preprocessing of fplnet's
    inference (``Segmenter``, calibration frames, the benchmark's agreement check); the resize
    to ``eval_size`` follows (``InferenceSpec.to_network``)."""
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

    @classmethod
    def from_checkpoint(cls, ckpt: dict) -> "InferenceSpec":
        """The spec a checkpoint dict records; one without a dataset description gets numbered
        classes, default colours and ImageNet statistics."""
        dataset = ckpt.get("dataset") or {}
        info = DatasetInfo.from_dict(dataset) if dataset else numbered_info(int(ckpt["num_classes"]))
        return cls(info, recorded_eval_size(ckpt))

    @classmethod
    def from_dict(cls, data: dict) -> "InferenceSpec":
        """Read back ``to_dict`` (e.g. from an exported file's metadata)."""
        size = data.get("eval_size")
        return cls(DatasetInfo.from_dict(data["dataset"]), None if size is None else (int(size[0]), int(size[1])))

    def to_dict(self) -> dict:
        """JSON-able: the fields a consumer without fplnet reads, and the full dataset description."""
        info = self.info.to_dict()
        return {"mean": info["mean"], "std": info["std"], "class_names": info["class_names"],
                "palette": info["palette"], "eval_size": None if self.eval_size is None else list(self.eval_size),
                "resize": "input: antialiased bilinear to eval_size (align_corners=False); "
                          "logits: bilinear back to the input size",
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
        return tuple(self.eval_size) if self.eval_size else (int(input_size[0]), int(input_size[1]))

    def to_network(self, images: torch.Tensor) -> torch.Tensor:
        """Normalized (N, 3, H, W) -> the network's input size (unchanged without ``eval_size``)."""
        return images if self.eval_size is None else resize_images(images, self.eval_size)

    def to_input_size(self, logits: torch.Tensor, input_size: Sequence[int]) -> torch.Tensor:
        """Logits at the network's size -> at ``input_size`` (unchanged if they already are)."""
        return resize_logits(logits, input_size)
