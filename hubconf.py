"""torch.hub entry points for fplnet.

    model = torch.hub.load("<owner>/fplnet", "fplnet", pretrained="camvid")   # from GitHub
    model = torch.hub.load("/path/to/fplnet", "fplnet", source="local")       # from a checkout

Every entry point builds a registered model through ``fplnet.create_model``: the same code
as ``fplnet train`` and ``fplnet predict``. ``pretrained`` names shipped weights ("camvid") or a
checkpoint / safetensors path; the class count then comes from the weights. The models return
logits at input resolution for a normalized RGB batch; a pretrained model carries how to
prepare that batch as ``model.inference_spec`` (mean, std, classes, palette and the size to run
it at: a fixed ``eval_size``, or ``eval_short_side`` with the aspect ratio kept; its
``network_size(input_size)`` gives the (H, W)), and ``fplnet.Segmenter`` applies it for you.
"""
import os as _os
import sys as _sys

# What `import fplnet` needs; torch.hub checks these before loading and names what is missing.
dependencies = ["torch", "numpy", "PIL", "yaml", "safetensors"]

# The package of this checkout, not another fplnet that happens to be installed: torch.hub loads
# the code of the tag or folder it was given. Imported under a private name: "fplnet" is the name
# of the main entry point below, and torch.hub lists every public callable as an entry point.
_SRC = _os.path.join(_os.path.dirname(_os.path.abspath(__file__)), "src")
if _os.path.isdir(_os.path.join(_SRC, "fplnet")) and _SRC not in _sys.path:
    _sys.path.insert(0, _SRC)
import fplnet as _fplnet  # noqa: E402


def _build(name, pretrained=None, num_classes=None, **kwargs):
    return _fplnet.create_model(name, num_classes=num_classes, pretrained=pretrained, **kwargs)


def fplnet(pretrained=None, num_classes=None, **kwargs):
    """FPLNet: FPL encoder + sequential asymmetric decoder (0.49M parameters, paper Table IV).
    ``kwargs`` override fields of ``fplnet.models.FPLNetConfig``, e.g. ``dilations=(1, 2, 3, 5)``."""
    return _build("fplnet", pretrained, num_classes, **kwargs)


def fplnet_encoder(pretrained=None, num_classes=None, **kwargs):
    """The FPLNet encoder with a 1x1 classifier and bilinear x8 upsampling (paper Table VIII)."""
    return _build("fplnet_encoder", pretrained, num_classes, **kwargs)


def espnet(pretrained=None, num_classes=None, **kwargs):
    """ESPNet (Mehta et al. 2018), the baseline FPLNet is built from."""
    return _build("espnet", pretrained, num_classes, **kwargs)


def espnet_c(pretrained=None, num_classes=None, **kwargs):
    """ESPNet-C: ESPNet's encoder with a 1x1 classifier and bilinear upsampling."""
    return _build("espnet_c", pretrained, num_classes, **kwargs)


def enet(pretrained=None, num_classes=None, **kwargs):
    """ENet (Paszke et al. 2016), a speed baseline of paper Table IV."""
    return _build("enet", pretrained, num_classes, **kwargs)


def erfnet(pretrained=None, num_classes=None, **kwargs):
    """ERFNet (Romera et al. 2017), a speed baseline of paper Table IV."""
    return _build("erfnet", pretrained, num_classes, **kwargs)


def cgnet(pretrained=None, num_classes=None, **kwargs):
    """CGNet_M3N21 (Wu et al.), a speed baseline of paper Table IV."""
    return _build("cgnet", pretrained, num_classes, **kwargs)
