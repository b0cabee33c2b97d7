"""Argument validators for every command: ``type=`` functions for ``argparse``.

Each takes the text of one flag and returns the parsed value, or raises
``argparse.ArgumentTypeError`` with what is allowed and what was given. argparse then names the
flag, and ``fplnet.cli`` prints the whole complaint as one line and exits with status 2, before
any model, data set or file is touched. A command therefore validates all of its arguments by
declaring them, and its ``run`` only sees values that make sense.

    parser.add_argument("--batch-size", type=positive_int, default=4)
    parser.add_argument("--device", type=device_name, default="auto")
    parser.add_argument("--output", type=writable_dir, required=True)
"""
from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from ..exported import is_exported_file
from ..runtime import parse_size, resolve_device

Invalid = argparse.ArgumentTypeError


# --- numbers -----------------------------------------------------------------------------------

def _number(text: str, kind: type, what: str):
    try:
        return kind(text)
    except (TypeError, ValueError):
        raise Invalid(f"must be {what}, got {text!r}") from None


def positive_int(text: str) -> int:
    value = _number(text, int, "a whole number of 1 or more")
    if value < 1:
        raise Invalid(f"must be a whole number of 1 or more, got {text!r}")
    return value


def non_negative_int(text: str) -> int:
    value = _number(text, int, "a whole number of 0 or more")
    if value < 0:
        raise Invalid(f"must be a whole number of 0 or more, got {text!r}")
    return value


def positive_float(text: str) -> float:
    value = _number(text, float, "a number greater than 0")
    if not value > 0 or value == float("inf"):
        raise Invalid(f"must be a finite number greater than 0, got {text!r}")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text, float, "a number of 0 or more")
    if not value >= 0 or value == float("inf"):
        raise Invalid(f"must be a finite number of 0 or more, got {text!r}")
    return value


def float_between_0_and_1(text: str) -> float:
    value = _number(text, float, "a number from 0 to 1")
    if not 0 <= value <= 1:
        raise Invalid(f"must be a number from 0 to 1, got {text!r}")
    return value


# --- sizes, devices, models, variants ----------------------------------------------------------

def image_size(text: str) -> tuple[int, int]:
    """HEIGHTxWIDTH with positive sides -> (height, width)."""
    try:
        return parse_size(text)
    except ValueError as err:
        raise Invalid(str(err)) from None


def device_name(text: str) -> str:
    """``fplnet.runtime.DEVICE_NAMES`` (auto, cpu, cuda or cuda:N), and it must exist on this
    machine. Returns the name; the command resolves it with ``fplnet.runtime.resolve_device``."""
    try:
        resolve_device(text)
    except ValueError as err:
        raise Invalid(str(err)) from None   # says what is allowed or what exists
    return text.strip().lower()


def model_name(text: str) -> str:
    """A registered model name (``fplnet models`` lists them)."""
    from ..models import list_models
    if text not in list_models():
        raise Invalid(f"unknown model {text!r}; registered models: {', '.join(list_models())}")
    return text


