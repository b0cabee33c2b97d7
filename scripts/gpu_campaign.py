"""One device call's CamVid training campaign, planned to end inside a fixed wall time.

The device machine is lent for minutes, so everything that needs it runs from this one script,
unattended, and every decision it takes is a fixed rule written here, not a judgement made
after seeing results:

Phase A (the larger share of the time): the paper's two-stage schedule (500 encoder + 1000
full-model epochs, capped by the time left) for each candidate recipe, twice: trained on CamVid
train + val without sequence 0006R0 and validated on 0006R0 (``heldout``, the figure that says
how the recipe generalizes), and trained on all 468 train + val frames (``trainval``, the model
that may ship; it has no validation). All chains run at once and share the GPU. Stage 1 gets a
quarter of the phase, stage 2 the rest; each ``fplnet train`` shortens its schedule to fit its
budget from the wall time of its own steady epochs (``time_budget_minutes``), and says so in
its run config.

Phase B (the rest), with CUDA graphs (``compile: reduce-overhead``; eager runs were bound by
their kernel launches, 37-41 images/s each on 2026-11-29): the recipe trials of
``configs/sweeps/recipe_camvid.yaml`` (3 arms x 2 seeds, 30 epochs) and the ablation grid (``fplnet ablate``, tables in the order below, seeds
first so that every row gets one seed before any gets two), until the deadline. Runs still going
then are stopped (SIGTERM: they save and exit) and left out; complete ones come back.

Which recipe ships is decided afterwards, on held-out data only (docs/recipe.md). The
``trainval`` chains are never scored on data they trained on for that decision.

    PYTHONPATH=src python3 scripts/gpu_campaign.py --data-root /tmp/camvid --work /tmp/gpu \\
        --out "$OUT" --seconds 520
    python3 scripts/gpu_campaign.py ... --dry-run     # print the commands, train nothing
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]

# Flags shared by every GPU run: none changes the optimisation trajectory, only its speed and how
# often it writes (checkpoints, log lines).
def run_flags(device: str, compile_mode: str) -> list[str]:
    return ["--device", device, "--amp", "bf16" if device.startswith("cuda") else "none", "--channels-last",
            "--compile", compile_mode, "--log-every", "50", "--save-every-epochs", "50", "--save-every-minutes", "2",
            "--no-tensorboard"]

# The candidate recipes of phase A (docs/recipe.md): the two arms of the trials that change the
# paper's optimisation; the paper's SGD is in the trials only (it trailed Adam at every
# validation of the CPU trial, seed 0).
RECIPES = {
    "adam": ["--optimizer", "adam", "--lr", "0.001", "--weight-decay", "0.0002"],
    "adam_appearance": ["--optimizer", "adam", "--lr", "0.001", "--weight-decay", "0.0002", "--no-decay-norm",
                        "--color-jitter", "0.3,0.3,0.3,0.05", "--scale-range", "0.5,2.0"],
}
SPLITS = {"heldout": ("heldout_train", "heldout_val"), "trainval": ("trainval", "none")}
STAGES = (("encoder", "configs/camvid_encoder.yaml", 500), ("full", "configs/camvid.yaml", 1000))
STAGE1_SHARE = 0.25
PHASE_A_SHARE = 0.62
ABLATION_TABLES = ("viii", "vi", "fpl_reading", "activation", "vii", "x", "ix")


def chain_commands(name: str, recipe: str, split: str, args, budget_minutes: float, stage: str) -> list[str]:
    work, data_root = args.work, args.data_root
    folder = work / "chains" / name
    index = [s[0] for s in STAGES].index(stage)
    _, config, epochs = STAGES[index]
    train_split, val_split = SPLITS[split]
    command = [sys.executable, "-m", "fplnet.cli", "train", "--config", config, "--data-root", data_root,
               "--output", str(folder / stage), "--overwrite", "--epochs", str(epochs), "--batch-size", "8",
               "--train-split", train_split, "--val-split", val_split, "--val-every", "25",
               "--time-budget-minutes", f"{budget_minutes:.3f}", "--notes", f"gpu campaign chain {name}",
               *RECIPES[recipe], *run_flags(args.device, args.compile)]
    if stage == "full":
        command += ["--init-from", str(folder / "encoder" / "last.pt")]
    return command


class Chain:
    """Stage 1 then stage 2 of one (recipe, split), each with its share of phase A."""

    def __init__(self, recipe: str, split: str, args, phase_end: float):
        self.name = f"{split}_{recipe}"
        self.recipe, self.split, self.args, self.phase_end = recipe, split, args, phase_end
        self.stage, self.process, self.log = None, None, None
        self.failed = False

    def _start(self, stage: str, budget_s: float):
        command = chain_commands(self.name, self.recipe, self.split, self.args, budget_s / 60, stage)
        log_path = self.args.work / "logs" / f"{self.name}_{stage}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        print(f"[{stamp()}] {self.name} {stage}: budget {budget_s:.0f} s", flush=True)
        self.stage, self.log = stage, open(log_path, "w")
        self.process = subprocess.Popen(command, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)

    def start(self, now: float):
        self._start("encoder", (self.phase_end - now) * STAGE1_SHARE)

    def poll(self, now: float) -> bool:
        """Advance; True while the chain still runs."""
        if self.process is None or self.process.poll() is None:
            return self.process is not None
        code = self.process.returncode
        self.log.close()
        print(f"[{stamp()}] {self.name} {self.stage}: exit {code}", flush=True)
        if code != 0:
            self.failed, self.process = True, None
            return False
        if self.stage == "encoder":
            self._start("full", max(60.0, self.phase_end - now))
            return True
        self.process = None
        return False

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)


T0 = time.monotonic()


def stamp() -> str:
    return f"{time.monotonic() - T0:6.1f}s"


def phase_a(args, deadline: float) -> list[Chain]:
    phase_end = T0 + (deadline - T0) * PHASE_A_SHARE
    chains = [Chain(recipe, split, args, phase_end) for recipe in args.recipes for split in SPLITS]
    for chain in chains:
        chain.start(time.monotonic())
    while any([chain.poll(time.monotonic()) for chain in chains]):   # a list: every chain is polled
        if time.monotonic() > deadline - 25:
            for chain in chains:
                chain.stop()
        time.sleep(1.0)
    return chains


def gpu_sweep_file(args) -> Path:
    """The recipe trials' sweep with the GPU flags' settings and its output under ``work``."""
    sweep = yaml.safe_load((REPO / "configs/sweeps/recipe_camvid.yaml").read_text())
    sweep["output"] = str(args.work / "sweeps" / "recipe_camvid")
    sweep["base"].update({"data_root": args.data_root, "device": args.device, "channels_last": True,
                          "compile": "reduce-overhead", "log_every": 50, "save_every_epochs": 10})
    if args.epochs_b:
        sweep["base"]["epochs"] = args.epochs_b
    path = args.work / "recipe_camvid_gpu.yaml"
    path.write_text(yaml.safe_dump(sweep, sort_keys=False))
    return path


def phase_b(args, deadline: float) -> None:
    commands = {
        "sweep": [sys.executable, "-m", "fplnet.cli", "sweep", str(gpu_sweep_file(args)),
                  "--parallel", str(args.sweep_parallel), "--json", str(args.work / "recipe_camvid.json")],
        "ablate": [sys.executable, "-m", "fplnet.cli", "ablate", "--recipe", args.ablation_recipe,
                   "--device", args.device, "--data-root", args.data_root, "--runs-root", str(args.work / "ablations"),
                   "--parallel", str(args.ablate_parallel), "--json", str(args.work / "ablations.json")]
                  + [arg for table in ABLATION_TABLES for arg in ("--table", table)]
                  + (["--epochs", str(args.epochs_b)] if args.epochs_b else []),
    }
    processes = {}
    for name, command in commands.items():
        print(f"[{stamp()}] phase B {name}: {' '.join(command[3:])}", flush=True)
        log = open(args.work / "logs" / f"phase_b_{name}.log", "w")
        processes[name] = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    while any(p.poll() is None for p in processes.values()) and time.monotonic() < deadline - 20:
        time.sleep(1.0)
    for name, process in processes.items():
        if process.poll() is None:
            print(f"[{stamp()}] phase B {name}: deadline, stopping", flush=True)
            process.send_signal(signal.SIGTERM)   # the runners forward it to their runs
    for name, process in processes.items():
        try:
            process.wait(timeout=12)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        print(f"[{stamp()}] phase B {name}: exit {process.returncode}", flush=True)
    # Runs still in their first step (or compiling) have not reached the point where they stop:
    # what they hold is incomplete and left out anyway.
    subprocess.run(["pkill", "-KILL", "-f", "fplnet.cli train"], check=False)


def small_files(folder: Path) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and p.suffix != ".pt" and "events.out" not in p.name]


def pack(args) -> None:
    """At most 8 files come back, 16 MiB each: one archive per chain (its small files and its
    stages' last.pt), one for everything else (small files of complete runs, logs)."""
    args.out.mkdir(parents=True, exist_ok=True)
    for chain in sorted((args.work / "chains").glob("*")):
        with tarfile.open(args.out / f"chain_{chain.name}.tar.gz", "w:gz") as tar:
            for path in small_files(chain) + sorted(chain.glob("*/last.pt")):
                tar.add(path, arcname=str(path.relative_to(args.work)))
    with tarfile.open(args.out / "results.tar.gz", "w:gz") as tar:
        for path in small_files(args.work):
            if "chains" not in path.relative_to(args.work).parts[:1]:
                tar.add(path, arcname=str(path.relative_to(args.work)))
    for path in sorted(args.out.iterdir()):
        print(f"{path.name}: {path.stat().st_size / 2**20:.1f} MiB", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument("--work", type=Path, required=True, help="where the runs live on the device")
    parser.add_argument("--out", type=Path, required=True, help="where the archives go ($OUT)")
    parser.add_argument("--seconds", type=float, required=True, help="wall time of the whole campaign")
    parser.add_argument("--recipes", default="adam,adam_appearance")
    parser.add_argument("--ablation-recipe", default="configs/ablations/camvid_heldout_adam.yaml")
    parser.add_argument("--sweep-parallel", type=int, default=6)
    parser.add_argument("--ablate-parallel", type=int, default=8)
    parser.add_argument("--phases", default="a,b", help="a, b or a,b (a try-out of one phase)")
    parser.add_argument("--min-phase-b", type=float, default=60.0, help="seconds phase B needs to be worth starting")
    parser.add_argument("--device", default="cuda", help="cpu only to try the script out")
    parser.add_argument("--compile", default="default", help="torch.compile mode of every run")
    parser.add_argument("--epochs-b", type=int, help="phase B schedule instead of the recipes' (a try-out)")
    parser.add_argument("--dry-run", action="store_true")
    args = parser.parse_args(argv)
    args.recipes = args.recipes.split(",")
    deadline = T0 + args.seconds
    if args.dry_run:
        for recipe in args.recipes:
            for split in SPLITS:
                for stage, _, _ in STAGES:
                    print(" ".join(chain_commands(f"{split}_{recipe}", recipe, split, args, 1.0, stage)))
        return 0
    (args.work / "logs").mkdir(parents=True, exist_ok=True)
    chains = phase_a(args, deadline) if "a" in args.phases else []
    report = {"chains": {c.name: {"failed": c.failed} for c in chains}, "phase_a_end_s": round(time.monotonic() - T0, 1)}
    if "b" in args.phases and time.monotonic() < deadline - args.min_phase_b:
        phase_b(args, deadline)
    report["end_s"] = round(time.monotonic() - T0, 1)
    (args.work / "logs" / "campaign.json").write_text(json.dumps(report, indent=1))
    pack(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
