"""Small convolution blocks shared by FPLNet, ESPNet and the decoders."""
from __future__ import annotations

import torch
from torch import nn

from .activations import create_act

# ESPNet's reference code uses eps=1e-3 for every BatchNorm; FPLNet is built on its code base
# (Section III-A-2), so we keep that constant for both families.
BN_EPS = 1e-3


def conv2d(in_chs: int, out_chs: int, kernel_size, stride=1, dilation=1) -> nn.Conv2d:
    """Bias-free convolution with 'same' padding for odd kernels (also for (3, 1) and (1, 3)).

    Every convolution of FPLNet is bias-free: the paper's Table VIII counts leave no room for
    biases, and each convolution is followed by BN or by another linear layer anyway.
    """
    kh, kw = (kernel_size, kernel_size) if isinstance(kernel_size, int) else kernel_size
    dh, dw = (dilation, dilation) if isinstance(dilation, int) else dilation
    return nn.Conv2d(in_chs, out_chs, (kh, kw), stride=stride,
                     padding=(dh * (kh - 1) // 2, dw * (kw - 1) // 2), dilation=(dh, dw), bias=False)


class NormAct(nn.Sequential):
    """BatchNorm + activation over ``channels`` (the "BR" block of ESPNet)."""

    def __init__(self, channels: int, act: str = "prelu"):
        super().__init__(nn.BatchNorm2d(channels, eps=BN_EPS), create_act(act, channels))


class ConvAct(nn.Sequential):
    """Convolution followed by an activation, no normalization (FPLNet stage 1)."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size=3, stride=1, act="prelu", act_channels=None):
        super().__init__(conv2d(in_chs, out_chs, kernel_size, stride),
                         create_act(act, out_chs if act_channels is None else act_channels))


class ConvNormAct(nn.Sequential):
    """Convolution + BN + activation ("CBR" in ESPNet)."""

    def __init__(self, in_chs: int, out_chs: int, kernel_size=3, stride=1, act="prelu"):
        super().__init__(conv2d(in_chs, out_chs, kernel_size, stride), NormAct(out_chs, act))


class Upsampler(nn.Module):
    """x2 learned upsampling: 3x3 stride-2 transposed conv (with bias) + BN + activation.

    Table II layers 22 and 25 and the 'U' circles of Fig. 4. The transposed convolution produces
    exactly twice the input size; ``forward`` crops to ``size`` so that inputs whose sides are
    not multiples of 8 come back at the encoder's resolution of that scale (slicing exports to
    ONNX with dynamic shapes, where ``output_size=`` would not).
    """

    def __init__(self, in_chs: int, out_chs: int, act: str = "prelu"):
        super().__init__()
        self.deconv = nn.ConvTranspose2d(in_chs, out_chs, 3, stride=2, padding=1, output_padding=1, bias=True)
        self.norm_act = NormAct(out_chs, act)

    def forward(self, x: torch.Tensor, size) -> torch.Tensor:
        x = self.deconv(x)[..., : size[0], : size[1]]
        return self.norm_act(x)


def avg_pool_image(image: torch.Tensor) -> torch.Tensor:
    """Halve the image with a 3x3 stride-2 average pool (ESPNet's input projection).

    The output size is ceil(H/2) x ceil(W/2), the same as a stride-2 3x3 convolution, so the
    image pyramid lines up with the feature maps for any input size.
    """
    return nn.functional.avg_pool2d(image, 3, stride=2, padding=1)


def run_stage(blocks, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Run a stage (its downsampler, then its blocks in sequence) and return both the first
    block's output (the "shallow" features) and the last one's (the "deep" features), which
    stage-end fusions of FPLNet, ESPNet and CGNet all need."""
    first = blocks[0](x)
    last = first
    for block in blocks[1:]:
        last = block(last)
    return first, last
