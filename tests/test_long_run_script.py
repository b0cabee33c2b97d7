"""scripts/camvid_long_run.sh, the two-stage CamVid run that spans sessions: it starts, resumes
and skips each stage from what its folder holds, and never starts stage 2 before stage 1 is
complete. A stand-in for python records each call and plays the trainer's part."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from fplnet.engine.train import load_config

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "scripts" / "camvid_long_run.sh"

# Appends its arguments to $CALLS; with --output or --resume it writes last.pt, and summary.json
# too unless $INTERRUPT is set (a trainer stopped by SIGTERM saves last.pt and exits 0).
FAKE_PYTHON = """#!/usr/bin/env bash
echo "$*" >> "$CALLS"
out=""
while [ $# -gt 0 ]; do
  case "$1" in --output|--resume) out=$2 ;; esac
  shift
done
mkdir -p "$out"
if [ -n "${SLEEP:-}" ]; then   # a long step: SIGTERM saves and exits 130, as the trainer does;
  # with FINISH_ON_TERM the signal comes as the stage completes (summary.json written anyway)
  trap 'touch "$out/last.pt"; [ -n "${FINISH_ON_TERM:-}" ] && echo "{}" > "$out/summary.json";
        echo saved >> "$CALLS"; exit 130' TERM
  sleep 30 >/dev/null 2>&1 & wait
fi
[ -n "${FAIL:-}" ] && exit 1
touch "$out/last.pt"
[ -n "${INTERRUPT:-}" ] || echo '{}' > "$out/summary.json"
"""


def script_environment(tmp_path: Path, split: str, env: dict) -> dict:
    fake = tmp_path / "fake_python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    (tmp_path / "calls.txt").unlink(missing_ok=True)
    return {**os.environ, "PYTHON": str(fake), "CALLS": str(tmp_path / "calls.txt"), "RUNS": str(tmp_path / "runs"),
            "DATA": "data/camvid", "SPLIT": split, **env}


def run_script(tmp_path: Path, split: str = "trainval", **env) -> tuple[subprocess.CompletedProcess, list[str]]:
    environment = script_environment(tmp_path, split, env)
    calls = tmp_path / "calls.txt"
    done = subprocess.run(["bash", str(SCRIPT)], env=environment, capture_output=True, text=True, timeout=60)
    return done, calls.read_text().splitlines() if calls.exists() else []


def test_fresh_start_runs_stage_one_then_stage_two_from_its_last_epoch(tmp_path):
    done, calls = run_script(tmp_path, EPOCHS1="500", EPOCHS2="1000")
    assert done.returncode == 0, done.stderr
    assert len(calls) == 2
    encoder, full = (tmp_path / "runs" / "trainval_adam" / stage for stage in ("encoder", "full"))
    assert "--config configs/camvid_adam_encoder.yaml" in calls[0] and f"--output {encoder}" in calls[0]
    assert "--train-split trainval --val-split val" in calls[0] and "--epochs 500" in calls[0]
    assert "--config configs/camvid_adam.yaml" in calls[1] and f"--init-from {encoder}/last.pt" in calls[1]
    assert f"--output {full}" in calls[1] and "--epochs 1000" in calls[1]


def test_heldout_split_trains_without_0006R0_and_validates_on_it(tmp_path):
    done, calls = run_script(tmp_path, split="heldout")
    assert done.returncode == 0, done.stderr
    assert all("--train-split heldout_train --val-split heldout_val" in call for call in calls)
    assert all("--epochs" not in call for call in calls)   # the configs' schedule unless told
    assert (tmp_path / "runs" / "heldout_adam" / "full" / "summary.json").is_file()


def test_interrupted_stage_one_stops_the_chain_and_is_resumed_next_time(tmp_path):
    done, calls = run_script(tmp_path, INTERRUPT="1")
    assert done.returncode == 0, done.stderr
    assert len(calls) == 1 and "--config configs/camvid_adam_encoder.yaml" in calls[0]
    assert "run this script again to resume" in done.stdout
    done, calls = run_script(tmp_path)
    encoder = tmp_path / "runs" / "trainval_adam" / "encoder"
    assert calls[0] == f"-m fplnet.cli train --resume {encoder} --data-root data/camvid"
    assert "--config configs/camvid_adam.yaml" in calls[1]
    done, calls = run_script(tmp_path)   # both complete: nothing runs
    assert calls == [] and done.stdout.count("skipped") == 2


def stop_during_stage_one(tmp_path: Path, **env) -> tuple[subprocess.CompletedProcess, list[str]]:
    calls = tmp_path / "calls.txt"
    environment = script_environment(tmp_path, "trainval", {"SLEEP": "1", **env})
    script = subprocess.Popen(["bash", str(SCRIPT)], env=environment,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 20
    while not (calls.exists() and calls.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)   # let the stand-in set its trap
    script.send_signal(signal.SIGTERM)
    out, err = script.communicate(timeout=20)
    return subprocess.CompletedProcess(script.args, script.returncode, out, err), calls.read_text().splitlines()


def test_sigterm_reaches_the_trainer_which_saves_and_stage_two_does_not_start(tmp_path):
    done, lines = stop_during_stage_one(tmp_path)
    assert done.returncode == 0, done.stderr
    assert len(lines) == 2 and lines[1] == "saved"          # one stage started, and it saved
    assert (tmp_path / "runs" / "trainval_adam" / "encoder" / "last.pt").is_file()
    assert not (tmp_path / "runs" / "trainval_adam" / "full").exists()
    assert "stopped (exit 130)" in done.stdout


def test_a_stop_as_stage_one_completes_does_not_start_stage_two(tmp_path):
    done, lines = stop_during_stage_one(tmp_path, FINISH_ON_TERM="1")
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "runs" / "trainval_adam" / "encoder" / "summary.json").is_file()
    assert len(lines) == 2 and not (tmp_path / "runs" / "trainval_adam" / "full").exists()
    assert "stopped; run this script again" in done.stdout


def test_a_failing_trainer_is_reported_not_taken_for_a_stop(tmp_path):
    done, calls = run_script(tmp_path, FAIL="1")
    assert done.returncode == 1 and len(calls) == 1
    assert "failed (exit 1)" in done.stderr and "run this script again" not in done.stdout


def test_stage_two_without_stage_one_checkpoint_says_how_to_get_it_back(tmp_path):
    run_script(tmp_path)
    (tmp_path / "runs" / "trainval_adam" / "encoder" / "last.pt").unlink()   # saved without --keep-finished
    for name in ("last.pt", "summary.json"):
        (tmp_path / "runs" / "trainval_adam" / "full" / name).unlink()
    done, calls = run_script(tmp_path)
    assert done.returncode == 2 and calls == []
    assert "encoder/last.pt, which is missing" in done.stderr and "--keep-finished" in done.stderr


def test_unknown_split_is_refused_with_what_to_use(tmp_path):
    done, calls = run_script(tmp_path, split="test")
    assert done.returncode == 2 and calls == []
    assert "SPLIT=test; use trainval or heldout" in done.stderr


@pytest.mark.parametrize("config", ["camvid_adam_encoder.yaml", "camvid_adam.yaml"])
def test_long_run_configs_are_valid_and_use_the_chosen_recipe(config):
    cfg = load_config(str(REPO / "configs" / config), {"data_root": "x"})
    assert (cfg.optimizer, cfg.lr, cfg.weight_decay, cfg.train_split) == ("adam", 0.001, 0.0002, "trainval")


def test_the_progress_report_reads_each_stages_log(tmp_path, capsys):
    """scripts/long_run_report.py: the figures of docs/recipe.md's progress tables, from log.csv."""
    from _helpers import load_script
    header = "epoch,iteration,lr,train_loss,epoch_seconds,img_per_s,val_miou,val_pixel_acc\n"
    full = tmp_path / "heldout_adam" / "full"
    full.mkdir(parents=True)
    (full / "log.csv").write_text(header + "1,45,0.001,0.5,80.0,4.0,,\n2,90,0.001,0.4,40.0,9.0,38.5,80\n"
                                  "3,135,0.001,,0.5,,,\n")       # a resume that ran no step: no loss, no speed
    assert load_script("long_run_report").main([str(tmp_path), "--since", "2"]) == 0
    out = capsys.readouterr().out
    assert "heldout_adam/full: epoch 3\n" in out and "last train loss -" in out
    assert "validations (epoch: mIoU): 2: 38.50" in out
    assert "img/s over epochs 2-3: median 9.00, range 9.00-9.00; epoch seconds median 40.0" in out


