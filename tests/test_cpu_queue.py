"""scripts/cpu_queue.sh, the CPU work that spans sessions: the long runs in order (heldout, then
trainval), then the ablation tables; a complete step is skipped, SIGTERM stops the queue inside
its current step and nothing after it starts. Stand-ins play camvid_long_run.sh and `fplnet
ablate`."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Records its call; finishes its split at once unless $HOLD names it, in which case it trains
# until SIGTERM and stops without finishing, as the real script does.
FAKE_LONG_RUN = """#!/usr/bin/env bash
echo "long $SPLIT $EXTRA" >> "$CALLS"
if [ "$SPLIT" = "${HOLD:-}" ]; then
  trap 'echo stopped >> "$CALLS"; kill $sleeper; exit 0' TERM
  sleep 60 & sleeper=$!; wait
  exit 0
fi
mkdir -p runs/long/${SPLIT}_adam/full
echo '{}' > runs/long/${SPLIT}_adam/full/summary.json
"""

FAKE_PYTHON = """#!/usr/bin/env bash
echo "python $* threads=${OMP_NUM_THREADS:-}" >> "$CALLS"
# $FAIL names a table whose runs fail, as `fplnet ablate` exits 1 when a run failed.
if [ -n "${FAIL:-}" ]; then case "$*" in *"--table $FAIL "*) exit 1;; esac; fi
exit 0
"""


@pytest.fixture
def queue(tmp_path):
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "cpu_queue.sh", repo / "scripts" / "cpu_queue.sh")
    (repo / "scripts" / "camvid_long_run.sh").write_text(FAKE_LONG_RUN)
    python = tmp_path / "python"
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    env = {**os.environ, "PYTHON": str(python), "CALLS": str(tmp_path / "calls")}
    for name in ("OMP_NUM_THREADS", "ABLATE_PARALLEL"):   # the queue's own defaults apply
        env.pop(name, None)
    return repo, env, tmp_path / "calls"


def calls(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def test_long_runs_in_order_then_the_ablation_tables(queue):
    repo, env, log = queue
    subprocess.run(["bash", "scripts/cpu_queue.sh", "run"], cwd=repo, env=env, check=True, timeout=60)
    lines = calls(log)
    assert [line.split()[:2] for line in lines[:2]] == [["long", "heldout"], ["long", "trainval"]]
    assert "--compile default --amp auto" in lines[0]
    ablate = [line for line in lines if " ablate " in line]
    assert len(ablate) == 6 and len(lines) == 8
    assert [line.split(" --recipe")[0].split(" ablate ")[1] for line in ablate] == [
        "--table vi", "--table fpl_reading", "--table viii", "--table vii --table reference",
        "--table activation --table x", "--table ix"]
    assert all("--recipe configs/ablations/camvid_heldout_adam.yaml --device cpu" in line for line in ablate)
    # Two runs at once (`fplnet ablate` shares the queue's threads out between them).
    assert all(" --parallel 2 " in line and line.endswith(" threads=2") for line in ablate)


def test_a_failed_table_group_does_not_keep_the_next_from_running(queue):
    repo, env, log = queue
    result = subprocess.run(["bash", "scripts/cpu_queue.sh", "run"], cwd=repo, env={**env, "FAIL": "viii"},
                            capture_output=True, text=True, timeout=60)
    ablate = [line for line in calls(log) if " ablate " in line]
    assert len(ablate) == 6 and "--table vii" in ablate[3]     # the next group still ran
    assert result.returncode == 1 and "some runs failed" in result.stdout and "queue complete" not in result.stdout


def test_a_complete_long_run_is_skipped(queue):
    repo, env, log = queue
    (repo / "runs/long/heldout_adam/full").mkdir(parents=True)
    (repo / "runs/long/heldout_adam/full/summary.json").write_text("{}")
    subprocess.run(["bash", "scripts/cpu_queue.sh", "run"], cwd=repo, env=env, check=True, timeout=60)
    assert calls(log)[0].startswith("long trainval")
    assert sum("long heldout" in line for line in calls(log)) == 0


def test_sigterm_stops_the_queue_inside_its_step_and_starts_nothing_after(queue):
    repo, env, log = queue
    process = subprocess.Popen(["bash", "scripts/cpu_queue.sh", "run"], cwd=repo, env={**env, "HOLD": "heldout"},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while not calls(log) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)                      # the stand-in has set its trap
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    assert process.returncode == 0, output
    assert calls(log) == [calls(log)[0], "stopped"] and calls(log)[0].startswith("long heldout")
    assert "stopped in the long heldout run" in output


def test_pause_returns_once_the_queue_has_stopped_and_one_queue_runs_at_a_time(queue):
    repo, env, log = queue
    env = {**env, "HOLD": "heldout"}
    process = subprocess.Popen(["bash", "scripts/cpu_queue.sh", "run"], cwd=repo, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 30
    while not calls(log) and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(0.5)
    second = subprocess.run(["bash", "scripts/cpu_queue.sh", "run"], cwd=repo, env=env, capture_output=True,
                            text=True, timeout=30)
    assert second.returncode == 2 and "another queue is running" in second.stdout
    assert "queue: running" in subprocess.run(["bash", "scripts/cpu_queue.sh", "status"], cwd=repo, env=env,
                                              capture_output=True, text=True, timeout=30).stdout
    paused = subprocess.run(["bash", "scripts/cpu_queue.sh", "pause"], cwd=repo, env=env, capture_output=True,
                            text=True, timeout=60)
    assert "the queue has stopped" in paused.stdout and calls(log)[-1] == "stopped"   # saved before pause returned
    process.communicate(timeout=10)
    assert process.returncode == 0