def model_names(text: str) -> list[str]:
    """Comma-separated registered model names, at least one."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise Invalid("give at least one model name, e.g. fplnet,espnet (`fplnet models` lists them)")
    return [model_name(name) for name in names]


def variant_spec(text: str) -> str:
    """A ``fplnet.fast.Variant`` spec such as ``channels_last+bf16``, or ``fast`` (the device's
    fast path, which the command resolves for its device: ``fplnet.fast.resolve_variant``);
    checked, and returned as the spec."""
    from ..fast import Variant
    spec = text.strip()
    if spec != "fast":
        try:
            Variant.parse(spec)
        except ValueError as err:
            raise Invalid(f"{err}; or fast, the device's fast path") from None
    return spec


def variant_specs(text: str) -> list[str]:
    """Comma-separated variant specs, each valid (``variant_spec``); returned as the list of specs."""
    specs = [spec.strip() for spec in text.split(",") if spec.strip()]
    if not specs:
        raise Invalid("give at least one variant, e.g. eager,channels_last")
    return [variant_spec(spec) for spec in specs]


# --- files and folders -------------------------------------------------------------------------

def _existing(text: str, kind: str) -> Path:
    """``text`` as a Path that exists and, for kind "file" or "folder", is one."""
    path = Path(text).expanduser()
    if not path.exists():
        raise Invalid(f"{text!r} does not exist")
    if kind == "file" and not path.is_file():
        raise Invalid(f"{text!r} is a folder, not a file")
    if kind == "folder" and not path.is_dir():
        raise Invalid(f"{text!r} is a file, not a folder")
    return path


def existing_file(text: str) -> Path:
    return _existing(text, "file")


def existing_dir(text: str) -> Path:
    return _existing(text, "folder")


def existing_path(text: str) -> Path:
    """A file or a folder that exists."""
    return _existing(text, "file or folder")


def checkpoint_name_or_file(text: str) -> str:
    """A shipped weights name or a readable fplnet checkpoint / weights file. The file is read
    here (they are a few MB), so a garbage or foreign file is reported as a bad flag before the
    command starts; the command then reads it again to build the model."""
    from ..checkpoint import PRETRAINED, CheckpointError, load_checkpoint
    if text in PRETRAINED:
        return text
    try:
        load_checkpoint(Path(text).expanduser())
    except CheckpointError as err:
        raise Invalid(str(err)) from None
    return str(Path(text).expanduser())


def exported_file(text: str) -> Path:
    """An existing file ``fplnet export`` writes and fplnet runs as it is (.onnx, OpenVINO .xml);
    the command reads its metadata and says what is wrong with it (``fplnet.exported``)."""
    if not is_exported_file(text):
        raise Invalid(f"{text!r} is not an exported model to run: give an .onnx or OpenVINO .xml file "
                      "(`fplnet export --format onnx|openvino`)")
    return existing_file(text)


def checkpoint_or_exported_file(text: str) -> str:
    """``checkpoint_name_or_file``, or an exported graph (.onnx, OpenVINO .xml) that exists; the
    command reads its metadata and says what is wrong with it (``fplnet.exported.ExportedModel``)."""
    if is_exported_file(text):
        return str(existing_file(text))
    return checkpoint_name_or_file(text)


def _check_can_create_in(path: Path, text: str) -> None:
    """``path`` does not exist yet: its nearest existing ancestor must be a folder we can write in."""
    ancestor = path.parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise Invalid(f"{text!r} cannot be created: {str(ancestor)!r} is a file, not a folder")
    _check_writable_dir(ancestor, text)


def _check_writable_dir(folder: Path, text: str) -> None:
    # A real write, not os.access: access() says yes to root even where writing fails (/sys,
    # a read-only or full file system). The probe is an anonymous file, gone when closed.
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise Invalid(f"{text!r}: cannot write into {str(folder)!r} ({err.strerror or err})") from None


def writable_dir(text: str) -> Path:
    """An output folder: an existing folder we can write in, or one that can be created (the
    command creates it when it writes its first file)."""
    path = Path(text).expanduser()
    if path.exists():
        if not path.is_dir():
            raise Invalid(f"{text!r} is a file; give a folder to write the outputs into")
        _check_writable_dir(path, text)
    else:
        _check_can_create_in(path, text)
    return path


def writable_file(text: str) -> Path:
    """An output file: not a folder, in a folder that exists or can be created, and writable."""
    path = Path(text).expanduser()
    if path.is_dir():
        raise Invalid(f"{text!r} is a folder; give a file name to write")
    if path.parent.exists():
        if not path.parent.is_dir():
            raise Invalid(f"{text!r} cannot be created: {str(path.parent)!r} is a file, not a folder")
        _check_writable_dir(path.parent, text)
    else:
        _check_can_create_in(path.parent, text)
    return path


def png_plot_file(text: str) -> Path:
    """A figure to draw: a writable ``.png`` file name, and matplotlib installed to draw it (found,
    not imported: the command imports it only when it draws)."""
    import importlib.util
    path = writable_file(text)
    if path.suffix.lower() != ".png":
        raise Invalid(f"{text!r}: the figure is written as PNG; give a file name ending in .png")
    if importlib.util.find_spec("matplotlib") is None:
        raise Invalid(f"{text!r}: drawing needs matplotlib, which is not installed; "
                      "pip install 'fplnet[plot]' (or make install)")
    return path


# --- results to plot ---------------------------------------------------------------------------

def measured_point(text: str):
    """NAME@DATASET:SPLIT=MIOU, a point of our own for the mIoU-vs-parameters plots
    (``fplnet.engine.figures.MeasuredPoint``)."""
    from .figures import MeasuredPoint
    try:
        return MeasuredPoint.parse(text)
    except ValueError as err:
        raise Invalid(str(err)) from None


def tta_scales(text: str) -> tuple[float, ...]:
    """``--tta`` scales such as ``0.75,1,1.25`` -> (0.75, 1.0, 1.25)."""
    from ..tta import parse_scales
    try:
        return parse_scales(text)
    except ValueError as err:
        raise Invalid(str(err)) from None


def add_tta_arguments(parser):
    """``--tta [SCALES]`` / ``--no-tta-flip``, the same for evaluate and predict."""
    from ..tta import DEFAULT_SCALES
    default = ",".join(f"{s:g}" for s in DEFAULT_SCALES)
    parser.add_argument("--tta", type=tta_scales, nargs="?", const=tta_scales(default), default=None,
                        metavar="SCALES",
                        help=f"test-time augmentation: run the network at these scales of each input (default "
                             f"{default}) and on their mirror images, and average the probabilities "
                             "(about 6x the cost of one pass with the defaults)")
    parser.add_argument("--no-tta-flip", dest="tta_flip", action="store_false",
                        help="with --tta: no mirrored passes")


def add_network_size_arguments(parser):
    """``--eval-size HxW`` / ``--short-side N``: the size the network runs at instead of the
    checkpoint's own (``fplnet.spec``), the same for evaluate and predict."""
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--eval-size", type=image_size, default=None, metavar="HxW",
                      help="run the network at HxW (e.g. 360x480) whatever each image's size, instead of the "
                           "checkpoint's own network size; outputs come back at the image's size")
    size.add_argument("--short-side", type=positive_int, default=None, metavar="N",
                      help="run the network on each image scaled, aspect ratio kept, so that its shorter side is "
                           "N pixels (e.g. 360, CamVid's scale), instead of the checkpoint's own network size")


def add_calibration_arguments(parser, used_by: str = "INT8 variants",
                              default_source: str = "the training split the checkpoint records, if reachable"):
    """``--calib-data`` / ``--calib-size``, the same for every command that can quantize to INT8."""
    from ..calibration import DEFAULT_CALIBRATION_FRAMES
    parser.add_argument("--calib-data", type=existing_dir, default=None, metavar="FOLDER",
                        help=f"{used_by}: calibrate on this data set root (its training split) or folder of "
                             f"images (default: {default_source})")
    # Default None, so that a command can tell a --calib-size given for nothing (and refuse it).
    parser.add_argument("--calib-size", type=positive_int, default=None, metavar="N",
                        help=f"{used_by}: calibration frames (default {DEFAULT_CALIBRATION_FRAMES}, or all if fewer)")
