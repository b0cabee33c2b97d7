"""A training run's folder: who may write into it, and its logs.

One folder holds one run: ``config.yaml``, ``last.pt``, ``best.pt``, ``log.csv``, ``tensorboard/``
and, once the schedule is complete, ``summary.json``. Two rules keep a run from being lost:

* a new run refuses a folder that already holds a run, unless it is told to ``overwrite`` it
  (then the old run's files are removed first) or it resumes that run;
* a run holds an exclusive ``flock`` on ``train.lock`` for its whole life, so a second process
  aimed at the same folder stops at once with the holder's PID. The kernel drops the lock when the
  holder dies, even by SIGKILL, so a stale lock file never blocks a later run.
"""
from __future__ import annotations

import csv
import fcntl
import io
import json
import os
import shutil
import time
from pathlib import Path
from typing import Optional

# The one atomic writer (fsync + rename, a unique temporary name per writer), under the name this
# module's callers use.
from ..io import atomic_write_text

RUN_FILES = ("last.pt", "best.pt", "log.csv", "config.yaml", "summary.json")
LOCK_NAME = "train.lock"
SUMMARY_NAME = "summary.json"


class RunFolderError(ValueError):
    """The folder cannot be used for this run; the message says what to do."""


def default_run_folder(model: str, dataset: str, root: str = "runs") -> Path:
    """``runs/<model>_<dataset>_<YYYYmmdd-HHMMSS>``, with a counter if that second is taken."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = Path(root) / f"{model}_{dataset}_{stamp}"
    counter = 1
    while path.exists():
        counter += 1
        path = Path(root) / f"{model}_{dataset}_{stamp}-{counter}"
    return path


def existing_run_files(folder: Path) -> list[str]:
    return [name for name in RUN_FILES if (folder / name).exists()]


def is_complete(folder: Path) -> bool:
    """True once a run has finished its whole schedule (``summary.json`` is written last)."""
    return (folder / SUMMARY_NAME).is_file()


class RunLock:
    """An exclusive, non-blocking ``flock`` on ``folder/train.lock`` holding the owner's PID."""

    def __init__(self, folder: Path):
        self.path = Path(folder) / LOCK_NAME
        self._fh = None

    def acquire(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.path, "a+")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            fh.seek(0)
            holder = fh.read().strip() or "unknown"
            fh.close()
            raise RunFolderError(f"run folder {self.path.parent} is in use by another training process "
                                 f"(PID {holder}, lock {self.path}); wait for it to finish, stop it, or "
                                 "choose another --output") from None
        fh.seek(0)
        fh.truncate()
        fh.write(f"{os.getpid()}\n")
        fh.flush()
        self._fh = fh
        return self

    def release(self) -> None:
        if self._fh is not None:
            fcntl.flock(self._fh, fcntl.LOCK_UN)
            self._fh.close()
            self._fh = None


def claim_for_new_run(folder: Path, overwrite: bool) -> None:
    """Refuse a folder holding another run, or clear it when ``overwrite`` is set. Call with the
    folder's lock held, so that no other process writes in between."""
    found = existing_run_files(folder)
    if not found:
        return
    if not overwrite:
        raise RunFolderError(f"--output {folder} already holds a run ({', '.join(found)}); continue it with "
                             f"--resume {folder}, choose another --output, or pass --overwrite to replace it")
    for name in found:
        (folder / name).unlink()
    shutil.rmtree(folder / "tensorboard", ignore_errors=True)


class RunLog:
    """Console, ``log.csv`` and TensorBoard for one run (main process only).

    ``log.csv`` is rewritten from the checkpoint's history when a run resumes, so it never holds
    an epoch twice or an epoch the checkpoint does not know, whatever moment the run was killed."""

    SCALARS = ("train_loss", "lr", "val_miou", "img_per_s")

    def __init__(self, folder: Path, enabled: bool, tensorboard: bool):
        self.folder, self.enabled = Path(folder), enabled
        self.writer = None
        if enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
                self.writer = SummaryWriter(str(self.folder / "tensorboard"))
            except ImportError:
                self.writer = None

    def print(self, text: str) -> None:
        if self.enabled:
            print(text, flush=True)

    def restart_csv(self, history: list[dict]) -> None:
        if not self.enabled:
            return
        path = self.folder / "log.csv"
        if not history:
            path.unlink(missing_ok=True)
            return
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(history[0]))
        writer.writeheader()
        writer.writerows(history)
        atomic_write_text(path, buffer.getvalue())

    def epoch(self, metrics: dict) -> None:
        if not self.enabled:
            return
        path = self.folder / "log.csv"
        new = not path.exists()
        with open(path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(metrics))
            if new:
                writer.writeheader()
            writer.writerow(metrics)
        if self.writer is not None:
            for key in self.SCALARS:
                if metrics.get(key, "") != "":
                    self.writer.add_scalar(key, metrics[key], metrics["epoch"])

    def summary(self, summary: dict) -> None:
        if self.enabled:
            atomic_write_text(self.folder / SUMMARY_NAME, json.dumps(summary, indent=2) + "\n")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def read_summary(folder: Path) -> Optional[dict]:
    path = Path(folder) / SUMMARY_NAME
    return json.loads(path.read_text()) if path.is_file() else None
