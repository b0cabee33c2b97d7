"""Stage-end fusion: the FIR unit (Section III-A-3, Fig. 3) and the Table VIII alternatives.

Each strategy is data: which tensors are concatenated, built from ``deep`` (the last module of
the stage), ``shallow`` (the stage's downsampler output, the first block of the stage) and
``image`` (the input image pooled to the stage's scale). BN + PReLU over the result follows
every strategy, which is what makes the Table VIII counts come out exactly.

FIR concatenates in the order [deep + shallow, deep, image]: "features from deep and shallow
layers are first added. The resultant feature tensor is then concatenated with the feature
from the deep layer followed by image insertion" (64 + 64 + 3 = 131 channels in stage 2).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import nn

from .conv import NormAct


@dataclass(frozen=True)
class FusionSpec:
    parts: Callable[[torch.Tensor, torch.Tensor, torch.Tensor], list]
    feature_maps: int   # how many width-sized feature tensors the output holds
    uses_image: bool


FUSIONS: dict[str, FusionSpec] = {
    "if": FusionSpec(lambda deep, shallow, image: [deep, image], 1, True),
    "isff_add": FusionSpec(lambda deep, shallow, image: [deep + shallow], 1, False),
    "isff_concat": FusionSpec(lambda deep, shallow, image: [deep, shallow], 2, False),
    "if_isff_add": FusionSpec(lambda deep, shallow, image: [deep + shallow, image], 1, True),
    "if_isff_concat": FusionSpec(lambda deep, shallow, image: [deep, shallow, image], 2, True),
    "fir": FusionSpec(lambda deep, shallow, image: [deep + shallow, deep, image], 2, True),
}


class StageFusion(nn.Module):
    def __init__(self, mode: str, width: int, image_chs: int = 3, act: str = "prelu"):
        super().__init__()
        if mode not in FUSIONS:
            raise ValueError(f"unknown fusion {mode!r}; choose one of {', '.join(FUSIONS)}")
        self.mode = mode
        spec = FUSIONS[mode]
        self.out_chs = spec.feature_maps * width + (image_chs if spec.uses_image else 0)
        self.norm_act = NormAct(self.out_chs, act)

    def forward(self, deep: torch.Tensor, shallow: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        parts = FUSIONS[self.mode].parts(deep, shallow, image)
        return self.norm_act(torch.cat(parts, dim=1) if len(parts) > 1 else parts[0])
