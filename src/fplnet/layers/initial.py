"""Stage 1: the delayed-downsampling initial module (Section III-A-1, Fig. 2 left, Table II layers 1-4).

A 3x3 stride-2 convolution 3 -> 32, then two 3x3 convolutions 32 -> 32 at half resolution
(``delayed``); the "hasty" variant of Table VII drops those two, so the next block
downsamples again at once. The output is concatenated with the image at half scale (35
channels) and normalized by BN + PReLU(35).

Interpretation (from the Table VIII counts): each of the three convolutions is followed by a
PReLU with a single shared slope and no BatchNorm; BN + per-channel PReLU come once, after the
concatenation. Any BN or per-channel slope in between would break the exact counts.
"""
from __future__ import annotations

import torch
from torch import nn

from .conv import ConvAct, NormAct


class InitialModule(nn.Module):
    def __init__(self, in_chs: int = 3, width: int = 32, delayed: bool = True, act: str = "prelu"):
        super().__init__()
        layers = [ConvAct(in_chs, width, 3, stride=2, act=act, act_channels=1)]
        if delayed:
            layers += [ConvAct(width, width, 3, act=act, act_channels=1) for _ in range(2)]
        self.convs = nn.Sequential(*layers)
        self.out_chs = width + in_chs
        self.norm_act = NormAct(self.out_chs, act)

    def forward(self, x: torch.Tensor, half_image: torch.Tensor) -> torch.Tensor:
        return self.norm_act(torch.cat([self.convs(x), half_image], dim=1))
