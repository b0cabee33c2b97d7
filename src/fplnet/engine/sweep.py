"""`fplnet sweep`: a grid of training runs (arms x seeds) with one recipe, and its table.

A sweep is a YAML file::

    name: recipe_camvid
    output: runs/sweeps/recipe_camvid      # one ordinary `fplnet train` run folder per (arm, seed)
    base: {model: fplnet_encoder, dataset: camvid, train_split: heldout_train, ...}
    seeds: [0, 1]
    arms:                                   # name -> the TrainConfig values it changes
      paper_sgd: {}
      adam: {optimizer: adam, lr: 0.001, weight_decay: 0.0002}

Every run is an ordinary, self-describing `fplnet train` folder (``<output>/<arm>__seed<k>``),
so the runner can be stopped at any moment and called again: complete runs (``summary.json``)
are skipped, interrupted ones are resumed with ``--resume``, the rest are started. Runs go one
after another, or ``--parallel N`` at a time (several runs sharing one GPU, or the CPU's threads,
shared out among them: ``Runner.child_env``). Each run is a child
process; SIGTERM or Ctrl-C to the runner is passed on, so the running children save and stop.

The table reports, per arm, the validation mIoU of the *last* epoch (no checkpoint selection:
the validation split is there to compare recipes, and selecting on it would flatter every arm),
its mean and sample standard deviation over seeds, the wall time, and the raw per-seed figures.
It is written as JSON (every run's summary) and as a Markdown block that can be spliced into a
document between ``<!-- sweep:NAME -->`` and ``<!-- /sweep:NAME -->`` markers.
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Optional

import yaml

from ..io import atomic_write_text
from ..runtime import resolve_device
from .run_folder import is_complete, read_summary
from .train import RESUME_MAY_CHANGE, ConfigError, load_config

# How long a failed runner waits for a child told to stop (it finishes its step and saves last.pt,
# seconds on a CPU) before killing it: long enough for a save, short enough not to hang a queue.
STOP_GRACE_SECONDS = 120


@dataclass
class RunSpec:
    arm: str
    seed: int
    folder: Path
    config: dict            # full TrainConfig values for a fresh start


@dataclass
class Sweep:
    name: str
    output: Path
    base: dict
    seeds: list[int]
    arms: dict[str, dict]
    labels: dict[str, str] = field(default_factory=dict)   # arm -> text for the table (optional)
    # arm -> the seeds it runs, a subset of ``seeds`` (optional; default all of ``seeds``). Lets
    # one grid hold arms with different seed counts (``fplnet ablate``: 3 seeds for Table VIII).
    arm_seeds: dict[str, list[int]] = field(default_factory=dict)

    def seeds_of(self, arm: str) -> list[int]:
        return self.arm_seeds.get(arm, self.seeds)

    def runs(self) -> list[RunSpec]:
        """Seed-major order: after the first pass every arm has one seed, so a sweep cut short
        still compares every arm."""
        specs = []
        for seed in self.seeds:
            for arm, changes in self.arms.items():
                if seed not in self.seeds_of(arm):
                    continue
                folder = self.output / f"{arm}__seed{seed}"
                values = {**self.base, **changes, "seed": seed, "output": str(folder)}
                specs.append(RunSpec(arm, seed, folder, values))
        return specs


def load_sweep(path: str, overrides: Optional[dict] = None) -> Sweep:
    """Read and check a sweep file; ``overrides`` (e.g. data_root, device) apply to every run."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"sweep file {path} does not exist (see configs/sweeps/ for examples)")
    spec = yaml.safe_load(Path(path).read_text()) or {}
    missing = [k for k in ("name", "output", "base", "seeds", "arms") if k not in spec]
    if missing:
        raise ConfigError(f"sweep file {path} lacks {', '.join(missing)}")
    seeds = spec["seeds"]
    if isinstance(seeds, int):
        seeds = list(range(seeds))
    if not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise ConfigError(f"sweep file {path}: seeds must be a count or a list of non-negative integers")
    if not isinstance(spec["arms"], dict) or not spec["arms"]:
        raise ConfigError(f"sweep file {path}: arms must map names to config changes")
    base = {**spec["base"], **{k: v for k, v in (overrides or {}).items() if v is not None}}
    arms = {str(name): dict(changes or {}) for name, changes in spec["arms"].items()}
    sweep = Sweep(str(spec["name"]), Path(spec["output"]), base, list(seeds), arms, dict(spec.get("labels") or {}))
    for run in sweep.runs():  # every run's config is checked before the first one starts
        load_config(None, run.config)
    return sweep


