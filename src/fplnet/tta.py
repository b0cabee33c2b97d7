"""Test-time augmentation: several scales and the horizontal mirror of each input, averaged.

``TestTimeAugmentation(model)`` is a callable from a normalized float batch (N, 3, H, W) to
class scores (N, C, H, W) at the input's size, so it stands wherever a model or an
``InferenceRunner`` does (``evaluate``, ``Segmenter``). For every scale s the batch is resized to
round(s * H) x round(s * W) with the one input resize of the project (``data.resize``:
antialiased bilinear), run, and the logits resized back bilinearly; with ``flip`` the mirrored
batch is run too and its output mirrored back. The softmax probabilities of all passes are
averaged: the usual way multi-scale testing is reported for segmentation networks, and the one
in which no pass dominates by the size of its logits.

What it costs is the sum of the passes' pixels: scales (0.75, 1.0, 1.25) with the mirror run six
forward passes over 2 x (0.5625 + 1 + 1.5625) = 6.25 times the pixels of one plain pass
(measured gain and cost: docs/recipe.md).

Choices the paper leaves open (it reports single-scale results and no test-time augmentation):
the default scales 0.75, 1.0, 1.25 bracket the training scale range 0.75-1.5 without going
below what the network saw; the returned scores are probabilities, not logits (the argmax, all
that evaluation and prediction use, is the same for any monotonic map of them).
"""
from __future__ import annotations

from typing import Callable, Sequence

import torch

from .data.resize import resize_images, resize_logits

DEFAULT_SCALES = (0.75, 1.0, 1.25)


def parse_scales(text: str) -> tuple[float, ...]:
    """"0.75,1,1.25" -> (0.75, 1.0, 1.25); ValueError unless every scale is a number in (0, 4]."""
    try:
        scales = tuple(float(v) for v in str(text).split(","))
    except ValueError:
        scales = ()
    if not scales or not all(0 < s <= 4 for s in scales):
        raise ValueError(f"{text!r}: expected comma-separated scales in (0, 4], e.g. 0.75,1,1.25")
    return scales


class TestTimeAugmentation:
    __test__ = False   # not a pytest class, whatever its name says

    def __init__(self, model: Callable[[torch.Tensor], torch.Tensor], scales: Sequence[float] = DEFAULT_SCALES,
                 flip: bool = True):
        self.model, self.scales, self.flip = model, tuple(float(s) for s in scales), flip
        if not self.scales:
            raise ValueError("test-time augmentation needs at least one scale")

    @property
    def passes(self) -> int:
        return len(self.scales) * (2 if self.flip else 1)

    def pixel_cost(self) -> float:
        """Pixels of all passes over the pixels of one plain pass."""
        return sum(s * s for s in self.scales) * (2 if self.flip else 1)

    def __repr__(self) -> str:
        return f"TestTimeAugmentation(scales={list(self.scales)}, flip={self.flip})"

    def __call__(self, images: torch.Tensor) -> torch.Tensor:
        size = images.shape[-2:]
        total = None
        for scale in self.scales:
            scaled = resize_images(images, (max(1, round(size[0] * scale)), max(1, round(size[1] * scale))))
            for mirrored in ((False, True) if self.flip else (False,)):
                x = scaled.flip(-1) if mirrored else scaled
                logits = resize_logits(self.model(x), size)
                if mirrored:
                    logits = logits.flip(-1)
                probabilities = logits.float().softmax(1)
                total = probabilities if total is None else total.add_(probabilities)
        return total.div_(self.passes)
