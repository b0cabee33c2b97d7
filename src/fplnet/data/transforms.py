"""Normalization and batched training augmentation.

The trainer keeps a whole split in memory as uint8 and augments a batch at a time on whatever
device it is on: random scale, random horizontal flip and random crop for every sample, done as
one affine resampling (``F.grid_sample``) of the whole batch, bilinear for images and nearest for
masks. Every random number is drawn from the generator passed in, so a seed reproduces the same
crops on CPU and CUDA.

The sampling grid is the one ``F.affine_grid`` would make from the per-sample matrices, but built
from two 1-D coordinate vectors computed in float64: scale, flip and crop have no rotation or
shear, so the grid is separable. ``affine_grid`` computes it with a batched matmul, which runs
in TF32 when the caller enables TF32 and in bfloat16 under autocast: there its coordinates are
off by several pixels at Cityscapes widths (4.5 px measured for a 2048-wide source).

The FPLNet paper gives no augmentation ranges; the default scale range (0.75, 1.5) and random
flipping are our choice, the common one for Cityscapes and CamVid.

Resizing: the deterministic resize to the network's size (``train_size``, e.g. Cityscapes at
half resolution) is ``fplnet.data.resize``'s antialiased bilinear, the call evaluation and
inference make, so a model sees at train time the same resampled pixels it sees deployed. The
random scale on top of it is plain bilinear sampling (``grid_sample`` has no antialiasing). That
is close enough for a random perturbation: down to a factor of 1/2 (the default range stops at
0.75; the widest recipe here, ``configs/sweeps/recipe_camvid_long.yaml``'s ``[0.5, 2.0]``, at
1/2) samples are at most 2 px apart, so bilinear's two taps per axis still reach every source
pixel; it would alias below 1/2, which no recipe draws. A second, antialiased pass per sample
would cost a resampling of the batch for little.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch
import torch.nn.functional as F

IGNORE = 255


def host_to_device(tensor: torch.Tensor, device) -> torch.Tensor:
    """Copy a small CPU tensor to ``device`` without stopping the host.

    A plain ``.to("cuda")`` of pageable memory makes PyTorch wait for the stream to drain, so
    every training step would wait for the previous one to finish on the GPU before queuing the
    next. Staged through pinned memory, the copy is queued like a kernel and the host runs ahead.
    The pinned buffer comes from PyTorch's caching host allocator, which keeps it until the copy
    has run."""
    device = torch.device(device) if device is not None else tensor.device
    if device.type != "cuda" or tensor.device.type != "cpu":
        return tensor.to(device)
    return tensor.pin_memory().to(device, non_blocking=True)


def _channel_stats(values: Sequence[float], images: torch.Tensor) -> torch.Tensor:
    if images.ndim < 3 or images.shape[-3] != len(values):
        raise ValueError(f"expected images (..., {len(values)}, H, W), got shape {tuple(images.shape)}")
    return torch.as_tensor(values, dtype=images.dtype, device=images.device).view(-1, 1, 1)


def normalize(images: torch.Tensor, mean: Sequence[float], std: Sequence[float]) -> torch.Tensor:
    """Float images in [0, 1], (3, H, W) or (N, 3, H, W) -> (images - mean) / std per channel."""
    return (images - _channel_stats(mean, images)) / _channel_stats(std, images)


@dataclass
class AugmentConfig:
    crop_size: tuple[int, int]                        # (H, W) of the training crops
    scale_range: tuple[float, float] = (0.75, 1.5)    # our choice: the paper gives no range
    hflip: bool = True
    # (brightness, contrast, saturation, hue) strengths as in torchvision's ColorJitter: factors
    # U(1 - s, 1 + s) for the first three (brightness as an additive offset of U(-s, s)), a hue
    # shift of U(-s, s) turns (s <= 0.5). None or all zero: no photometric change.
    color_jitter: Optional[tuple[float, float, float, float]] = None

    def __post_init__(self):
        self.crop_size = tuple(int(v) for v in self.crop_size)
        self.scale_range = tuple(float(v) for v in self.scale_range)
        if self.color_jitter is not None:
            self.color_jitter = tuple(float(v) for v in self.color_jitter)
            if len(self.color_jitter) != 4 or min(self.color_jitter) < 0 or max(self.color_jitter[:3]) > 1 \
                    or self.color_jitter[3] > 0.5:
                raise ValueError("color_jitter must be [brightness, contrast, saturation, hue] with the first "
                                 f"three in [0, 1] and hue in [0, 0.5], got {list(self.color_jitter)}")
            if not any(self.color_jitter):
                self.color_jitter = None
        if len(self.crop_size) != 2 or min(self.crop_size) < 1:
            raise ValueError(f"crop_size must be (H, W) with positive sides, got {self.crop_size}")
        low, high = self.scale_range
        if not 0 < low <= high:
            raise ValueError(f"scale_range must satisfy 0 < low <= high, got {self.scale_range}")


@dataclass
class AugmentParams:
    """Per-sample draws, in pixels of the scaled image (offsets < 0 mean padding before it)."""
    scales: torch.Tensor      # (N,) float64
    flips: torch.Tensor       # (N,) bool
    offsets: torch.Tensor     # (N, 2) float64, (y, x) of the crop's top-left corner


def sample_augment_params(num: int, height: int, width: int, cfg: AugmentConfig,
                          generator: torch.Generator) -> AugmentParams:
    """Draw scales, flips and crop positions; see ``augment_batch``."""
    def uniform(*shape):
        # Drawn where the generator lives, then kept on the CPU: theta is tiny.
        return torch.rand(*shape, generator=generator, device=generator.device, dtype=torch.float64).cpu()

    low, high = cfg.scale_range
    scales = low + (high - low) * uniform(num)
    flips = uniform(num) < 0.5 if cfg.hflip else torch.zeros(num, dtype=torch.bool)
    scaled_size = scales[:, None] * torch.tensor([height, width], dtype=torch.float64)
    slack = scaled_size - torch.tensor(cfg.crop_size, dtype=torch.float64)
    # Crop inside the image when it is larger than the crop, otherwise place the image inside the
    # crop; either way the position is uniform over whole-pixel steps, so at scale 1 the crop
    # stays on the pixel grid and copies pixels exactly.
    first = slack.clamp(max=0)
    steps = slack.abs().floor() + 1
    offsets = first + (uniform(num, 2) * steps).floor().clamp(max=steps - 1)
    return AugmentParams(scales, flips, offsets)


def _theta(params: AugmentParams, height: int, width: int, crop_size: tuple[int, int]) -> torch.Tensor:
    """Affine matrices (N, 2, 3) mapping crop coordinates to source coordinates, both in
    grid_sample's normalized [-1, 1] with align_corners=False.

    For a crop pixel centre c (in pixels) the source point is (c + offset) / scale; in normalized
    units u = v * crop / (scale * size) + (crop + 2 * offset) / (scale * size) - 1.
    A flip mirrors the source: u -> -u.
    """
    crop_h, crop_w = crop_size
    scaled_h = params.scales * height
    scaled_w = params.scales * width
    theta = torch.zeros(len(params.scales), 2, 3, dtype=torch.float64)
    sign = 1.0 - 2.0 * params.flips.double()
    theta[:, 0, 0] = sign * crop_w / scaled_w
    theta[:, 0, 2] = sign * ((crop_w + 2 * params.offsets[:, 1]) / scaled_w - 1)
    theta[:, 1, 1] = crop_h / scaled_h
    theta[:, 1, 2] = (crop_h + 2 * params.offsets[:, 0]) / scaled_h - 1
    return theta


def sampling_grid(params: AugmentParams, height: int, width: int, crop_size: tuple[int, int],
                  device=None) -> torch.Tensor:
    """(N, h, w, 2) float32 grid on ``device``, equal to ``F.affine_grid(theta, (N, 1, h, w),
    align_corners=False)``; its coordinates are computed on the CPU in float64 (see the module
    docstring) and only the two small vectors are copied to the device."""
    crop_h, crop_w = crop_size
    theta = _theta(params, height, width, crop_size)
    # Crop pixel centres in normalized units, as affine_grid places them.
    columns = (2 * torch.arange(crop_w, dtype=torch.float64) + 1) / crop_w - 1
    rows = (2 * torch.arange(crop_h, dtype=torch.float64) + 1) / crop_h - 1
    x = host_to_device((theta[:, 0, 0, None] * columns + theta[:, 0, 2, None]).float(), device)    # (N, w)
    y = host_to_device((theta[:, 1, 1, None] * rows + theta[:, 1, 2, None]).float(), device)       # (N, h)
    num = len(theta)
    return torch.stack((x[:, None, :].expand(num, crop_h, crop_w),
                        y[:, :, None].expand(num, crop_h, crop_w)), dim=-1)


def apply_augment(images_uint8: torch.Tensor, masks_uint8: torch.Tensor, params: AugmentParams,
                  crop_size: tuple[int, int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Resample the batch with ``params``; returns float32 images in [0, 1] and int64 masks."""
    if images_uint8.ndim != 4 or images_uint8.shape[1] != 3 or masks_uint8.ndim != 3:
        raise ValueError(f"expected images (N, 3, H, W) and masks (N, H, W), got "
                         f"{tuple(images_uint8.shape)} and {tuple(masks_uint8.shape)}")
    num, _, height, width = images_uint8.shape
    if masks_uint8.shape != (num, height, width):
        raise ValueError(f"masks {tuple(masks_uint8.shape)} do not match images {tuple(images_uint8.shape)}")
    device = images_uint8.device

    grid = sampling_grid(params, height, width, crop_size, device)

    images = F.grid_sample(images_uint8.float(), grid, mode="bilinear", padding_mode="zeros",
                           align_corners=False)
    # Back onto the 8-bit grid the data came from: float32 rounding in the grid (< 1e-4 pixel)
    # then cannot leak in, and a transform that moves nothing returns the input exactly.
    images = images.round_().div_(255)

    # Zero padding marks "outside the image" only if no real label is 0, hence the shift by one.
    shifted = (masks_uint8.to(device=device, dtype=torch.float32) + 1).unsqueeze(1)
    masks = F.grid_sample(shifted, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    masks = masks.squeeze(1).long() - 1
    masks.masked_fill_(masks < 0, IGNORE)  # masked_fill: boolean indexing would sync with the GPU
    return images, masks


def augment_batch(images_uint8: torch.Tensor, masks_uint8: torch.Tensor, cfg: AugmentConfig,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random scale, horizontal flip and crop per sample, for a same-size batch.

    images_uint8 (N, 3, H, W) uint8, masks_uint8 (N, H, W) uint8 with 255 = ignore
    -> images (N, 3, h, w) float32 in [0, 1], masks (N, h, w) int64, (h, w) = cfg.crop_size.

    Each sample is scaled by s ~ U(scale_range), flipped with probability 1/2 (if cfg.hflip) and
    cropped at a uniformly drawn position; where the scaled image is smaller than the crop it is
    placed at a uniform position inside the crop, and the rest is 0 in images and 255 in masks.
    """
    num, _, height, width = images_uint8.shape
    params = sample_augment_params(num, height, width, cfg, generator)
    images, masks = apply_augment(images_uint8, masks_uint8, params, cfg.crop_size)
    if cfg.color_jitter is not None:
        images = jitter_colors(images, cfg.color_jitter, generator)
    return images, masks


def jitter_colors(images: torch.Tensor, strengths: Sequence[float], generator: torch.Generator) -> torch.Tensor:
    """Per-sample brightness, contrast, saturation and hue changes of float images in [0, 1]
    (N, 3, H, W), in that fixed order, clipped to [0, 1]; see ``AugmentConfig.color_jitter``.
    Contrast blends with each image's mean grey, as torchvision's ColorJitter does."""
    import kornia.enhance as enhance  # imported here: only runs with jitter need it

    num = images.shape[0]
    brightness, contrast, saturation, hue = strengths

    def symmetric(strength: float) -> torch.Tensor:  # U(-strength, strength), one per sample
        draw = torch.rand(num, generator=generator, device=generator.device, dtype=torch.float64)
        return host_to_device(((2 * draw - 1) * strength).float(), images.device)

    images = enhance.adjust_brightness(images, symmetric(brightness), clip_output=True)
    images = enhance.adjust_contrast_with_mean_subtraction(images, 1 + symmetric(contrast))
    images = enhance.adjust_saturation(images, 1 + symmetric(saturation))
    # kornia's hue shift is in radians: one full turn is 2 pi.
    images = enhance.adjust_hue(images, symmetric(hue) * 2 * torch.pi)
    return images.clamp_(0, 1)
