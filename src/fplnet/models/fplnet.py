"""FPLNet (Atif et al.): encoder, decoder and every ablation variant of Tables VI-X.

The architecture is one class, ``FPLNet``, driven by ``FPLNetConfig``; each variant of the
paper is a different config, listed as data in ``VARIANTS`` at the bottom of this file.

Shapes for a 512x1024 input (Table II)::

    stage 1  InitialModule            35 x 256 x 512    (conv s2, 2 x conv, concat image/2)
    stage 2  FPL s2 + 4 x FPL         64 x 128 x 256
             FIR                     131 x 128 x 256    [deep + shallow, deep, image/4]
    stage 3  FPL s2 + 8 x FPL        128 x  64 x 128
             FIR                     259 x  64 x 128    [deep + shallow, deep, image/8]
    head     encoder-only: 1x1 -> C, bilinear to input size
             decoder: 1x1 -> 64, U -> 64, 2 x FPL, U -> 16, 2 x FPL, 2x2 deconv -> C

Interpretation choices fixed by the paper's own parameter counts are documented in the blocks
(``fplnet.layers``); the decoder's choices are documented in ``FPLDecoder``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from ..layers import InitialModule, StageFusion, Upsampler, avg_pool_image, conv2d, create_block, run_stage
from ._registry import ModelVariant


@dataclass(frozen=True)
class FPLNetConfig:
    """Every choice the paper ablates is a field here."""
    block: str = "fpl"                         # "fpl" | "esp"                      (Table VI)
    factorization: str = "composite"           # "composite" | "none" | "all"       (Table X)
    delayed_downsampling: bool = True          # False = "hasty"                     (Table VII)
    fusion: str = "fir"                        # FIR or a Table VIII alternative     (Table VIII)
    depths: tuple = (4, 8)                     # FPL modules after each downsampler  (Table IX)
    widths: tuple = (64, 128)                  # stage-2 and stage-3 channels        (Table II)
    stem_width: int = 32                       # stage-1 channels                    (Table II)
    dilations: tuple = (1, 2, 4, 8)            # FPL branch rates (our choice, see layers/fpl.py)
    pff: str = "neighbours"                    # FPL's pairwise fusion (our choice, see layers/fpl.py)
    act: str = "prelu"                         # "prelu" | "relu"                    (Sec. IV-C)
    decoder: bool = True                       # False = encoder + 1x1 + bilinear x8
    decoder_widths: tuple = (64, 16)           # Table II layers 22-27
    decoder_depths: tuple = (2, 2)

    def block_kwargs(self) -> dict:
        if self.block == "fpl":
            return {"dilations": self.dilations, "factorization": self.factorization, "pff": self.pff}
        return {}


def _stage(cfg: FPLNetConfig, in_chs: int, width: int, depth: int) -> nn.ModuleList:
    """A downsampling block followed by ``depth`` blocks at the same width."""
    kwargs = cfg.block_kwargs()
    blocks = [create_block(cfg.block, in_chs, width, stride=2, act=cfg.act, **kwargs)]
    blocks += [create_block(cfg.block, width, width, act=cfg.act, **kwargs) for _ in range(depth)]
    return nn.ModuleList(blocks)


class FPLEncoder(nn.Module):
    """Stages 1-3 of Table II (layers 1-20)."""

    def __init__(self, cfg: FPLNetConfig, in_chs: int = 3):
        super().__init__()
        self.initial = InitialModule(in_chs, cfg.stem_width, cfg.delayed_downsampling, cfg.act)
        chs = self.initial.out_chs
        self.stages, self.fusions = nn.ModuleList(), nn.ModuleList()
        for width, depth in zip(cfg.widths, cfg.depths):
            self.stages.append(_stage(cfg, chs, width, depth))
            self.fusions.append(StageFusion(cfg.fusion, width, in_chs, cfg.act))
            chs = self.fusions[-1].out_chs
        self.out_chs = chs

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, list]:
        """Returns the last fused map and the spatial sizes [input, stage 1, stage 2, stage 3]
        that the heads crop or resize to."""
        image = avg_pool_image(x)
        out = self.initial(x, image)
        sizes = [x.shape[-2:], out.shape[-2:]]
        for stage, fusion in zip(self.stages, self.fusions):
            image = avg_pool_image(image)
            shallow, deep = run_stage(stage, out)
            out = fusion(deep, shallow, image)
            sizes.append(out.shape[-2:])
        return out, sizes


class FPLDecoder(nn.Module):
    """The sequential asymmetric decoder (Section III-B, Table II layers 21-28).

    No skip connections from the encoder ("purely sequential"). Choices the paper leaves open,
    fixed so that the full network stays under 0.5M parameters (499,898 with 20 classes):

    * The 1x1 projection 259 -> 64 is a plain bias-free convolution; a BN + PReLU after it
      would add 192 parameters and cross the 0.5M line.
    * The upsamplers are 3x3 stride-2 transposed convolutions with bias + BN + PReLU, and
      the final projection is a 2x2 stride-2 transposed convolution with bias: Table II calls
      it a deconvolution to C channels at full resolution.
    * The FPL modules of the decoder are the encoder's block with the same factorization and
      dilations (at 16 channels each branch is 4 channels wide).
    """

    def __init__(self, cfg: FPLNetConfig, in_chs: int, num_classes: int):
        super().__init__()
        kwargs = cfg.block_kwargs()
        self.project = conv2d(in_chs, cfg.decoder_widths[0], 1)
        self.upsamplers, self.stages = nn.ModuleList(), nn.ModuleList()
        chs = cfg.decoder_widths[0]
        for width, depth in zip(cfg.decoder_widths, cfg.decoder_depths):
            self.upsamplers.append(Upsampler(chs, width, cfg.act))
            self.stages.append(nn.Sequential(*[create_block(cfg.block, width, width, act=cfg.act, **kwargs)
                                               for _ in range(depth)]))
            chs = width
        self.classifier = nn.ConvTranspose2d(chs, num_classes, 2, stride=2, bias=True)

    def forward(self, x: torch.Tensor, sizes: list) -> torch.Tensor:
        x = self.project(x)
        # sizes = [input, stage 1, stage 2, stage 3]; the decoder climbs back through stage 2, then
        # stage 1, then to the input.
        for upsample, stage, size in zip(self.upsamplers, self.stages, reversed(sizes[1:-1])):
            x = stage(upsample(x, size))
        return self.classifier(x)[..., : sizes[0][0], : sizes[0][1]]


class BilinearHead(nn.Module):
    """Encoder-only head: 1x1 projection to C (bias-free, as the Table VIII counts require) and
    bilinear interpolation to the input size (x8 when the sides are multiples of 8)."""

    def __init__(self, in_chs: int, num_classes: int):
        super().__init__()
        self.classifier = conv2d(in_chs, num_classes, 1)

    def forward(self, x: torch.Tensor, sizes: list) -> torch.Tensor:
        """``sizes[0]`` is the input's size (``FPLEncoder.forward``)."""
        return F.interpolate(self.classifier(x), size=sizes[0], mode="bilinear", align_corners=False)


