"""ERFNet (Romera, Alvarez, Bergasa and Arroyo, IEEE T-ITS 19(1), 2018), a baseline of the
FPLNet paper's Table IV, rebuilt from the ERFNet paper's Table I and Figs. 2-3.

Layers for a 512x1024 input (ERFNet Table I)::

    1       downsampler block                                   16 x 256 x 512
    2       downsampler block                                   64 x 128 x 256
    3-7     5 x non-bottleneck-1D                               64 x 128 x 256
    8       downsampler block                                  128 x  64 x 128
    9-16    2 x non-bottleneck-1D at dilations 2, 4, 8, 16     128 x  64 x 128
    17      deconvolution (upsampling) + BN + ReLU              64 x 128 x 256
    18-19   2 x non-bottleneck-1D                               64 x 128 x 256
    20      deconvolution (upsampling) + BN + ReLU              16 x 256 x 512
    21-22   2 x non-bottleneck-1D                               16 x 256 x 512
    23      deconvolution (2x2, stride 2)                        C x 512 x 1024

Details the paper leaves open follow the authors' PyTorch code (Eromera/erfnet_pytorch,
``train/erfnet.py``), which is what the published model ran: every convolution has a bias, BN
uses eps = 1e-3, the residual blocks use spatial dropout 0.03 (64 channels) and 0.3 (128
channels) and none in the decoder, and the upsamplers are 3x3 stride-2 transposed convolutions.
The 1x1 classifier that code keeps for its encoder-only training phase is not part
of the segmentation network and is left out.

Parameters: 2,064,191 with 19 classes (2,064,256 with 20, the 19 Cityscapes classes + void
that the authors' code trains with), against 2.06M for ERFNet: +0.2%. We compare with the
ERFNet paper's figure; the FPLNet paper's Table IV lists ERFNet at 2.2M.

Any input size: the downsamplers' max-pools use ``ceil_mode`` so that they produce the same
ceil(H/2) x ceil(W/2) as the stride-2 convolution they are concatenated with (identical to the
paper's floor pooling when sides are even), and each upsampler crops its output to the size of
the encoder map at that scale, the last one to the input size.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..layers import BN_EPS, NormAct, Upsampler, create_act
from ._registry import ModelVariant


@dataclass(frozen=True)
class ERFNetConfig:
    widths: tuple = (16, 64, 128)          # the three downsamplers
    stage_depth: int = 5                   # non-bt-1D blocks at 64 channels (layers 3-7)
    dilations: tuple = (2, 4, 8, 16)       # layers 9-16 run this cycle twice
    dilation_repeats: int = 2
    decoder_widths: tuple = (64, 16)
    decoder_depth: int = 2                 # non-bt-1D blocks after each upsampler
    dropout: tuple = (0.03, 0.3)           # 64- and 128-channel encoder blocks
    act: str = "relu"


class DownsamplerBlock(nn.Module):
    """ERFNet Fig. 3 (ENet's initial block): a 3x3 stride-2 convolution to ``out_chs - in_chs``
    maps concatenated with a 2x2 max-pool of the input, then BN + ReLU."""

    def __init__(self, in_chs: int, out_chs: int, act: str = "relu"):
        super().__init__()
        self.conv = nn.Conv2d(in_chs, out_chs - in_chs, 3, stride=2, padding=1, bias=True)
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)
        self.norm_act = NormAct(out_chs, act)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.norm_act(torch.cat([self.conv(x), self.pool(x)], 1))


class NonBottleneck1D(nn.Module):
    """ERFNet Fig. 2c: two factorized 3x3 convolutions (3x1, ReLU, 1x3, BN, ReLU), the second
    pair dilated, spatial dropout, identity shortcut, ReLU. Channels stay fixed."""

    def __init__(self, channels: int, dilation: int = 1, dropout: float = 0.0, act: str = "relu"):
        super().__init__()
        c, d = channels, dilation
        self.conv3x1_1 = nn.Conv2d(c, c, (3, 1), padding=(1, 0), bias=True)
        self.act1 = create_act(act, c)
        self.conv1x3_1 = nn.Conv2d(c, c, (1, 3), padding=(0, 1), bias=True)
        self.norm_act1 = NormAct(c, act)
        self.conv3x1_2 = nn.Conv2d(c, c, (3, 1), padding=(d, 0), dilation=(d, 1), bias=True)
        self.act2 = create_act(act, c)
        self.conv1x3_2 = nn.Conv2d(c, c, (1, 3), padding=(0, d), dilation=(1, d), bias=True)
        self.norm2 = nn.BatchNorm2d(c, eps=BN_EPS)
        self.dropout = nn.Dropout2d(dropout) if dropout > 0 else nn.Identity()
        self.act_out = create_act(act, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.norm_act1(self.conv1x3_1(self.act1(self.conv3x1_1(x))))
        out = self.norm2(self.conv1x3_2(self.act2(self.conv3x1_2(out))))
        return self.act_out(x + self.dropout(out))


class ERFNet(nn.Module):
    def __init__(self, cfg: ERFNetConfig = ERFNetConfig(), num_classes: int = 19, in_chs: int = 3):
        super().__init__()
        self.cfg = cfg
        self.num_classes = num_classes
        w1, w2, w3 = cfg.widths
        p2, p3 = cfg.dropout
        self.down1 = DownsamplerBlock(in_chs, w1, cfg.act)
        self.down2 = DownsamplerBlock(w1, w2, cfg.act)
        self.stage2 = nn.Sequential(*[NonBottleneck1D(w2, 1, p2, cfg.act) for _ in range(cfg.stage_depth)])
        self.down3 = DownsamplerBlock(w2, w3, cfg.act)
        self.stage3 = nn.Sequential(*[NonBottleneck1D(w3, d, p3, cfg.act)
                                      for _ in range(cfg.dilation_repeats) for d in cfg.dilations])
        self.upsamplers, self.decoder_stages = nn.ModuleList(), nn.ModuleList()
        chs = w3
        for width in cfg.decoder_widths:
            self.upsamplers.append(Upsampler(chs, width, cfg.act))
            self.decoder_stages.append(nn.Sequential(*[NonBottleneck1D(width, act=cfg.act)
                                                       for _ in range(cfg.decoder_depth)]))
            chs = width
        self.classifier = nn.ConvTranspose2d(chs, num_classes, 2, stride=2, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out1 = self.down1(x)                              # 1/2
        out2 = self.stage2(self.down2(out1))              # 1/4
        out = self.stage3(self.down3(out2))               # 1/8
        # The decoder climbs back through the 1/4 and 1/2 sizes (sizes only: ERFNet has no skips).
        for upsample, stage, size in zip(self.upsamplers, self.decoder_stages, (out2.shape[-2:], out1.shape[-2:])):
            out = stage(upsample(out, size))
        return self.classifier(out)[..., : x.shape[-2], : x.shape[-1]]


# Paper mIoU: Cityscapes test, as FPLNet's Table IV prints it.
ERFNET_VARIANTS: dict[str, ModelVariant] = {
    "erfnet": ModelVariant(ERFNetConfig(), "ERFNet (Romera et al. 2017), non-bottleneck-1D encoder-decoder",
                           paper_params=2.06e6, paper_source="ERFNet paper", paper_miou=68.0),
}
