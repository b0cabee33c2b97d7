"""The ESP module of ESPNet (Mehta et al., ECCV 2018), the baseline of Tables I and VI.

Structure, from the ESPNet paper and its public reference implementation: a reduction to
n = out/5 channels (1x1, or 3x3 stride 2 when the module downsamples), K = 5 parallel 3x3
convolutions with dilation 1, 2, 4, 8, 16 (the rate-1 branch takes the remainder so the widths
add up to ``out_chs``), hierarchical feature fusion (HFF: running sums of the dilated branches),
concatenation, a residual connection when shapes allow, BN + PReLU. Convolution weights at
Ci = Co = 60: 60*12 + 5*9*12*12 = 7,200 (Table I).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn

from .conv import NormAct, conv2d


def hierarchical_fusion(branches: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """HFF: [b1, b2, b2 + b3, b2 + b3 + b4, ...] (the rate-1 branch is left out of the sums)."""
    fused, total = [branches[0]], None
    for branch in branches[1:]:
        total = branch if total is None else total + branch
        fused.append(total)
    return fused


class ESPModule(nn.Module):
    """One ESP module; ``stride=2`` gives ESPNet's strided "DownSamplerB"."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, act: str = "prelu",
                 dilations: Sequence[int] = (1, 2, 4, 8, 16)):
        super().__init__()
        width = out_chs // len(dilations)
        first_width = out_chs - width * (len(dilations) - 1)
        self.reduce = conv2d(in_chs, width, 1 if stride == 1 else 3, stride=stride)
        self.branches = nn.ModuleList(
            conv2d(width, first_width if i == 0 else width, 3, dilation=rate) for i, rate in enumerate(dilations)
        )
        self.norm_act = NormAct(out_chs, act)
        self.residual = stride == 1 and in_chs == out_chs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        reduced = self.reduce(x)
        out = torch.cat(hierarchical_fusion([branch(reduced) for branch in self.branches]), dim=1)
        if self.residual:
            out = out + x
        return self.norm_act(out)
