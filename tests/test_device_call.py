"""scripts/device_call.sh long: the GPU call that continues the long CamVid runs. Both splits run
side by side until the deadline, a stage that fails with CUDA graphs is retried with plain
compile, and each split comes back as one archive. A stand-in plays scripts/camvid_long_run.sh."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

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


def test_long_runs_both_splits_retries_without_cuda_graphs_and_packs_each(tmp_path):
    repo = tmp_path / "repo"   # a copy: the script works in its own checkout's runs/ and docs/
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
    bin_dir = tmp_path / "bin"   # `python3` in the script is this interpreter (fplnet importable)
    bin_dir.mkdir()
    (bin_dir / "python3").write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    (bin_dir / "python3").chmod(0o755)
    out, calls = tmp_path / "out", tmp_path / "calls"
    out.mkdir()
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "OUT": str(out), "CALLS": str(calls),
           "CAMVID_DIR": str(camvid), "LONG_SAVE": str(tmp_path / "save"), "LONG_RUNNER": str(runner),
           "LONG_KILL_AFTER": "2", "LONG_COMPILE_SECONDS": "1", "FAIL_SPLIT": "trainval"}
    result = subprocess.run(["bash", str(repo / "scripts" / "device_call.sh"), "long", "9", "trainval,heldout,trainval"],
                            env=env, capture_output=True, text=True, timeout=60)
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
