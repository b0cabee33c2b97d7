"""The files ``fplnet export`` writes, run as they are: an .onnx (onnxruntime's CPU provider) or an
OpenVINO .xml + .bin (OpenVINO's CPU plugin at f32 inference precision; an INT8 IR runs its int8
layers in int8), with the inference spec their metadata carries.

This is what a deployment runs, so the inference paths take such a file where they take a
checkpoint: ``fplnet evaluate`` scores it, ``fplnet predict`` and ``Segmenter`` segment images and
videos with it, ``fplnet benchmark --exported`` times it beside the checkpoint it came from (the
web app, whose page chooses among variants of a checkpoint, does not take it). An INT8 IR keeps the calibration it was exported with; nothing is quantized or
compiled from PyTorch again (``--variant openvino+int8`` on the checkpoint would quantize anew, in
the process, on frames chosen then). The options that would change how the model runs (a variant,
plain eager, calibration frames, another device) are refused for such a file, not ignored
(``refuse_options_for_exported_file``); the network size can still be overridden, since the graphs
take any height and width.

Lives below ``fplnet.engine`` (``fplnet export`` writes the files, this module reads them) so that
``fplnet.inference`` can use it.
"""
from __future__ import annotations

import json
import time
from collections import OrderedDict
from pathlib import Path
from typing import Optional, Union

import torch

from .graph_export import INPUT_NAME, METADATA_KEY, graph_format, onnxruntime_session
from .runtime import MissingPackageError, make_room, require_package, resolve_device
from .spec import InferenceSpec

TORCHSCRIPT_METADATA_FILE = "fplnet.json"   # the extra file of a TorchScript export


def is_exported_file(path: Union[str, Path]) -> bool:
    """Whether ``path`` names a file fplnet runs as it is (.onnx, .xml, any case) rather than a checkpoint."""
    return graph_format(path) is not None


def exported_backend(path) -> str:
    """The runtime that runs an exported graph file, named as the variant of the same backend."""
    return "openvino" if graph_format(path) == "openvino" else "onnxruntime"


def read_metadata(path) -> dict:
    """The JSON that ``fplnet export`` stored in an .onnx, OpenVINO .xml or TorchScript file."""
    path = Path(path)
    if graph_format(path) == "openvino":
        from .openvino_backend import read_ir_metadata
        return read_ir_metadata(path)
    if graph_format(path) == "onnx":
        onnx = require_package("onnx", f"reading {path}")
        props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
        if METADATA_KEY not in props:
            raise ValueError(f"{path} has no '{METADATA_KEY}' metadata; was it written by `fplnet export`?")
        return json.loads(props[METADATA_KEY])
    files = {TORCHSCRIPT_METADATA_FILE: ""}
    torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    if not files[TORCHSCRIPT_METADATA_FILE]:
        raise ValueError(f"{path} has no {TORCHSCRIPT_METADATA_FILE}; was it written by `fplnet export`?")
    return json.loads(files[TORCHSCRIPT_METADATA_FILE])


def load_exported(path, threads: int = 0):
    """A callable float32 NCHW tensor -> logits tensor for an exported file (onnxruntime on CPU
    for .onnx, OpenVINO's CPU plugin at f32 precision for .xml, ``torch.jit.load`` otherwise)."""
    path = Path(path)
    if graph_format(path) == "openvino":
        from .openvino_backend import load_ir
        return load_ir(path, threads or torch.get_num_threads(), "f32")
    if graph_format(path) == "onnx":
        session = onnxruntime_session(path, threads or torch.get_num_threads(), f"running {path}")
        return lambda x: torch.from_numpy(session.run(None, {INPUT_NAME: x.contiguous().numpy()})[0])
    module = torch.jit.load(str(path), map_location="cpu").eval()

    def run(x):
        with torch.no_grad():
            return module(x)
    return run


def refuse_options_for_exported_file(path, variant=None, calib_data=None, calib_size=None, fast: bool = True) -> None:
    """An exported file runs as it is: a ValueError for each option that would change how it runs,
    named as both the command-line flag and the Python keyword (module docstring)."""
    def refuse(what: str, why: str) -> None:
        raise ValueError(f"{what}: {path} is an exported model and runs as it is; {why}")

    if variant is not None:
        refuse(f"--variant (variant=) {variant}", "a variant applies to checkpoints (leave it out, or export the "
                                                  "variant you want)")
    if not fast:
        refuse("--no-fast (fast=False)", "plain eager PyTorch needs the checkpoint it was exported from")
    for flag, keyword, value in (("--calib-data", "calib_data", calib_data), ("--calib-size", "calib_size", calib_size)):
        if value is not None:
            refuse(f"{flag} ({keyword}=) {value}", f"an INT8 one was calibrated when it was exported (leave {flag} out)")