class FPLNet(nn.Module):
    def __init__(self, cfg: FPLNetConfig = FPLNetConfig(), num_classes: int = 19, in_chs: int = 3):
        super().__init__()
        self.cfg = cfg
        self.num_classes = num_classes
        self.encoder = FPLEncoder(cfg, in_chs)
        self.head = (FPLDecoder(cfg, self.encoder.out_chs, num_classes) if cfg.decoder
                     else BilinearHead(self.encoder.out_chs, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features, sizes = self.encoder(x)
        return self.head(features, sizes)


# --- the paper's variants, as data -------------------------------------------------------------
ENCODER = FPLNetConfig(decoder=False)


def _encoder(description: str, params: float, source: str, miou, **changes) -> ModelVariant:
    """An encoder-only ablation: the encoder config with ``changes``; mIoU is Cityscapes val."""
    return ModelVariant(replace(ENCODER, **changes), description, params, source, miou)


# Paper mIoU figures are Cityscapes val, as the ablation tables print them.
VARIANTS: dict[str, ModelVariant] = {
    "fplnet": ModelVariant(FPLNetConfig(), "FPLNet: encoder + sequential asymmetric decoder",
                           paper_params=0.49e6, paper_source="Table IV", paper_miou=66.93),
    "fplnet_encoder": _encoder("FPLNet encoder, 1x1 + bilinear x8 (FIR fusion)", 419_994, "Table VIII", 58.83),
    "fplnet_encoder_if": _encoder("image fusion only", 414_810, "Table VIII", 57.00, fusion="if"),
    "fplnet_encoder_isff_add": _encoder("intra-stage feature fusion by addition", 414_636, "Table VIII", 56.42,
                                        fusion="isff_add"),
    "fplnet_encoder_isff_concat": _encoder("intra-stage feature fusion by concatenation", 419_820, "Table VIII",
                                           56.97, fusion="isff_concat"),
    "fplnet_encoder_if_isff_add": _encoder("image fusion + ISFF by addition", 414_810, "Table VIII", 57.20,
                                           fusion="if_isff_add"),
    "fplnet_encoder_if_isff_concat": _encoder("image fusion + ISFF by concatenation", 419_994, "Table VIII", 57.75,
                                              fusion="if_isff_concat"),
    "fplnet_encoder_hasty": _encoder("hasty downsampling (no stage-1 convolutions)", 0.40e6, "Table VII", 56.97,
                                     delayed_downsampling=False),
    "fplnet_encoder_nofact": _encoder("no factorization (FPL-decomp.)", 0.54e6, "Table X", 59.10,
                                      factorization="none"),
    "fplnet_encoder_allfact": _encoder("every kernel factorized, the 3x3 too", 0.38e6, "Table X", 56.79,
                                       factorization="all"),
    "fplnet_encoder_relu": _encoder("ReLU instead of PReLU", None, "Sec. IV-C", None, act="relu"),
    "fplnet_encoder_esp": _encoder("FPLNet encoder with ESP modules (FPLNet-ESP)", 0.38e6, "Table VI", 56.29,
                                   block="esp"),
    # The rival reading of the FPL module (layers/fpl.py docstring), not a row of the paper: the
    # same parameters as fplnet_encoder, so the paper's count is its.
    "fplnet_encoder_r16": _encoder("FPL branch rates (2, 4, 8, 16) instead of (1, 2, 4, 8)", 419_994,
                                   "Sec. III-A-2 (reading)", None, dilations=(2, 4, 8, 16)),
    "fplnet_encoder_r16_cpff": _encoder("FPL rates (2, 4, 8, 16), PFF adds each branch to the 3x3's output",
                                        419_994, "Sec. III-A-2 (reading)", None, dilations=(2, 4, 8, 16),
                                        pff="context"),
}
# Table IX: (#FPL in stage 2, #FPL in stage 3) -> (paper parameters, paper mIoU)
_TABLE_IX = {(2, 6): (0.32e6, 56.0), (2, 8): (0.40e6, 56.1), (2, 10): (0.47e6, 55.9), (2, 12): (0.57e6, 55.0),
             (4, 6): (0.34e6, 57.4), (4, 8): (0.42e6, 58.83), (4, 10): (0.49e6, 57.2), (4, 12): (0.57e6, 57.98)}
for (_n2, _n3), (_params, _miou) in _TABLE_IX.items():
    VARIANTS[f"fplnet_encoder_d{_n2}x{_n3}"] = _encoder(f"encoder with {_n2} + {_n3} FPL modules", _params,
                                                       "Table IX", _miou, depths=(_n2, _n3))
