"""ENet (Paszke, Chaurasia, Kim and Culurciello, arXiv 1606.02147, 2016), a speed baseline of
the FPLNet paper's Table IV, rebuilt from the ENet paper's Table 1, Fig. 2 and Section 3.

Shapes for a 512x512 input (ENet Table 1)::

    initial       conv 3x3 s2 (13) | max-pool 2x2, concat, BN + PReLU        16 x 256 x 256
    stage 1       bottleneck 1.0 (downsampling) + 4 x regular bottleneck     64 x 128 x 128
    stage 2       bottleneck 2.0 (downsampling) + 8 bottlenecks             128 x  64 x  64
                  regular, dilated 2, asymmetric 5, dilated 4,
                  regular, dilated 8, asymmetric 5, dilated 16
    stage 3       stage 2 again, without bottleneck 2.0                     128 x  64 x  64
    stage 4       upsampling bottleneck (unpools 2.0's indices) + 2 regular  64 x 128 x 128
    stage 5       upsampling bottleneck (unpools 1.0's indices) + 1 regular  16 x 256 x 256
    fullconv      2x2 stride-2 transposed convolution                         C x 512 x 512

Choices the paper leaves open are taken from the authors' Torch code (e-lab/ENet-training,
``train/models/encoder.lua`` and ``decoder.lua``), because that code produced the published
numbers:

* Biases: the 2x2 / 1x1 projections and the 1x1 expansions are bias-free (BN follows); the 3x3
  regular, dilated and transposed convolutions, the second convolution of each asymmetric pair,
  the initial 3x3 convolution and the final full convolution carry a bias.
* The asymmetric bottleneck's pair runs the 1-row x 5-column kernel first, then the 5x1.
* Encoder bottlenecks use PReLU (one slope per channel) and spatial dropout, p = 0.01 in
  stage 1 and 0.1 from bottleneck 2.0 on. The decoder (stages 4-5) uses ReLU and no dropout.
* An upsampling bottleneck's main branch is 1x1 conv + BN followed by max-unpooling with the
  indices of the matching downsampling bottleneck; its extension uses a 3x3 stride-2
  transposed convolution.

Parameters: 364,311 with 19 classes (the Cityscapes classes ENet is evaluated on), against the
0.36M listed for ENet in the FPLNet paper's Table IV: +1.2%. The class count only moves the
last layer, 65 parameters per class (a 2x2 kernel from 16 channels, plus a bias).

Any input size: the image is zero-padded on the right and bottom to a multiple of 8 (the total
stride) and the logits are cropped back. Padding, rather than cropping inside the network, keeps
every max-pool's indices the same shape as the map they are unpooled into.

ONNX and OpenVINO: the TorchScript exporter (opset 17) has no translation for
``F.max_unpool2d``, and OpenVINO's CPU plugin runs a max-pool that returns indices with its
reference kernel (the four such layers took most of ENet's OpenVINO f32 time at 360x480,
``docs/runs/openvino_profile/enet_360x480_{before,after}.txt``). So the pool records, instead of
flat indices, which of its window's four pixels held the maximum (``max_pool_2x2``), and the
unpool puts each value back there (``max_unpool_2x2``): plain max-pool, argmax, select and
depth-to-space, native in both runtimes. onnxruntime and OpenVINO break tied maxima as torch
does (tests/test_baselines.py, on a map with ties in almost every window).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import BN_EPS, create_act
from ._registry import ModelVariant

TOTAL_STRIDE = 8

# Stages 2 and 3 of ENet Table 1: (kind, dilation or asymmetric kernel size) per bottleneck.
STAGE_PATTERN = (("regular", 1), ("dilated", 2), ("asymmetric", 5), ("dilated", 4),
                 ("regular", 1), ("dilated", 8), ("asymmetric", 5), ("dilated", 16))


@dataclass(frozen=True)
class ENetConfig:
    widths: tuple = (16, 64, 128)      # initial block, stage 1, stages 2-3
    decoder_widths: tuple = (64, 16)   # stages 4 and 5
    stage1_depth: int = 4              # regular bottlenecks after 1.0
    stage2_repeats: int = 2            # how many times STAGE_PATTERN runs (stage 2, stage 3)
    decoder_depths: tuple = (2, 1)     # regular bottlenecks after 4.0 and after 5.0
    dropout: tuple = (0.01, 0.1)       # spatial dropout: stage 1, then stages 2-3
    encoder_act: str = "prelu"
    decoder_act: str = "relu"


def _norm(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=BN_EPS)


def max_pool_2x2(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """2x2 stride-2 max-pool of an even-sized map, and per pooled pixel the window position that
    held the maximum (0 top-left, 1 top-right, 2 bottom-left, 3 bottom-right). On ties the first
    in that order, which is the pixel ``F.max_pool2d`` takes too (it scans rows, then columns,
    keeping a value only if strictly larger), so its gradient goes where this position says.
    (A window holding NaN is the exception: the pool keeps its last NaN, argmax its first.)"""
    n, c, h, w = x.shape
    windows = F.pixel_unshuffle(x, 2).view(n, c, 4, h // 2, w // 2)   # channel c*4 + row*2 + col
    return F.max_pool2d(x, 2, 2), windows.argmax(2)


def max_unpool_2x2(x: torch.Tensor, position: torch.Tensor) -> torch.Tensor:
    """Each value back to the window position ``max_pool_2x2`` recorded, zeros elsewhere: equal
    to ``F.max_unpool2d`` with the pool's flat indices."""
    n, c, h, w = x.shape
    chosen = position.unsqueeze(2) == torch.arange(4, device=x.device).view(1, 1, 4, 1, 1)
    return F.pixel_shuffle(torch.where(chosen, x.unsqueeze(2), 0.0).view(n, c * 4, h, w), 2)


