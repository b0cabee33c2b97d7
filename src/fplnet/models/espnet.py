"""ESPNet and ESPNet-C (Mehta et al., ECCV 2018), the baselines of Table VI, rebuilt from the
ESPNet paper's description (Sections 3-4 and Fig. 4 of that paper; p = 2, q = 8 as in its
Cityscapes models).

``ESPNetConfig.block`` swaps the ESP module for the FPL module (ESPNet-FPL of Table VI) without
touching anything else, which is the experiment the FPLNet paper reports.

ESPNet-C::

    conv 3x3 s2 + BN + PReLU (16) | concat image/2, BN + PReLU (19)
    ESP s2 -> 64, p x ESP          | concat [last, first, image/4], BN + PReLU (131)
    ESP s2 -> 128, q x ESP         | concat [first, last], BN + PReLU (256)
    1x1 -> C, bilinear to input size

ESPNet adds its light decoder: the 1/8 logits are BN'd and upsampled x2 (2x2 deconv), fused
with a 1x1 projection of the 131-channel map (concat, BN + PReLU, an ESP module 2C -> C without
residual), upsampled x2 (deconv + BN + PReLU), concatenated with the 19-channel stage-1 map,
refined by conv 3x3 + BN + PReLU, and brought to full size by a last 2x2 deconvolution. The
decoder's transposed convolutions are bias-free, as in ESPNet's code.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import ConvNormAct, ESPModule, NormAct, avg_pool_image, conv2d, create_block, run_stage
from ._registry import ModelVariant


@dataclass(frozen=True)
class ESPNetConfig:
    p: int = 2
    q: int = 8
    block: str = "esp"          # "fpl" gives ESPNet-FPL (Table VI)
    decoder: bool = False       # ESPNet-C (False) or ESPNet (True)
    widths: tuple = (16, 64, 128)
    act: str = "prelu"


class ESPNet(nn.Module):
    def __init__(self, cfg: ESPNetConfig = ESPNetConfig(), num_classes: int = 19, in_chs: int = 3):
        super().__init__()
        self.cfg = cfg
        w1, w2, w3 = cfg.widths
        self.level1 = ConvNormAct(in_chs, w1, 3, stride=2, act=cfg.act)
        self.norm1 = NormAct(w1 + in_chs, cfg.act)
        self.level2 = nn.ModuleList([create_block(cfg.block, w1 + in_chs, w2, stride=2, act=cfg.act)]
                                    + [create_block(cfg.block, w2, w2, act=cfg.act) for _ in range(cfg.p)])
        self.norm2 = NormAct(2 * w2 + in_chs, cfg.act)
        self.level3 = nn.ModuleList([create_block(cfg.block, 2 * w2 + in_chs, w3, stride=2, act=cfg.act)]
                                    + [create_block(cfg.block, w3, w3, act=cfg.act) for _ in range(cfg.q)])
        self.norm3 = NormAct(2 * w3, cfg.act)
        self.classifier = conv2d(2 * w3, num_classes, 1)
        if cfg.decoder:
            c = num_classes
            self.project2 = conv2d(2 * w2 + in_chs, c, 1)
            self.norm_logits3 = nn.BatchNorm2d(c, eps=1e-3)
            self.up3 = nn.ConvTranspose2d(c, c, 2, stride=2, bias=False)
            self.fuse2 = nn.Sequential(NormAct(2 * c, cfg.act), ESPModule(2 * c, c, act=cfg.act))
            self.up2 = nn.ConvTranspose2d(c, c, 2, stride=2, bias=False)
            self.up2_norm = NormAct(c, cfg.act)
            self.refine1 = ConvNormAct(w1 + in_chs + c, c, 3, act=cfg.act)
            self.up1 = nn.ConvTranspose2d(c, c, 2, stride=2, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        image2 = avg_pool_image(x)
        image4 = avg_pool_image(image2)
        out1 = self.norm1(torch.cat([self.level1(x), image2], 1))
        first2, last2 = run_stage(self.level2, out1)
        out2 = self.norm2(torch.cat([last2, first2, image4], 1))
        first3, last3 = run_stage(self.level3, out2)
        logits3 = self.classifier(self.norm3(torch.cat([first3, last3], 1)))
        if not self.cfg.decoder:
            return F.interpolate(logits3, size=x.shape[-2:], mode="bilinear", align_corners=False)
        up3 = self.up3(self.norm_logits3(logits3))[..., : out2.shape[-2], : out2.shape[-1]]
        fused2 = self.fuse2(torch.cat([self.project2(out2), up3], 1))
        up2 = self.up2_norm(self.up2(fused2)[..., : out1.shape[-2], : out1.shape[-1]])
        refined = self.refine1(torch.cat([up2, out1], 1))
        return self.up1(refined)[..., : x.shape[-2], : x.shape[-1]]


# Paper mIoU: Cityscapes val (FPLNet Table VI; for espnet, the val figure of FPLNet Table IV).
ESPNET_VARIANTS: dict[str, ModelVariant] = {
    "espnet_c": ModelVariant(ESPNetConfig(), "ESPNet-C (p=2, q=8), bilinear x8", paper_params=0.34e6,
                             paper_source="FPLNet Table VI", paper_miou=53.30),
    "espnet": ModelVariant(ESPNetConfig(decoder=True), "ESPNet with its own decoder", paper_params=0.364e6,
                           paper_source="ESPNet paper", paper_miou=61.4),
    "espnet_c_fpl": ModelVariant(ESPNetConfig(block="fpl"), "ESPNet-C with FPL modules", paper_params=0.38e6,
                                 paper_source="FPLNet Table VI", paper_miou=55.73),
}
