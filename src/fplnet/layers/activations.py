"""Activations resolved by name, in this one place, so every block takes ``act`` the same way.

The paper uses PReLU everywhere (Section IV-C, "Activation function"); ReLU exists for that
ablation. ``channels`` is the number of learnable slopes a PReLU gets: the paper's stage-1
convolutions use a single shared slope (derived from the Table VIII parameter counts), every
other PReLU has one slope per channel.
"""
from __future__ import annotations

from torch import nn

ACTIVATIONS = ("prelu", "relu")


def create_act(name: str, channels: int) -> nn.Module:
    if name == "prelu":
        return nn.PReLU(channels)
    if name == "relu":
        return nn.ReLU(inplace=False)
    raise ValueError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