def check_existing_runs(sweep: Sweep) -> None:
    """Refuse a run folder whose saved config differs from what the sweep now asks for in anything
    that changes the training (the sweep or recipe file was edited after the run, or another
    experiment shares the folder): skipped or resumed, it would be tabulated under a description
    it was not trained with. An ``epochs`` that a time budget shortened is the run's own.

    What a resume may change (``RESUME_MAY_CHANGE``) is ignored here too, except ``init_from``:
    a resumed run takes its weights from its checkpoint, but a sweep whose runs now start from
    pretrained weights, or no longer do, is another experiment (the path is not compared: it
    changes when a run moves between machines). A setting the saved config predates (a field added to
    ``TrainConfig`` since) counts as its default, which is what that run trained with."""
    defaults = load_config(None, {}).to_dict()
    for run in sweep.runs():
        saved_path = run.folder / "config.yaml"
        if not saved_path.is_file():
            continue
        saved = {**defaults, **(yaml.safe_load(saved_path.read_text()) or {})}
        wanted = load_config(None, run.config).to_dict()
        ignored = (set(RESUME_MAY_CHANGE) - {"init_from"}) | ({"epochs"} if saved.get("time_budget_minutes") else set())
        for key in sorted(set(saved) & set(wanted) - ignored):
            if key == "init_from":
                # The path of the starting weights changes when a run moves between machines
                # (a GPU's scratch folder, then runs/ here); whether there are any does not.
                start = lambda weights: f"from {weights!r}" if weights else "from scratch"
                if bool(saved[key]) != bool(wanted[key]):
                    raise ConfigError(
                        f"run {run.folder} was trained {start(saved[key])} but {sweep.name} now starts it "
                        f"{start(wanted[key])}; write the new experiment under another name (or another output folder)")
                continue
            if saved[key] != wanted[key]:
                raise ConfigError(
                    f"run {run.folder} was trained with {key}={saved[key]!r} but {sweep.name} now gives "
                    f"{wanted[key]!r}; keep the sweep as it was, or write the new one under another name "
                    "(or another output folder) so the two experiments do not mix")


def run_state(folder: Path) -> str:
    if is_complete(folder):
        return "complete"
    if (folder / "last.pt").is_file():
        return "interrupted"
    return "new"


def train_command(run: RunSpec, config_file: Path) -> list[str]:
    command = [sys.executable, "-m", "fplnet.cli", "train"]
    state = run_state(run.folder)
    if state == "interrupted":
        # data_root and device may differ between machines; the run keeps everything else.
        moved = [arg for key in ("data_root", "device") if run.config.get(key)
                 for arg in (f"--{key.replace('_', '-')}", str(run.config[key]))]
        return command + ["--resume", str(run.folder)] + moved
    # A folder with no checkpoint holds nothing worth keeping (a start that died in set-up).
    return command + ["--config", str(config_file), "--overwrite"]


