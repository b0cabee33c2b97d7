"""scripts/device_call.sh, the GPU calls that train to a deadline. `long` continues the long
CamVid runs: both splits side by side, a stage that fails with CUDA graphs retried with plain
compile, each split back as one archive. `sweep` runs a sweep and returns its runs in parts small
enough to come back. Stand-ins play camvid_long_run.sh and `fplnet sweep`."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Records its call; writes a stage folder as the trainer would; fails at once under CUDA graphs
# when $FAIL_SPLIT names its split, else trains until SIGTERM and stops cleanly (exit 0).
FAKE_RUNNER = """#!/usr/bin/env bash
echo "$SPLIT $EXTRA" >> "$CALLS"
out=runs/long/${SPLIT}_adam/encoder
mkdir -p "$out"
printf 'model: fplnet_encoder\\n' > "$out/config.yaml"; printf 'epoch\\n1\\n' > "$out/log.csv"
echo "training $SPLIT" >> "$out.log"
case "$EXTRA" in *reduce-overhead*) [ "$SPLIT" = "${FAIL_SPLIT:-}" ] && { echo "Error: graph capture" >> "$out.log"; exit 1; } ;; esac
trap 'exit 0' TERM
sleep 60 & wait
"""


# The sweep runner's part: `python3 -m fplnet.cli sweep CONFIG ...` writes one unfinished run
# whose last.pt is 20 MB of noise (more than one returned file may hold) and waits for SIGTERM;
# every other python3 call is the real interpreter.
FAKE_PYTHON = """#!/usr/bin/env bash
if [ "$1 $2 $3" = "-m fplnet.cli sweep" ]; then
  echo "$*" >> "$CALLS"
  run=runs/sweeps/tiny/a__seed0
  mkdir -p "$run"
  printf 'model: fplnet_encoder\\n' > "$run/config.yaml"; printf 'epoch\\n1\\n' > "$run/log.csv"
  "$REAL_PYTHON" -c "import torch; from fplnet.checkpoint import FORMAT; torch.save({'format': FORMAT, \\
'state_dict': {'noise': torch.rand(5_000_000)}, 'epoch': 1, 'step': 3}, '$run/last.pt')"
  trap 'exit 0' TERM
  sleep 60 & wait
  exit 0
fi
case "$1 $2 $3" in
  "-m fplnet.cli benchmark") echo "$*" >> "$CALLS"; exit 0 ;;   # the speed calls: recorded, not run
  "-m pip install") exit 0 ;;
esac
exec "$REAL_PYTHON" "$@"
"""


@pytest.fixture
def device(tmp_path):
    """A copy of the scripts (the call works in its own checkout), 468 stand-in frames, $OUT, and
    the environment that points the script at them."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    for name in ("device_call.sh", "sync_runs.py"):
        shutil.copy(REPO / "scripts" / name, repo / "scripts" / name)
    runner = repo / "scripts" / "fake_runner.sh"
    runner.write_text(FAKE_RUNNER)
    camvid = tmp_path / "camvid"
    for split, count in (("train", 367), ("val", 101)):
        (camvid / split).mkdir(parents=True)
        for i in range(count):
            (camvid / split / f"{i}.png").touch()
    bin_dir = tmp_path / "bin"   # `python3` in the script: the interpreter running the tests
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(FAKE_PYTHON)
    (bin_dir / "python3").chmod(0o755)
    out = tmp_path / "out"
    out.mkdir()
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "OUT": str(out), "CALLS": str(tmp_path / "calls"),
           "REAL_PYTHON": sys.executable, "CAMVID_DIR": str(camvid), "LONG_SAVE": str(tmp_path / "save"),
           "LONG_RUNNER": str(runner), "LONG_KILL_AFTER": "2", "LONG_COMPILE_SECONDS": "1"}
    return repo, env, out, tmp_path / "calls"


def call(device, *args):
    repo, env, _, _ = device
    return subprocess.run(["bash", str(repo / "scripts" / "device_call.sh"), *args], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=60)


def test_long_runs_both_splits_retries_without_cuda_graphs_and_packs_each(device):
    _, env, out, calls = device
    env["FAIL_SPLIT"] = "trainval"
    result = call(device, "long", "9", "trainval,heldout,trainval")
    assert result.returncode == 0, result.stdout + result.stderr
    text = result.stdout
    assert "frames: train 367 val 101" in text
    assert "LONG trainval compile=reduce-overhead rc=1" in text and "LONG trainval compile=default rc=124" in text
    assert "LONG heldout compile=reduce-overhead rc=124" in text
    assert "LONG trainval PACKED" in text and "LONG heldout PACKED" in text
    assert sorted(calls.read_text().splitlines()) == [
        "heldout --save-every-minutes 2 --compile reduce-overhead",
        "trainval --save-every-minutes 2 --compile default",
        "trainval --save-every-minutes 2 --compile reduce-overhead"]   # trainval once, though named twice
    for split in ("trainval", "heldout"):
        with tarfile.open(out / f"long_{split}.tar.gz") as archive:
            names = set(archive.getnames())
        assert {f"{split}_adam/encoder/config.yaml", f"{split}_adam/encoder/runner.log"} <= names


def test_sweep_runs_to_the_deadline_and_returns_its_runs_in_parts(device, tmp_path):
    repo, _, out, calls = device
    (repo / "sweep.yaml").write_text("name: tiny\noutput: runs/sweeps/tiny\n")
    result = call(device, "sweep", "6", "sweep.yaml", "3")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SWEEP rc=124" in result.stdout
    assert calls.read_text().split()[3:] == ["sweep.yaml", "--parallel", "3", "--device", "cuda", "--data-root",
                                            str(tmp_path / "camvid"), "--json", str(out / "sweep_tiny.json")]
    parts = sorted(out.glob("sweep_tiny.tgz.part-*"))
    assert len(parts) == 2 and all(p.stat().st_size <= 15 * 2**20 for p in parts)
    joined = tmp_path / "joined.tgz"
    joined.write_bytes(b"".join(p.read_bytes() for p in parts))
    with tarfile.open(joined) as archive:
        assert {"tiny/a__seed0/last.pt", "tiny/a__seed0/config.yaml"} <= set(archive.getnames())


def test_speed_times_the_training_step_the_compiled_graphs_and_the_five_models(device):
    _, _, out, calls = device
    result = call(device, "speed")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = calls.read_text().splitlines()
    assert len(lines) == 6 and all(line.startswith("-m fplnet.cli benchmark") for line in lines)
    assert ["--batch-size 8" in lines[0], "--batch-size 32" in lines[1]] == [True, True]
    assert "--mode train" in lines[0] and "cuda_graphs+channels_last+bf16" in lines[0]
    assert "fold_bn+channels_last+bf16+compile+cuda_graphs" in lines[2]
    assert [f"inference_b{b}.json" in line for b, line in zip((1, 8, 32), lines[3:])] == [True] * 3
