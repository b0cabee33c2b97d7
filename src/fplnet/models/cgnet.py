"""CGNet (Wu, Tang, Zhang, Cao and Zhang, IEEE TIP 30, 2021; arXiv 1811.08201), a baseline of
the FPLNet paper's Table IV, rebuilt from the CGNet paper's Section 3, Fig. 3 (CG block) and
Table 1 (CGNet_M3N21: M = 3 blocks in stage 2, N = 21 in stage 3).

Shapes for a 512x1024 input::

    stage 1   3 x conv 3x3 + BN + PReLU (first one stride 2)              32 x 256 x 512
              concat image/2 (input injection), BN + PReLU               35
    stage 2   CG block s2 -> 64, M - 1 CG blocks                          64 x 128 x 256
              concat [last, first, image/4], BN + PReLU                 131
    stage 3   CG block s2 -> 128, N - 1 CG blocks                        128 x  64 x 128
              concat [first, last], BN + PReLU                          256
    head      1x1 -> C, bilinear to the input size

CG block (Fig. 3): a 1x1 convolution (3x3 stride 2 in the downsampling block) + BN + PReLU,
then in parallel f_loc, a 3x3 channel-wise (depthwise) convolution, and f_sur, a 3x3
channel-wise convolution at dilation r (2 in stage 2, 4 in stage 3); their concatenation is
the joint feature f_joi (BN + PReLU); f_glo reweights its channels with a squeeze-and-excite
style gate (global average pool, FC to C / reduction, ReLU, FC back, sigmoid; reduction 8 in
stage 2, 16 in stage 3). Regular blocks halve the width in the 1x1 so that f_joi has the block's
width, and add the input back (global residual learning). The downsampling block keeps the full
width in its 3x3 stride-2 convolution and projects f_joi back with a 1x1 convolution, without a
residual. Details the paper leaves open (bias-free convolutions, FCs with bias, BN eps 1e-3, the
concatenation orders above) follow the authors' code (wutianyiRosun/CGNet, ``model/CGNet.py``).

Parameters: 496,306 with 19 classes (Cityscapes), against 0.5M, the figure of the FPLNet
paper's Table IV and the CGNet paper's "less than 0.5 M": -0.7%. Counting the authors' layers
by hand gives the same 496,306, so no interpretation here moves a parameter.

Any input size: every stride-2 operation (convolutions with padding 1 and the 3x3 average pools
of the input injection) gives ceil(H/2) x ceil(W/2), so the pyramid lines up without padding,
and the logits are interpolated to the input size as in the paper.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import ConvNormAct, NormAct, avg_pool_image, conv2d, run_stage
from ._registry import ModelVariant


@dataclass(frozen=True)
class CGNetConfig:
    depths: tuple = (3, 21)            # M and N: CG blocks in stages 2 and 3, the downsampling one included
    widths: tuple = (32, 64, 128)      # stage 1, 2, 3
    dilations: tuple = (2, 4)          # f_sur rate in stages 2 and 3
    reductions: tuple = (8, 16)        # f_glo reduction in stages 2 and 3
    dropout: float = 0.0               # before the classifier (the authors' code has it off by default)
    act: str = "prelu"


class GlobalContext(nn.Module):
    """f_glo: a channel gate computed from the globally pooled joint feature."""

    def __init__(self, channels: int, reduction: int):
        super().__init__()
        self.fc = nn.Sequential(nn.Linear(channels, channels // reduction), nn.ReLU(),
                                nn.Linear(channels // reduction, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = self.fc(x.mean((2, 3)))
        return x * gate[:, :, None, None]


def channel_wise_conv(channels: int, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(channels, channels, 3, padding=dilation, dilation=dilation, groups=channels, bias=False)


class ContextGuidedBlock(nn.Module):
    """CG block (CGNet Fig. 3); ``stride=2`` gives the stage-opening downsampling variant."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, dilation: int = 2, act: str = "prelu",
                 reduction: int = 16):
        super().__init__()
        self.downsample = stride == 2
        if self.downsample:
            inner = out_chs
            self.reduce = ConvNormAct(in_chs, inner, 3, stride=2, act=act)
        else:
            if in_chs != out_chs:
                raise ValueError(f"a stride-1 CG block keeps its width; got {in_chs} -> {out_chs} channels")
            inner = out_chs // 2
            self.reduce = ConvNormAct(in_chs, inner, 1, act=act)
        self.local = channel_wise_conv(inner)
        self.surround = channel_wise_conv(inner, dilation)
        self.joint = NormAct(2 * inner, act)
        self.project = conv2d(2 * inner, out_chs, 1) if self.downsample else nn.Identity()
        self.glo = GlobalContext(out_chs, reduction)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.reduce(x)
        out = self.joint(torch.cat([self.local(out), self.surround(out)], 1))
        out = self.glo(self.project(out))
        return out if self.downsample else x + out


class CGNet(nn.Module):
    def __init__(self, cfg: CGNetConfig = CGNetConfig(), num_classes: int = 19, in_chs: int = 3):
        super().__init__()
        self.cfg = cfg
        self.num_classes = num_classes
        w1, w2, w3 = cfg.widths
        self.stage1 = nn.Sequential(ConvNormAct(in_chs, w1, 3, stride=2, act=cfg.act),
                                    ConvNormAct(w1, w1, 3, act=cfg.act), ConvNormAct(w1, w1, 3, act=cfg.act))
        self.norm1 = NormAct(w1 + in_chs, cfg.act)
        self.stage2 = self._stage(w1 + in_chs, w2, cfg.depths[0], cfg.dilations[0], cfg.reductions[0])
        self.norm2 = NormAct(2 * w2 + in_chs, cfg.act)
        self.stage3 = self._stage(2 * w2 + in_chs, w3, cfg.depths[1], cfg.dilations[1], cfg.reductions[1])
        self.norm3 = NormAct(2 * w3, cfg.act)
        self.dropout = nn.Dropout2d(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.classifier = conv2d(2 * w3, num_classes, 1)

    def _stage(self, in_chs: int, width: int, depth: int, dilation: int, reduction: int) -> nn.ModuleList:
        blocks = [ContextGuidedBlock(in_chs, width, stride=2, dilation=dilation, act=self.cfg.act, reduction=reduction)]
        blocks += [ContextGuidedBlock(width, width, dilation=dilation, act=self.cfg.act, reduction=reduction)
                   for _ in range(depth - 1)]
        return nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image2 = avg_pool_image(x)              # input injection, 1/2
        image4 = avg_pool_image(image2)         # 1/4
        out1 = self.norm1(torch.cat([self.stage1(x), image2], 1))
        first2, last2 = run_stage(self.stage2, out1)
        out2 = self.norm2(torch.cat([last2, first2, image4], 1))
        first3, last3 = run_stage(self.stage3, out2)
        out3 = self.norm3(torch.cat([first3, last3], 1))
        logits = self.classifier(self.dropout(out3))
        return F.interpolate(logits, size=x.shape[-2:], mode="bilinear", align_corners=False)


# Paper mIoU: Cityscapes test, as FPLNet's Table IV prints it.
CGNET_VARIANTS: dict[str, ModelVariant] = {
    "cgnet": ModelVariant(CGNetConfig(), "CGNet_M3N21 (Wu et al.), context guided blocks with input injection",
                          paper_params=0.5e6, paper_source="CGNet paper / FPLNet Table IV", paper_miou=64.8),
}
