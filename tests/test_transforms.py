"""Batched augmentation: exact where nothing moves, flips, padding, label preservation, seeds."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from fplnet.data.transforms import (AugmentConfig, AugmentParams, _theta, apply_augment,
                                    augment_batch, jitter_colors, normalize,
                                    sample_augment_params, sampling_grid)


def batch(num=4, height=24, width=32, num_classes=5, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (num, 3, height, width), generator=generator, dtype=torch.uint8)
    masks = torch.randint(0, num_classes, (num, height, width), generator=generator, dtype=torch.uint8)
    masks[:, :2, :3] = 255   # some ignore pixels, which must survive as 255
    return images, masks


def params(num, scale=1.0, flip=False, offset=(0.0, 0.0)):
    return AugmentParams(scales=torch.full((num,), scale, dtype=torch.float64),
                         flips=torch.full((num,), flip),
                         offsets=torch.tensor([offset] * num, dtype=torch.float64))


def test_normalize_round_trip():
    images = torch.rand(2, 3, 4, 5)
    mean, std = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
    normalized = normalize(images, mean, std)
    assert torch.allclose(normalized[:, 1], (images[:, 1] - 0.456) / 0.224)
    assert torch.allclose(normalized * torch.tensor(std).view(3, 1, 1) + torch.tensor(mean).view(3, 1, 1), images,
                          atol=1e-6)
    assert normalize(images[0], mean, std).shape == (3, 4, 5)
    with pytest.raises(ValueError, match="expected images"):
        normalize(torch.rand(2, 4, 4, 5), mean, std)


@pytest.mark.parametrize("size", [(24, 32), (37, 53), (360, 480)])
def test_scale_one_without_flip_at_full_size_is_the_identity(size):
    images, masks = batch(num=2, height=size[0], width=size[1])
    cfg = AugmentConfig(crop_size=size, scale_range=(1.0, 1.0), hflip=False)
    out_images, out_masks = augment_batch(images, masks, cfg, torch.Generator().manual_seed(0))
    assert out_images.dtype == torch.float32 and out_masks.dtype == torch.int64
    assert torch.equal(out_images, images.float() / 255)
    assert torch.equal(out_masks, masks.long())


def test_flip_mirrors_image_and_mask():
    images, masks = batch()
    out_images, out_masks = apply_augment(images, masks, params(4, flip=True), (24, 32))
    assert torch.equal(out_images, images.flip(-1).float() / 255)
    assert torch.equal(out_masks, masks.flip(-1).long())


def test_random_flips_are_exact_either_way():
    images, masks = batch(num=16)
    cfg = AugmentConfig(crop_size=(24, 32), scale_range=(1.0, 1.0), hflip=True)
    _, out_masks = augment_batch(images, masks, cfg, torch.Generator().manual_seed(3))
    flipped = [torch.equal(out, mask.flip(-1).long()) for out, mask in zip(out_masks, masks)]
    kept = [torch.equal(out, mask.long()) for out, mask in zip(out_masks, masks)]
    assert all(f or k for f, k in zip(flipped, kept))
    assert any(flipped) and any(kept)


def test_crop_at_scale_one_is_a_pixel_exact_window():
    images, masks = batch()
    out_images, out_masks = apply_augment(images, masks, params(4, offset=(5.0, 7.0)), (10, 12))
    assert torch.equal(out_images, images[:, :, 5:15, 7:19].float() / 255)
    assert torch.equal(out_masks, masks[:, 5:15, 7:19].long())


def test_padding_is_zero_in_images_and_ignore_in_masks():
    images, masks = batch(height=24, width=32)
    masks[:] = 0   # class 0 must not be confused with the padding
    # Half size inside a full-size crop, placed at the top-left corner.
    out_images, out_masks = apply_augment(images + 1, masks, params(4, scale=0.5), (24, 32))
    assert (out_masks[:, :12, :16] == 0).all()
    assert (out_masks[:, 12:, :] == 255).all() and (out_masks[:, :, 16:] == 255).all()
    assert (out_images[:, :, 13:, :] == 0).all() and (out_images[:, :, :, 17:] == 0).all()
    assert (out_images[:, :, :11, :15] > 0).all()


def test_random_padding_positions_stay_inside_the_crop():
    images, masks = batch(num=8)
    cfg = AugmentConfig(crop_size=(48, 64), scale_range=(0.5, 0.5), hflip=False)
    _, out_masks = augment_batch(images, masks, cfg, torch.Generator().manual_seed(1))
    # Each 12x16 image lands whole somewhere inside the 48x64 crop.
    assert ((out_masks != 255).sum(dim=(1, 2)) >= 12 * 16 - 6).all()
    drawn = sample_augment_params(8, 24, 32, cfg, torch.Generator().manual_seed(1))
    assert ((drawn.offsets <= 0) & (drawn.offsets >= torch.tensor([12 - 48, 16 - 64]))).all()


def test_nearest_sampling_never_invents_classes():
    images, masks = batch(num=6, num_classes=3)
    cfg = AugmentConfig(crop_size=(20, 28), scale_range=(0.6, 1.7))
    _, out_masks = augment_batch(images, masks, cfg, torch.Generator().manual_seed(2))
    assert set(out_masks.unique().tolist()) <= {0, 1, 2, 255}


def test_crop_offsets_cover_the_valid_range():
    cfg = AugmentConfig(crop_size=(10, 10), scale_range=(1.0, 1.0), hflip=False)
    drawn = sample_augment_params(2000, 14, 20, cfg, torch.Generator().manual_seed(0))
    assert set(drawn.offsets[:, 0].tolist()) == set(float(v) for v in range(5))
    assert set(drawn.offsets[:, 1].tolist()) == set(float(v) for v in range(11))


def test_same_seed_same_batch_and_different_seed_differs():
    images, masks = batch(num=4)
    cfg = AugmentConfig(crop_size=(16, 16))
    first = augment_batch(images, masks, cfg, torch.Generator().manual_seed(7))
    again = augment_batch(images, masks, cfg, torch.Generator().manual_seed(7))
    other = augment_batch(images, masks, cfg, torch.Generator().manual_seed(8))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    images, masks = batch(num=4)
    cfg = AugmentConfig(crop_size=(20, 20), scale_range=(0.7, 1.4))
    cpu = augment_batch(images, masks, cfg, torch.Generator().manual_seed(5))
    cuda = augment_batch(images.cuda(), masks.cuda(), cfg, torch.Generator().manual_seed(5))
    assert torch.equal(cuda[1].cpu(), cpu[1])
    assert (cuda[0].cpu() - cpu[0]).abs().max() <= 1 / 255 + 1e-6


def test_config_and_shape_errors():
    with pytest.raises(ValueError, match="scale_range"):
        AugmentConfig(crop_size=(8, 8), scale_range=(1.5, 0.5))
    with pytest.raises(ValueError, match="crop_size"):
        AugmentConfig(crop_size=(0, 8))
    images, masks = batch()
    with pytest.raises(ValueError, match="do not match"):
        apply_augment(images, masks[:, :-1], params(4), (8, 8))


def test_color_jitter_changes_colors_only_when_on_and_keeps_masks():
    images, masks = batch(num=6)
    plain = AugmentConfig(crop_size=(24, 32), scale_range=(1.0, 1.0), hflip=False)
    jittered = AugmentConfig(crop_size=(24, 32), scale_range=(1.0, 1.0), hflip=False,
                             color_jitter=(0.3, 0.3, 0.3, 0.05))
    base_images, base_masks = augment_batch(images, masks, plain, torch.Generator().manual_seed(1))
    generator = torch.Generator().manual_seed(1)
    out_images, out_masks = augment_batch(images, masks, jittered, generator)
    assert torch.equal(out_masks, base_masks)                       # geometry unchanged
    assert out_images.min() >= 0 and out_images.max() <= 1
    changed = (out_images - base_images).abs().flatten(1).mean(1)
    assert (changed > 1e-3).all()                                   # every sample was jittered
    again = augment_batch(images, masks, jittered, torch.Generator().manual_seed(1))[0]
    assert torch.equal(again, out_images)                           # the generator decides everything
    # All-zero strengths are the same as no jitter: no extra draws, identical output.
    zero = AugmentConfig(crop_size=(24, 32), scale_range=(1.0, 1.0), hflip=False, color_jitter=(0, 0, 0, 0))
    assert zero.color_jitter is None


def test_color_jitter_brightness_only_is_an_offset():
    images = torch.full((3, 3, 4, 4), 0.5)
    out = jitter_colors(images, (0.2, 0, 0, 0), torch.Generator().manual_seed(0))
    offsets = out[:, :, 0, 0] - 0.5
    assert torch.allclose(offsets, offsets[:, :1].expand(3, 3), atol=1e-6)   # same shift on all channels
    assert offsets.abs().max() <= 0.2 + 1e-6


@pytest.mark.parametrize("bad", [(0.3, 0.3, 0.3), (-0.1, 0, 0, 0), (0, 0, 0, 0.7), (1.5, 0, 0, 0)])
def test_color_jitter_rejects_bad_strengths(bad):
    with pytest.raises(ValueError, match="color_jitter"):
        AugmentConfig(crop_size=(8, 8), color_jitter=bad)


def test_grid_equals_affine_grid():
    cfg = AugmentConfig(crop_size=(20, 28), scale_range=(0.5, 2.0))
    drawn = sample_augment_params(6, 30, 40, cfg, torch.Generator().manual_seed(4))
    theta = _theta(drawn, 30, 40, (20, 28)).float()
    expected = F.affine_grid(theta, [6, 1, 20, 28], align_corners=False)
    assert torch.allclose(sampling_grid(drawn, 30, 40, (20, 28)), expected, atol=1e-6)