def exported_file_device(path, device) -> torch.device:
    """The device an exported file runs on: the CPU, which ``auto`` means for it (as for the
    onnxruntime and OpenVINO variants); any other device is refused, naming flag and keyword."""
    name = str(device).strip().lower()
    resolved = resolve_device("cpu" if name == "auto" else name)
    if resolved.type != "cpu":
        raise ValueError(f"--device (device=) {device}: {path} is an exported model and runs as it is; it runs on "
                         f"the CPU ({exported_backend(path)}); use cpu or auto")
    return resolved


class ExportedModel:
    """An exported .onnx or OpenVINO .xml file, run as it is, with the inference spec it carries
    (module docstring): what ``fplnet evaluate --checkpoint FILE.xml`` scores and what
    ``Segmenter(FILE.xml)`` / ``fplnet predict --checkpoint FILE.xml`` run, so that what is
    measured is the very file deployed. Both backends run on the CPU. Any failure to read or load
    the file is a ValueError that names it.

    Like ``fplnet.fast.InferenceRunner``, it adds the time of its loading and of the first call at
    each input shape to ``setup_seconds``, so that a caller can tell steady calls from per-shape
    setup: for an IR, the calls in which OpenVINO compiled (``call_counting_setup``); for an .onnx,
    the first call at each of the last ``MAX_SHAPES`` shapes."""

    MAX_SHAPES = 8

    def __init__(self, path, threads: int = 0):
        started = time.perf_counter()
        self.path = Path(path).expanduser()
        if not is_exported_file(self.path):
            raise ValueError(f"{self.path}: an exported model to run must be an .onnx or OpenVINO .xml file")
        self.backend = exported_backend(self.path)
        try:
            self._run = load_exported(self.path, threads)
            # An IR's runner parsed its metadata already; an .onnx (or an IR without it) is read
            # here, which also raises the "written by `fplnet export`?" error.
            self.metadata = getattr(self._run, "metadata", None) or read_metadata(self.path)
            self.spec = InferenceSpec.from_dict(self.metadata["inference_spec"])
            self.num_classes = int(self.metadata["num_classes"])
            self.model_name = str(self.metadata["model_name"])
        except KeyError as missing:
            raise ValueError(f"{self.path}: its fplnet metadata has no {missing} (exported by an older fplnet?); "
                             "export it again with `fplnet export`") from None
        except MissingPackageError:
            raise                    # the file may be fine: the runtime that reads it is not installed
        except Exception as error:   # the backends' own errors (RuntimeError, protobuf's DecodeError, JSON)
            message = " ".join(str(error).splitlines())
            raise ValueError(message if str(self.path) in message
                             else f"{self.path} is not a readable exported model: {message}") from error
        self._shapes: OrderedDict = OrderedDict()   # input shapes called with, newest last
        self.setup_seconds = time.perf_counter() - started

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.backend == "openvino":
            from .openvino_backend import call_counting_setup
            out, setup = call_counting_setup(self._run, self._run, x)
            self.setup_seconds += setup
            return out
        key = tuple(x.shape)
        if key in self._shapes:
            self._shapes.move_to_end(key)
            return self._run(x)
        make_room(self._shapes, self.MAX_SHAPES)
        started = time.perf_counter()
        out = self._run(x)
        self._shapes[key] = None
        self.setup_seconds += time.perf_counter() - started
        return out

    def labels(self, x: torch.Tensor, size) -> Optional[torch.Tensor]:
        """For an OpenVINO IR: the labels (N, *size) of the logits resized to ``size``, computed by
        OpenVINO (``OpenVINORunner.labels``); None for an .onnx file. A first call per input shape
        and size compiles, and its time goes to ``setup_seconds``."""
        if self.backend != "openvino":
            return None
        from .openvino_backend import call_counting_setup
        labels, setup = call_counting_setup(self._run, self._run.labels, x, size)
        self.setup_seconds += setup
        return labels

    def backend_info(self) -> dict:
        """The file, its backend and (OpenVINO, after a pass) the precision its layers executed in;
        for an INT8 IR, its quantization, calibration set and accuracy delta as exported."""
        info = {"backend": self.backend, "exported_file": str(self.path), "model_name": self.model_name}
        if hasattr(self._run, "info"):
            info.update(self._run.info())
        return info

    def calibration_files(self) -> list[str]:
        """The calibration frames an INT8 IR records, relative to its calibration root ([] if none)."""
        return list(((self.metadata.get("int8") or {}).get("calibration") or {}).get("files") or [])

    def describe(self) -> str:
        """How it runs, for report lines: 'the exported file as it is (openvino)'."""
        return f"the exported file as it is ({self.backend})"
