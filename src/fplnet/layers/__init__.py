"""Building blocks of FPLNet and its baselines. No training code lives here."""
from .activations import ACTIVATIONS, create_act
from .conv import BN_EPS, ConvAct, ConvNormAct, NormAct, Upsampler, avg_pool_image, conv2d, run_stage
from .esp import ESPModule, hierarchical_fusion
from .fpl import FACTORIZATIONS, FactorizedConv, FPLModule, pairwise_fusion
from .fusion import FUSIONS, StageFusion
from .initial import InitialModule

BLOCKS = {"fpl": FPLModule, "esp": ESPModule}


def create_block(name: str, in_chs: int, out_chs: int, stride: int = 1, act: str = "prelu", **kwargs):
    """Build a context block by name; every block takes (in_chs, out_chs, stride, act)."""
    if name not in BLOCKS:
        raise ValueError(f"unknown block {name!r}; choose one of {', '.join(BLOCKS)}")
    return BLOCKS[name](in_chs, out_chs, stride=stride, act=act, **kwargs)