class Runner:
    """Starts, resumes and skips the runs of a sweep; forwards SIGTERM / Ctrl-C to its children."""

    def __init__(self, sweep: Sweep, parallel: int = 1, log=print):
        self.sweep, self.parallel, self.log = sweep, max(1, parallel), log
        self.children: list[tuple[RunSpec, subprocess.Popen]] = []
        self.stopping = False

    def _config_file(self, run: RunSpec) -> Path:
        folder = self.sweep.output / "_configs"
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"{run.folder.name}.yaml"
        atomic_write_text(path, yaml.safe_dump({k: list(v) if isinstance(v, tuple) else v
                                                for k, v in run.config.items()}, sort_keys=False))
        return path

    def child_env(self) -> Optional[dict]:
        """The environment of each run; None (the runner's own) unless several runs share the CPU.
        Then each gets its share of the runner's threads (``OMP_NUM_THREADS``), where every trainer
        would otherwise start one thread per core and the runs would fight over them. Two one-thread
        runs of the ablation recipe trained 1.25x the images per second of one two-thread run on the
        2-core VM (docs/runs/cpu_2026-11-30/cpu_parallel_runs/): one run's step is too small to keep
        two cores busy."""
        if self.parallel == 1 or resolve_device(str(self.sweep.base.get("device") or "auto")).type != "cpu":
            return None
        import torch
        return {**os.environ, "OMP_NUM_THREADS": str(max(1, torch.get_num_threads() // self.parallel))}

    def _start(self, run: RunSpec) -> subprocess.Popen:
        command = train_command(run, self._config_file(run))
        run.folder.parent.mkdir(parents=True, exist_ok=True)
        self.log(f"[sweep {self.sweep.name}] {run_state(run.folder)}: {run.folder.name}: {' '.join(command[3:])}")
        log_file = open(self.sweep.output / f"{run.folder.name}.log", "a")
        # Own process group: the runner decides when a child is told to stop.
        return subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT, start_new_session=True,
                                env=self.child_env())

    def _between_polls(self) -> None:
        time.sleep(0.5)

    def _wait_or_kill_children(self) -> None:
        """Waits for the children told to stop; one that has not saved and exited within
        ``STOP_GRACE_SECONDS`` (stuck in a compile or a data-loader deadlock) is killed with its
        process group, so that a failed runner never hangs on it. Its last periodic checkpoint stays."""
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for run, child in self.children:
            try:
                child.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.log(f"[sweep {self.sweep.name}] {run.folder.name} did not stop within "
                         f"{STOP_GRACE_SECONDS} s of SIGTERM; killed (it resumes from its last checkpoint)")
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(child.pid, signal.SIGKILL)
                child.wait()

    def _stop_children(self, signum=None, frame=None):
        self.stopping = True
        for _, child in self.children:
            if child.poll() is None:
                child.send_signal(signal.SIGTERM)   # the trainer finishes its step, saves, exits

    def run(self) -> dict:
        pending = [run for run in self.sweep.runs() if run_state(run.folder) != "complete"]
        skipped = len(self.sweep.runs()) - len(pending)
        if skipped:
            self.log(f"[sweep {self.sweep.name}] {skipped} complete run(s) skipped")
        previous = {sig: signal.signal(sig, self._stop_children) for sig in (signal.SIGTERM, signal.SIGINT)}
        failed = []
        try:
            while (pending or self.children) and not (self.stopping and not self.children):
                while pending and len(self.children) < self.parallel and not self.stopping:
                    run = pending.pop(0)
                    if run_state(run.folder) == "complete":
                        # Finished since the list was made (restored from another machine, or
                        # trained by another grid sharing the run): starting it would overwrite it.
                        self.log(f"[sweep {self.sweep.name}] complete meanwhile, skipped: {run.folder.name}")
                        continue
                    child = self._start(run)
                    self.children.append((run, child))
                    if self.stopping:   # the signal came while the child was starting, before it was listed
                        child.send_signal(signal.SIGTERM)
                self._between_polls()
                for run, child in list(self.children):
                    if child.poll() is not None:
                        self.children.remove((run, child))
                        state = run_state(run.folder)
                        if child.returncode != 0 and not self.stopping:
                            failed.append(run.folder.name)
                            self.log(f"[sweep {self.sweep.name}] {run.folder.name} failed (exit "
                                     f"{child.returncode}); see {self.sweep.output / run.folder.name}.log")
                        else:
                            self.log(f"[sweep {self.sweep.name}] {run.folder.name}: {state}")
        except BaseException:
            # The runner itself failed: its children run in their own sessions and would train on
            # unseen (a queue's `pause` would report stopped while they still write checkpoints),
            # so they are told to save and stop, and waited for, before the error goes on.
            self._stop_children()
            self._wait_or_kill_children()
            raise
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return {"failed": failed, "stopped": self.stopping,
                "complete": sum(run_state(r.folder) == "complete" for r in self.sweep.runs()),
                "total": len(self.sweep.runs())}


# --- results ------------------------------------------------------------------------------------
def run_record(seed: int, folder: Path) -> dict:
    """One run as the tables report it: its state and, once complete, its last-epoch figures."""
    summary = read_summary(folder)
    if summary is None:
        return {"seed": seed, "folder": str(folder), "state": run_state(folder)}
    # A run resumed elsewhere (GPU then CPU) lists every machine it ran on, with its share of the time,
    # and the precision its steps ran in there: `amp: auto` picks bf16 on one CPU and fp32 on another.
    by_hardware = seconds_by_hardware((machine_label(s), s["seconds"]) for s in summary.get("sessions") or [])
    if not by_hardware and summary.get("hardware"):
        by_hardware[machine_label(summary)] = summary["wall_seconds"]
    return {"seed": seed, "folder": str(folder), "state": "complete",
            "val_miou": summary["last"].get("val_miou"), "epochs": summary["epochs"],
            "wall_seconds": summary["wall_seconds"], "hardware": list(by_hardware),
            "seconds_by_hardware": by_hardware,
            "val_iou": summary.get("last_val_iou"), "git_commit": summary.get("git_commit", "")}


def machine_label(session: dict) -> str:
    """A training session's machine and the precision of its steps, e.g. "..., 2 cores (torch 2.13.0+cpu), bf16 steps"."""
    amp = session.get("amp")
    return session["hardware"] + (f", {'fp32' if amp == 'none' else amp} steps" if amp else "")


def seconds_by_hardware(pairs: Iterable[tuple[str, float]]) -> dict[str, float]:
    """Seconds summed per hardware name, over (name, seconds) pairs, in the order names first come."""
    total: dict[str, float] = {}
    for name, seconds in pairs:
        total[name] = total.get(name, 0.0) + seconds
    return total


def seed_statistics(runs: list[dict]) -> dict:
    """``n``, ``mean`` and sample standard deviation ``std`` of the runs' last-epoch val mIoU."""
    values = [r["val_miou"] for r in runs if isinstance(r.get("val_miou"), (int, float))]
    return {"n": len(values), "mean": statistics.fmean(values) if values else None,
            "std": statistics.stdev(values) if len(values) > 1 else None}


def collect(sweep: Sweep) -> dict:
    """Every run's summary, grouped by arm, with the mean and spread of the last-epoch val mIoU."""
    arms = {}
    for arm in sweep.arms:
        runs = [run_record(seed, sweep.output / f"{arm}__seed{seed}") for seed in sweep.seeds_of(arm)]
        arms[arm] = {"changes": sweep.arms[arm], "label": sweep.labels.get(arm, ""), "runs": runs,
                     **seed_statistics(runs)}
    return {"name": sweep.name, "base": sweep.base, "seeds": sweep.seeds, "arms": arms}


def _changes_text(changes: dict) -> str:
    if not changes:
        return "(base recipe)"
    return ", ".join(f"{k}={','.join(map(str, v)) if isinstance(v, (list, tuple)) else v}"
                     for k, v in changes.items())


def format_table(results: dict) -> str:
    """Markdown: one row per arm, the reference arm (the first) used for the difference column."""
    arms = results["arms"]
    reference = next(iter(arms.values()))["mean"]
    lines = ["| arm | changes from the base recipe | seeds | last-epoch val mIoU per seed | mean ± sd | "
             "vs first arm | wall time per run |", "|---|---|---:|---|---:|---:|---:|"]
    for name, arm in arms.items():
        done = [r for r in arm["runs"] if r["state"] == "complete"]
        per_seed = ", ".join(f"{r['val_miou']:.2f} (s{r['seed']})" for r in done) or "-"
        mean = "-" if arm["mean"] is None else f"{arm['mean']:.2f}" + (
            "" if arm["std"] is None else f" ± {arm['std']:.2f}")
        delta = "-" if arm["mean"] is None or reference is None else f"{arm['mean'] - reference:+.2f}"
        minutes = [r["wall_seconds"] / 60 for r in done]
        wall = f"{statistics.fmean(minutes):.0f} min" if minutes else "-"
        label = arm["label"] or _changes_text(arm["changes"])
        lines.append(f"| {name} | {label} | {arm['n']}/{len(arm['runs'])} | {per_seed} | {mean} | {delta} | {wall} |")
    hardware = sorted({h for arm in arms.values() for r in arm["runs"] for h in r.get("hardware", [])})
    lines.append("")
    lines.append(f"Base recipe: {_changes_text(results['base'])}. Hardware: {'; '.join(hardware) or 'n/a'}.")
    return "\n".join(lines)


def markers(name: str) -> tuple[str, str]:
    """The start and end markers of a generated block in a Markdown document."""
    return f"<!-- sweep:{name} -->", f"<!-- /sweep:{name} -->"


def check_markers(document: Path, name: str) -> str:
    """Refuse a document whose ``<!-- sweep:NAME -->`` markers were lost, doubled or swapped by a
    hand edit: the replacement would swallow the text up to some other block's end. Called before
    any training too, so that hours of runs never end on a document that cannot take their table.
    Returns the document's text ("" if it does not exist yet)."""
    start, end = markers(name)
    text = document.read_text() if document.exists() else ""
    counts = (text.count(start), text.count(end))
    if counts not in ((0, 0), (1, 1)) or (counts == (1, 1) and text.index(start) > text.index(end)):
        raise ValueError(f"{document}: the markers {start} and {end} must appear once each, in that order "
                         f"(found {counts[0]} and {counts[1]}); repair them by hand, then run the command again")
    return text


def splice(document: Path, name: str, block: str, writer: str = "fplnet sweep") -> None:
    """Replace the text between ``<!-- sweep:NAME -->`` and ``<!-- /sweep:NAME -->`` in ``document``
    (appended with the markers if they are not there yet); ``writer`` is the command named in the
    block's do-not-edit line. Broken markers are refused and the document left as it is."""
    text = check_markers(document, name)
    start, end = markers(name)
    generated = f"{start}\n<!-- written by `{writer}`; do not edit by hand -->\n{block}\n{end}"
    if start in text:
        text = text[:text.index(start)] + generated + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + ("\n\n" if text else "") + generated + "\n"
    document.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(document, text)


def write_results(sweep: Sweep, json_path: Optional[str], document: Optional[str]) -> dict:
    results = collect(sweep)
    if json_path:
        Path(json_path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(Path(json_path), json.dumps(results, indent=2, default=str) + "\n")
    if document:
        splice(Path(document), sweep.name, format_table(results))
    return results


# --- CLI ------------------------------------------------------------------------------------------
def add_arguments(parser):
    parser.add_argument("sweep", help="sweep YAML (configs/sweeps/*.yaml)")
    parser.add_argument("--parallel", type=int, default=1,
                        help="runs at once (several share one GPU, or the CPU's threads between them)")
    parser.add_argument("--data-root", dest="data_root", help="overrides the sweep's data_root for every run")
    parser.add_argument("--device", help="overrides the sweep's device for every run")
    parser.add_argument("--json", help="write every run's summary and the per-arm statistics here")
    parser.add_argument("--doc", help="Markdown file whose <!-- sweep:NAME --> block receives the table")
    parser.add_argument("--table-only", action="store_true", help="do not train; only collect and write the table")


def run(args):
    if args.parallel < 1:
        raise ConfigError(f"--parallel {args.parallel}: must be a positive integer")
    sweep = load_sweep(args.sweep, {"data_root": args.data_root, "device": args.device})
    check_existing_runs(sweep)
    if args.doc:   # before any training: a hand edit may have broken the block
        check_markers(Path(args.doc), sweep.name)
    outcome = {"failed": [], "stopped": False}
    if not args.table_only:
        outcome = Runner(sweep, args.parallel).run()
    results = write_results(sweep, args.json, args.doc)
    print(format_table(results))
    if outcome["stopped"]:
        print(f"stopped; run `fplnet sweep {args.sweep}` again to resume", file=sys.stderr)
        return 130
    return 1 if outcome["failed"] else 0