class InitialBlock(nn.Module):
    """ENet Fig. 2a: a 3x3 stride-2 convolution to ``out_chs - in_chs`` maps, concatenated with
    a 2x2 max-pool of the image, then BN + PReLU."""

    def __init__(self, in_chs: int, out_chs: int, act: str = "prelu"):
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs - in_chs, 3, stride=2, padding=1, bias=True)
        self.norm = _norm(out_chs)
        self.act = create_act(act, out_chs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([self.conv(x), F.max_pool2d(x, 2, 2)], 1)
        return self.act(self.norm(x))


class Bottleneck(nn.Module):
    """Encoder bottleneck, ENet Fig. 2b: projection, main convolution, 1x1 expansion to
    ``out_chs`` (internal width ``out_chs / 4``), each followed by BN (and the activation but
    the last), spatial dropout, added to the main branch, activation.

    ``kind`` is "regular" (3x3), "dilated" (3x3 at rate ``dilation``) or "asymmetric"
    (``dilation`` is then the kernel length, 5 in ENet). ``stride=2`` makes it a downsampling
    bottleneck: the projection becomes a 2x2 stride-2 convolution, the main branch a 2x2 max-pool
    zero-padded to ``out_chs`` channels, and ``forward`` also returns where each maximum was
    (``max_pool_2x2``).
    """

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, dilation: int = 1, act: str = "prelu",
                 kind: str = "regular", dropout: float = 0.1):
        super().__init__()
        if kind not in ("regular", "dilated", "asymmetric"):
            raise ValueError(f"unknown bottleneck kind {kind!r}; choose regular, dilated or asymmetric")
        internal = out_chs // 4
        self.stride = stride
        self.extra_chs = out_chs - in_chs
        self.project = nn.Conv2d(in_chs, internal, stride, stride=stride, bias=False)  # 1x1, or 2x2 s2
        self.norm1, self.act1 = _norm(internal), create_act(act, internal)
        if kind == "asymmetric":
            k = dilation
            self.conv = nn.Sequential(nn.Conv2d(internal, internal, (1, k), padding=(0, k // 2), bias=False),
                                      nn.Conv2d(internal, internal, (k, 1), padding=(k // 2, 0), bias=True))
        else:
            self.conv = nn.Conv2d(internal, internal, 3, padding=dilation, dilation=dilation, bias=True)
        self.norm2, self.act2 = _norm(internal), create_act(act, internal)
        self.expand = nn.Conv2d(internal, out_chs, 1, bias=False)
        self.norm3 = _norm(out_chs)
        self.dropout = nn.Dropout2d(dropout)
        self.act_out = create_act(act, out_chs)

    def forward(self, x: torch.Tensor):
        branch = self.act1(self.norm1(self.project(x)))
        branch = self.act2(self.norm2(self.conv(branch)))
        branch = self.dropout(self.norm3(self.expand(branch)))
        indices = None
        if self.stride == 2:
            x, indices = max_pool_2x2(x)
        if self.extra_chs:
            x = F.pad(x, (0, 0, 0, 0, 0, self.extra_chs))  # zero maps appended along channels
        out = self.act_out(x + branch)
        return (out, indices) if self.stride == 2 else out


class DecoderBottleneck(nn.Module):
    """Decoder bottleneck (ENet Fig. 2b with a full convolution, stages 4-5): 1x1 projection,
    3x3 convolution (a 3x3 stride-2 transposed convolution when upsampling), 1x1 expansion, BN
    after each. When upsampling, the main branch is 1x1 conv + BN + max-unpooling to the
    positions the matching encoder downsampling bottleneck recorded."""

    def __init__(self, in_chs: int, out_chs: int, stride: int = 1, act: str = "relu"):
        super().__init__()
        internal = out_chs // 4
        self.upsample = stride == 2
        self.project = nn.Conv2d(in_chs, internal, 1, bias=False)
        self.norm1, self.act1 = _norm(internal), create_act(act, internal)
        if self.upsample:
            self.conv = nn.ConvTranspose2d(internal, internal, 3, stride=2, padding=1, output_padding=1, bias=True)
            self.shortcut = nn.Sequential(nn.Conv2d(in_chs, out_chs, 1, bias=False), _norm(out_chs))
        else:
            self.conv = nn.Conv2d(internal, internal, 3, padding=1, bias=True)
            self.shortcut = nn.Identity()
        self.norm2, self.act2 = _norm(internal), create_act(act, internal)
        self.expand = nn.Conv2d(internal, out_chs, 1, bias=False)
        self.norm3 = _norm(out_chs)
        self.act_out = create_act(act, out_chs)

    def forward(self, x: torch.Tensor, indices: torch.Tensor = None) -> torch.Tensor:
        branch = self.act1(self.norm1(self.project(x)))
        branch = self.act2(self.norm2(self.conv(branch)))
        branch = self.norm3(self.expand(branch))
        x = self.shortcut(x)
        if self.upsample:
            x = max_unpool_2x2(x, indices)
        return self.act_out(x + branch)


class ENet(nn.Module):
    def __init__(self, cfg: ENetConfig = ENetConfig(), num_classes: int = 19, in_chs: int = 3):
        super().__init__()
        self.cfg = cfg
        self.num_classes = num_classes
        w0, w1, w2 = cfg.widths
        d1, d2 = cfg.dropout
        act = cfg.encoder_act
        self.initial = InitialBlock(in_chs, w0, act)
        self.down1 = Bottleneck(w0, w1, stride=2, act=act, dropout=d1)
        self.stage1 = nn.Sequential(*[Bottleneck(w1, w1, act=act, dropout=d1) for _ in range(cfg.stage1_depth)])
        self.down2 = Bottleneck(w1, w2, stride=2, act=act, dropout=d2)
        self.stages23 = nn.Sequential(*[Bottleneck(w2, w2, dilation=rate, act=act, kind=kind, dropout=d2)
                                        for _ in range(cfg.stage2_repeats) for kind, rate in STAGE_PATTERN])
        u4, u5 = cfg.decoder_widths
        n4, n5 = cfg.decoder_depths
        dact = cfg.decoder_act
        self.up4 = DecoderBottleneck(w2, u4, stride=2, act=dact)
        self.stage4 = nn.Sequential(*[DecoderBottleneck(u4, u4, act=dact) for _ in range(n4)])
        self.up5 = DecoderBottleneck(u4, u5, stride=2, act=dact)
        self.stage5 = nn.Sequential(*[DecoderBottleneck(u5, u5, act=dact) for _ in range(n5)])
        self.fullconv = nn.ConvTranspose2d(u5, num_classes, 2, stride=2, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        height, width = x.shape[-2:]
        x = F.pad(x, (0, (-width) % TOTAL_STRIDE, 0, (-height) % TOTAL_STRIDE))
        x = self.initial(x)                     # 1/2
        x, indices1 = self.down1(x)             # 1/4
        x = self.stage1(x)
        x, indices2 = self.down2(x)             # 1/8
        x = self.stages23(x)
        x = self.stage4(self.up4(x, indices2))  # 1/4
        x = self.stage5(self.up5(x, indices1))  # 1/2
        return self.fullconv(x)[..., :height, :width]


# Paper mIoU: Cityscapes test, as FPLNet's Table IV prints it.
ENET_VARIANTS: dict[str, ModelVariant] = {
    "enet": ModelVariant(ENetConfig(), "ENet (Paszke et al. 2016), encoder-decoder with max-unpooling",
                         paper_params=0.36e6, paper_source="FPLNet Table IV", paper_miou=57.0),
}
