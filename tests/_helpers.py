"""Checkpoints and images for the predict / export / benchmark / hub tests.

Trained weights are not needed to test the plumbing, but a freshly initialised network would
hide mistakes: its BatchNorms are identities (BN folding would be trivially right) and every
pixel gets the same class (argmax agreement would be trivially 100%). ``make_model`` therefore
collects BN statistics on real CamVid images and rescales the classifier (see there).
"""
from __future__ import annotations

import copy
import functools
import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

import fplnet
import fplnet.checkpoint
import fplnet.data.info

# The shared data beside the checkout, as in conftest.py (CI lays shared/ beside its clone).
REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("FPLNET_SHARED_DATA", REPO.parent / "shared" / "data"))
CAMVID_VAL = SHARED_DATA / "camvid" / "val"
CITYSCAPES_SAMPLE = SHARED_DATA / "cityscapes_sample"


def load_script(name: str):
    """scripts/<name>.py as a module (the scripts folder is not a package)."""
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module   # a process pool (device_data) pickles its functions by module
    spec.loader.exec_module(module)
    return module


def camvid_images() -> list[Path]:
    return sorted(CAMVID_VAL.glob("*.png"))


def camvid_image(index: int = 0) -> np.ndarray:
    return np.asarray(Image.open(camvid_images()[index]).convert("RGB"))


def normalized(image: np.ndarray, info=fplnet.data.info.CAMVID) -> torch.Tensor:
    """H x W x 3 uint8 -> the (1, 3, H, W) input a checkpoint with ``info`` expects."""
    x = torch.from_numpy(image.copy()).permute(2, 0, 1)[None].float() / 255
    mean, std = torch.tensor(info.mean).view(1, 3, 1, 1), torch.tensor(info.std).view(1, 3, 1, 1)
    return (x - mean) / std


def make_model(name: str = "fplnet", num_classes: int = 11, seed: int = 0) -> torch.nn.Module:
    """A fresh copy each call; the calibrated original is built once per process."""
    return copy.deepcopy(_calibrated_model(name, num_classes, seed))


@functools.lru_cache(maxsize=None)
def _calibrated_model(name: str, num_classes: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = fplnet.create_model(name, num_classes=num_classes)
    model.train()
    with torch.no_grad():
        # Running statistics from real images (quarter-size CamVid crops), far from (0, 1).
        images = torch.cat([normalized(camvid_image(i)) for i in range(4)])
        for bn in model.modules():
            if isinstance(bn, torch.nn.modules.batchnorm._BatchNorm):
                bn.momentum = None  # cumulative average over the passes below
        for start in range(0, 4, 2):
            model(F.interpolate(images[start:start + 2], scale_factor=0.5, mode="bilinear"))
        # A random network's logits are tiny (about 0.02) and dominated by one constant per class,
        # so every pixel gets the same class. Recentre and scale the (linear) classifier on a real
        # image: logits that vary over the image and reach 12 in magnitude, like those of an
        # FPLNet trained on CamVid, so that argmax agreement and a 1e-4 tolerance test something.
        model.eval()
        classifier = [m for m in model.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))][-1]
        logits = model(normalized(camvid_image()))
        centred = logits - logits.mean(dim=(0, 2, 3), keepdim=True)
        scale = 12.0 / centred.abs().max()
        classifier.weight.mul_(scale)
        if classifier.bias is not None:
            classifier.bias.mul_(scale).sub_(logits.mean(dim=(0, 2, 3)) * scale)
    return model


def make_checkpoint(path: Path, dataset=fplnet.data.info.CAMVID, name: str = "fplnet") -> Path:
    model = make_model(name, num_classes=dataset.num_classes)
    ckpt = fplnet.checkpoint.describe(model, name, dataset.to_dict())
    ckpt["state_dict"] = model.state_dict()
    fplnet.checkpoint.atomic_save(ckpt, path)
    return path


def write_video(path: Path, frames: list[np.ndarray], rotation: int = 0) -> None:
    """An H.264 clip of ``frames``; ``rotation``: the display matrix's counterclockwise degrees, as a
    phone writes it (-90: portrait, stored as landscape frames to be turned clockwise)."""
    import av
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        if rotation:
            stream.set_display_rotation(rotation)
        for frame in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(stream.encode(None))
