"""The `fplnet` command: argument parsing and dispatch only.

Each sub-command lives in a module that provides ``add_arguments(parser)`` and ``run(args)``;
modules are imported only when their command runs, so `fplnet models` stays fast.
"""
from __future__ import annotations

import argparse
import importlib
import sys

COMMANDS = {
    "models": ("fplnet.engine.models_table", "list every registered model with parameters and MACs"),
    "train": ("fplnet.engine.train", "train a model (YAML config; flags win)"),
    "sweep": ("fplnet.engine.sweep", "train a grid of runs (arms x seeds), resumable, and tabulate it"),
    "ablate": ("fplnet.engine.ablate", "retrain the paper's ablation tables (VI-X, PReLU) with seeds, beside the paper"),
    "evaluate": ("fplnet.engine.evaluate", "evaluate a checkpoint: per-class IoU and mIoU"),
    "predict": ("fplnet.engine.predict", "segment images, folders and videos"),
    "export": ("fplnet.engine.export", "export a checkpoint to ONNX, TorchScript or OpenVINO (fp32 or INT8)"),
    "benchmark": ("fplnet.engine.benchmark", "side-by-side speed of several models"),
    "demo": ("fplnet.engine.demo", "segment the shipped CamVid images with the shipped weights"),
    "app": ("fplnet.engine.app", "a local web page (Gradio) to segment your own images and videos"),
}


class OneLineErrorParser(argparse.ArgumentParser):
    """argparse, except that a bad argument is reported as one line on stderr that names the flag
    and what it allows, with exit status 2 and no usage block (sub-commands inherit this class)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineErrorParser(prog="fplnet", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in COMMANDS.items():
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as err:
            if err.name != module:
                raise
            continue  # command not available in this build
        cmd = sub.add_parser(name, help=help_text, description=help_text)
        mod.add_arguments(cmd)
        cmd.set_defaults(_run=mod.run)
    return parser


def main(argv=None) -> int:
    try:
        # Every flag is checked here, by its ``type=`` validator (fplnet.engine.arguments), before
        # any command starts work.
        args = build_parser().parse_args(argv)
    except SystemExit as stop:   # --help (0) or a bad argument (2), already reported
        return int(stop.code or 0)
    # Before any tensor work starts torch's thread pool, whose threads inherit the switch.
    from .runtime import flush_denormals
    flush_denormals()
    # The words the command was given, for commands that record how their output was made.
    args._argv = list(sys.argv[1:] if argv is None else argv)
    try:
        return int(args._run(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except (OSError, ValueError) as err:
        # User-facing errors (bad paths, bad data, bad checkpoints) carry their own explanation; an
        # OSError (a full disk, a folder where a file should go) names the path it failed on.
        message = " ".join(str(err).splitlines())
        print(f"fplnet {args.command}: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
