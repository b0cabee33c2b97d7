"""Carry a grid of runs across sessions in git: the small files of every run, and the resumable
checkpoint of runs that are not finished.

    python scripts/sync_runs.py save runs/sweeps/recipe_camvid docs/runs/recipe_camvid
    python scripts/sync_runs.py restore docs/runs/recipe_camvid runs/sweeps/recipe_camvid

``save`` copies each run folder's ``config.yaml``, ``log.csv``, ``summary.json`` and the runner's
``<run>.log`` into DEST/<run>/, plus ``last.pt`` for a run that has not finished (a finished run
needs none: ``summary.json`` marks it complete, and the sweep runner skips it). A ``last.pt`` saved
earlier for a run that has since finished is deleted, so only unfinished runs cost repository
space. ``--keep-finished`` keeps (and copies) the ``last.pt`` of finished runs too, for chains
whose next stage starts from it (``scripts/camvid_long_run.sh``); ``--keep full`` keeps
only the runs named ``full`` (a finished long run whose weights are still to be shipped, without
carrying its encoder's checkpoint again); ``--long-run`` applies the long run's rule (the full
stage's checkpoint always, the encoder's only until the full stage has one of its own).
``restore`` copies them back where `fplnet sweep` looks.

Neither goes backwards: ``save`` leaves a saved run alone when it is further along than the one
here (a device's progress unpacked into the repository, say), and ``restore`` never replaces a
checkpoint that is further along than the saved one, nor touches a folder whose trainer is alive
(its ``train.lock`` is held).
"""
from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Collection
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from fplnet.checkpoint import load_checkpoint  # noqa: E402
from fplnet.engine.run_folder import RunFolderError, RunLock, is_complete  # noqa: E402

SMALL_FILES = ("config.yaml", "log.csv", "summary.json")


def progress(path: Path) -> tuple:
    """(epoch, step) of a checkpoint, or (-1, -1) if there is none."""
    if not path.is_file():
        return (-1, -1)
    ckpt = load_checkpoint(path)
    return (ckpt["epoch"], ckpt["step"])


def long_run_keep(runs: Path) -> set[str]:
    """The checkpoints a long run (``encoder`` then ``full``, scripts/camvid_long_run.sh) needs
    kept once finished: the full stage's until its weights ship, the encoder's until the full
    stage, which starts from it, has a checkpoint of its own."""
    return {"full"} if (runs / "full" / "last.pt").is_file() else {"full", "encoder"}


def saved_is_further(folder: Path, target: Path) -> bool:
    """The saved copy of a run holds more of it than the folder here."""
    if is_complete(folder):
        return False
    return is_complete(target) or progress(target / "last.pt") > progress(folder / "last.pt")


def save(runs: Path, dest: Path, keep_finished: bool | Collection[str] = False) -> None:
    """``keep_finished``: True for every finished run, or the names of the runs to keep."""
    for folder in sorted(p for p in runs.iterdir() if p.is_dir() and (p / "config.yaml").is_file()):
        keep = keep_finished if isinstance(keep_finished, bool) else folder.name in keep_finished
        target = dest / folder.name
        if saved_is_further(folder, target):
            print(f"left {target} as it was: it is further along than {folder} (restore it first)")
            continue
        target.mkdir(parents=True, exist_ok=True)
        for name in SMALL_FILES:
            if (folder / name).is_file():
                shutil.copy2(folder / name, target / name)
        runner_log = runs / f"{folder.name}.log"
        if runner_log.is_file():
            shutil.copy2(runner_log, target / "runner.log")
        if is_complete(folder):
            if not keep:
                (target / "last.pt").unlink(missing_ok=True)
                state = "complete"
            elif (folder / "last.pt").is_file():
                shutil.copy2(folder / "last.pt", target / "last.pt")
                state = "complete, last.pt kept"
            else:
                state = "complete, no last.pt here (a saved one is left as it is)"
        elif (folder / "last.pt").is_file():
            shutil.copy2(folder / "last.pt", target / "last.pt")
            state = "epoch {} step {}".format(*progress(folder / "last.pt"))
        else:
            state = "not started"
        print(f"saved {folder.name}: {state}")


def restore(dest: Path, runs: Path) -> None:
    for saved in sorted(p for p in dest.iterdir() if p.is_dir() and (p / "config.yaml").is_file()):
        folder = runs / saved.name
        folder.mkdir(parents=True, exist_ok=True)
        try:
            lock = RunLock(folder).acquire()     # held while copying: no trainer starts in between
        except RunFolderError:
            print(f"skipped {folder}: a trainer is using it (its train.lock is held); stop it first")
            continue
        try:
            print(restore_run(saved, folder, runs))
        finally:
            lock.release()


def restore_run(saved: Path, folder: Path, runs: Path) -> str:
    if is_complete(folder) and not is_complete(saved):
        return f"kept {folder.name}: it is complete here"
    if (saved / "last.pt").is_file() and progress(saved / "last.pt") <= progress(folder / "last.pt"):
        return f"kept {folder.name}: its checkpoint is as far along as the saved one"
    if not (saved / "last.pt").is_file() and not is_complete(saved) and (folder / "last.pt").is_file():
        # A copy saved before the run had a checkpoint: its config and log are older than these.
        return f"kept {folder.name}: it has a checkpoint and the saved copy has none"
    for name in SMALL_FILES + ("last.pt",):
        if (saved / name).is_file():
            shutil.copy2(saved / name, folder / name)
    if (saved / "runner.log").is_file():
        shutil.copy2(saved / "runner.log", runs / f"{saved.name}.log")
    return f"restored {folder.name}: {'complete' if is_complete(folder) else 'resumable'}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("action", choices=["save", "restore"])
    parser.add_argument("source")
    parser.add_argument("destination")
    parser.add_argument("--long-run", action="store_true",
                        help="save: the long run's rule (the full stage's last.pt always, the encoder's until "
                             "the full stage has its own)")
    parser.add_argument("--keep-finished", action="store_true",
                        help="save: keep the last.pt of finished runs too (a later stage starts from it, or "
                             "its weights are still to be shipped)")
    parser.add_argument("--keep", action="append", metavar="RUN",
                        help="save: keep the last.pt of this finished run (repeatable)")
    args = parser.parse_args(argv)
    source, destination = Path(args.source), Path(args.destination)
    if not source.is_dir():
        print(f"sync_runs: {source} is not a folder", file=sys.stderr)
        return 2
    if args.action == "save":
        keep = long_run_keep(source) if args.long_run else set(args.keep) if args.keep else args.keep_finished
        save(source, destination, keep)
    else:
        restore(source, destination)
    return 0


if __name__ == "__main__":
    sys.exit(main())