def test_the_shipping_script_ships_only_ended_runs_with_the_short_side(tmp_path):
    """scripts/ship_long_run.sh: refuses while a run has not ended; once both have, it ships with
    the held-out sibling and eval_short_side 360, and writes the outputs the README quotes."""
    ship = REPO / "scripts" / "ship_long_run.sh"
    runs = {"RUN": tmp_path / "trainval", "HELDOUT": tmp_path / "heldout"}
    for stage in ("trainval/encoder", "trainval/full", "heldout/full"):
        (tmp_path / stage).mkdir(parents=True)
    env = {**os.environ, "HARDWARE": "test VM", "NOTE": "test", **{k: str(v) for k, v in runs.items()}}
    refused = subprocess.run(["bash", str(ship)], cwd=REPO, env=env, capture_output=True, text=True)
    assert refused.returncode == 2 and "trainval/encoder has not ended" in refused.stderr
    for stage in ("trainval/encoder", "trainval/full", "heldout/full"):
        (tmp_path / stage / "summary.json").write_text("{}")
    planned = subprocess.run(["bash", str(ship)], cwd=REPO, env={**env, "DRY_RUN": "1"}, capture_output=True,
                             text=True)
    assert planned.returncode == 0, planned.stderr
    commands = planned.stdout.splitlines()
    assert commands[0].startswith(f"+ .venv/bin/python scripts/ship_weights.py {runs['RUN']}/full/last.pt")
    assert f"--heldout {runs['HELDOUT']}/full/last.pt --heldout-split heldout_val --eval-short-side 360" in commands[0]
    assert any("--json docs/runs/camvid_val_eval.json --plot docs/images/camvid_val_confusion.png" in c
               for c in commands)
    assert sum("--variant openvino+int8" in c for c in commands) == 2
