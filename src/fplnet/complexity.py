"""Parameter and MAC counting.

Parameters are counted the way the FPLNet authors did with pytorch-OpCounter (thop): every
parameter of the model, BatchNorm and PReLU included.

MACs count the multiply-accumulates of convolutions, transposed convolutions and linear layers
for one forward pass; element-wise ops, BN and interpolation are left out. Convolutions and
linear layers follow thop's convention: output elements x (in_channels / groups) x kernel area.
Transposed convolutions do not: thop applies that same output-side formula to them, which for a
stride-s transposed convolution also counts the (s^2 - 1) zeros it conceptually inserts between
input pixels, about s^2 times the work done. We count them per *input* element instead,
input elements x (out_channels / groups) x kernel area, which is exactly the multiply-accumulates
a transposed convolution performs (each input value is multiplied by every kernel weight it
touches, once). So FPLNet's decoder upsamplers (3x3, stride 2) and final 2x2 stride-2 projection
count a quarter of what thop would report for them; every other layer matches thop.
"""
from __future__ import annotations

import torch
from torch import nn


def count_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_conv_weights(module: nn.Module) -> int:
    """Convolution weights only: the quantity of the paper's Table I."""
    return sum(m.weight.numel() for m in module.modules() if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)))


def count_macs(model: nn.Module, input_size=(512, 1024), batch_size: int = 1) -> int:
    total = 0

    def conv_hook(module, inputs, output):
        nonlocal total
        # Each output element of a conv costs (in/groups) * kh * kw MACs; a transposed conv
        # spreads each *input* element over kh * kw * out/groups outputs instead.
        kernel = module.weight[0, 0].numel()
        if isinstance(module, nn.ConvTranspose2d):
            total += inputs[0].numel() * kernel * module.out_channels // module.groups
        else:
            total += output.numel() * kernel * module.in_channels // module.groups

    def linear_hook(module, inputs, output):
        nonlocal total
        total += output.numel() * module.in_features

    hooks = []
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
            hooks.append(m.register_forward_hook(conv_hook))
        elif isinstance(m, nn.Linear):
            hooks.append(m.register_forward_hook(linear_hook))
    was_training = model.training
    try:
        model.eval()
        with torch.inference_mode():
            model(torch.zeros(batch_size, 3, *input_size))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return total
