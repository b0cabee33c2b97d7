"""The one resize of network inputs and outputs, shared by training, evaluation and inference.

* ``resize_images``: images to the size the network runs at. Bilinear with antialiasing
  (``F.interpolate(..., mode="bilinear", align_corners=False, antialias=True)``): when it
  shrinks an image, every source pixel under the triangle filter widened by the scale factor
  contributes, as in Pillow's ``Image.resize(..., BILINEAR)``, which ``antialias=True`` was
  written to reproduce (tests/test_spec.py checks it on a CamVid frame). Without antialiasing,
  bilinear reads two source pixels per output pixel along each axis whatever the factor: enough
  down to 1/2, but a 2048x1024 Cityscapes frame shrunk to 512x256 would read only a quarter of
  its pixels, and the network would see aliased edges it never saw in training.
* ``resize_uint8_image``: the same call for an H x W x 3 uint8 image, rounded back to uint8.
  This is how ``train_size`` shrinks training images once before augmentation
  (``SegmentationDataset.load_raw``); evaluation, ``Segmenter`` and export metadata use
  ``resize_images`` on the normalized float batch. Normalization is a per-channel affine map,
  and bilinear weights sum to one, so resizing before or after normalizing is the same map; the
  only difference left between training and evaluation is the uint8 rounding (half a grey level).
* ``network_input_size``: the (H, W) the network runs at for an input of a given size, the one
  rule behind ``eval_size`` and ``eval_short_side`` (``fplnet.spec``).
* ``resize_logits``: network outputs back to the size of the input (or of the label), plain
  bilinear as ``fplnet evaluate`` has always done: it enlarges, where antialiasing changes nothing.

Masks are never resized here: a label map is resized with nearest neighbour (``load_raw``).
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch
import torch.nn.functional as F


def network_input_size(input_size: Sequence[int], eval_size: Optional[Sequence[int]] = None,
                       short_side: Optional[int] = None) -> tuple[int, int]:
    """The (H, W) a network runs at for an input of ``input_size``: ``eval_size`` when set (a
    fixed size, as Cityscapes models trained at 1024x512 want), else the input scaled with its
    aspect ratio kept so that its shorter side is ``short_side`` (rounded to whole pixels, at
    least 1), else the input's own size."""
    h, w = int(input_size[0]), int(input_size[1])
    if eval_size is not None:
        return int(eval_size[0]), int(eval_size[1])
    if short_side is None:
        return h, w
    scale = int(short_side) / min(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def resize_images(images: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Float images (N, C, H, W) -> (N, C, *size), antialiased bilinear; unchanged if already that size."""
    size = (int(size[0]), int(size[1]))
    if tuple(images.shape[-2:]) == size:
        return images
    return F.interpolate(images, size=size, mode="bilinear", align_corners=False, antialias=True)


def resize_uint8_image(image: np.ndarray, size: Sequence[int]) -> np.ndarray:
    """H x W x 3 uint8 -> size[0] x size[1] x 3 uint8 through ``resize_images``, rounded."""
    if tuple(image.shape[:2]) == (int(size[0]), int(size[1])):
        return image
    x = torch.from_numpy(np.require(image, requirements=("C", "W"))).permute(2, 0, 1)[None].float()
    resized = resize_images(x, size)[0].round_().clamp_(0, 255).to(torch.uint8)
    return resized.permute(1, 2, 0).contiguous().numpy()


def resize_logits(logits: torch.Tensor, size: Sequence[int]) -> torch.Tensor:
    """Logits (N, C, h, w) -> float32 (N, C, *size), bilinear; unchanged if already that size."""
    size = (int(size[0]), int(size[1]))
    if tuple(logits.shape[-2:]) == size:
        return logits.float()
    return F.interpolate(logits.float(), size=size, mode="bilinear", align_corners=False)
