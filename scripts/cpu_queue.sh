#!/usr/bin/env bash
# The CPU work of issues 8 and 10 as one queue that spans sessions, in the order the compute plan
# sets: the long CamVid runs first, then the ablation tables (VI, the FPL reading check and VIII
# first, then VII, IX, X,
# the activation and the full-model reference). Of the long runs, heldout (trained without
# sequence 0006R0 and scored on it) goes first: its last epoch is the generalization figure the
# project lacks, and the trainval model (all 468 frames, the one that ships) cannot ship without it.
#
#   setsid nohup bash scripts/cpu_queue.sh run >> runs/cpu_queue.out 2>&1 &
#   bash scripts/cpu_queue.sh pause     # SIGTERM; returns once the trainer has saved and stopped
#   bash scripts/cpu_queue.sh save      # before a session ends: small files + resumable checkpoints
#   bash scripts/cpu_queue.sh restore   # committed checkpoints back into runs/ (`run` does it first)
#   bash scripts/cpu_queue.sh status
#
# Every step is resumable and skipped once complete, so `run` always picks up where the queue
# stopped; it first restores what the repository holds (sync_runs.py: never a checkpoint that is
# behind the one in runs/), so a fresh machine, or progress a device brought back, is picked up.
# One queue at a time (a lock, runs/cpu_queue.lock, holding its PID). The long runs resume with a
# compiled step, which `amp: auto` runs in bf16 on a CPU with native bf16 (1.71x a compiled fp32
# step on the 2-core CPU, docs/benchmarks.md). The ablation runs take the recipe's settings:
# `compile: reduce-overhead` (inductor on a CPU, where CUDA graphs do not apply), `amp: auto` (so
# bf16 here too) and a checkpoint every 2 minutes. A table group whose runs fail does not stop
# the queue: the next group runs, and the queue exits non-zero at the end. `save` keeps the
# last.pt of a finished long run (`full`) until its weights are shipped (ship_weights.py,
# docs/recipe.md), and the encoder's until the full stage has its own (sync_runs.py --long-run),
# and drops the checkpoints of finished ablation runs.
#
# The ablation runs go ABLATE_PARALLEL at a time (default 2); `fplnet ablate --parallel` shares
# the queue's OMP_NUM_THREADS (default 2) out among them, one thread each on the 2-core VM, where
# two one-thread runs of the ablation recipe trained 1.25x the images per second of one two-thread
# run (60.9 and 61.2 s per epoch each, against 38.2 s; docs/runs/cpu_2026-11-30/cpu_parallel_runs/).
#
# Env: DATA (default ../shared/data/camvid), RECIPE (the ablation recipe, default
# configs/ablations/camvid_heldout_adam.yaml, the chosen Adam recipe on the held-out protocol),
# OMP_NUM_THREADS (the threads the queue may use), ABLATE_PARALLEL.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1 OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
DATA=${DATA:-../shared/data/camvid}
RECIPE=${RECIPE:-configs/ablations/camvid_heldout_adam.yaml}
ABLATION_RUNS="runs/ablations/$(basename "$RECIPE" .yaml)"
ABLATION_SAVED="docs/runs/ablations/$(basename "$RECIPE" .yaml)"
LONG_SPLITS=(heldout trainval)
# Table VI, then the check of our FPL reading that bears on it (fpl_reading, docs/ablations.md;
# its FPLNet and FPLNet-ESP rows are Table VI's runs), then VIII, then the others. Runs go seed by
# seed within a group, so a group of many tables completes none of them until its end: the small
# ones go in twos (two runs at once), VII first, with the full FPLNet, whose held-out checkpoint
# the deployment issue's INT8 check on an unseen sequence also needs; IX, the largest, last.
TABLE_GROUPS=("vi" "fpl_reading" "viii" "vii reference" "activation x" "ix")
# amp auto: bf16 for a compiled step on a CPU with native bf16, fp32 on one that would emulate it.
LONG_FLAGS="--compile default --amp auto --save-every-minutes 5"
ABLATE_PARALLEL=${ABLATE_PARALLEL:-2}
LOCK=runs/cpu_queue.lock
child=""
stopping=0

say() { echo "[cpu queue] $(date -u +%FT%TZ) $*"; }

# Runs "$@" in the background and waits for it; SIGTERM / Ctrl-C are passed on (the trainers
# save before exiting) and the queue stops after it.
run_step() {
  "$@" &
  child=$!
  [ "$stopping" = 1 ] && kill -TERM "$child" 2>/dev/null
  wait "$child"; local code=$?
  while kill -0 "$child" 2>/dev/null; do wait "$child"; code=$?; done
  child=""
  return "$code"
}

# The ablation run folders of this recipe: one per schedule (`<recipe>-<epochs>ep`).
ablation_folders() { ls -d "$ABLATION_RUNS"-*ep 2>/dev/null; }

run_queue() {
  mkdir -p runs
  exec 9>>"$LOCK"
  if ! flock -n 9; then say "another queue is running (PID $(cat "$LOCK" 2>/dev/null)); not starting"; exit 2; fi
  echo $$ > "$LOCK"
  trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; stopping=1' TERM INT
  local split tables args code failed=0
  restore_all
  for split in "${LONG_SPLITS[@]}"; do
    [ -f "runs/long/${split}_adam/full/summary.json" ] && continue
    say "long run $split"
    SPLIT=$split DATA=$DATA EXTRA=$LONG_FLAGS run_step bash scripts/camvid_long_run.sh
    code=$?
    [ -f "runs/long/${split}_adam/full/summary.json" ] && continue
    # Asked to stop, the child's status is that of the interrupted `wait` (143) or its own (0).
    if [ "$stopping" = 1 ] || [ "$code" = 0 ]; then say "stopped in the long $split run"; exit 0; fi
    say "long $split run failed (exit $code)"; exit "$code"
  done
  for tables in "${TABLE_GROUPS[@]}"; do
    args=()
    for table in $tables; do args+=(--table "$table"); done
    say "ablation tables $tables"
    run_step "$PYTHON" -m fplnet.cli ablate "${args[@]}" --recipe "$RECIPE" \
      --device cpu --data-root "$DATA" --parallel "$ABLATE_PARALLEL" \
      --doc docs/ablations.md --json docs/runs/ablations/results.json
    code=$?
    if [ "$stopping" = 1 ] || [ "$code" = 130 ]; then say "stopped in tables $tables"; exit 0; fi
    # A failed run (its log under the run folder) must not keep the other tables from training.
    [ "$code" = 0 ] || { say "tables $tables: some runs failed (exit $code); going on"; failed=$code; }
  done
  [ "$failed" = 0 ] || { say "queue ended with failed runs; see the logs above"; exit "$failed"; }
  say "queue complete"
}

save_all() {
  local split folder
  for split in "${LONG_SPLITS[@]}"; do
    [ -d "runs/long/${split}_adam" ] || continue
    "$PYTHON" scripts/sync_runs.py save --long-run "runs/long/${split}_adam" "docs/runs/long/${split}_adam"
  done
  for folder in $(ablation_folders); do
    "$PYTHON" scripts/sync_runs.py save "$folder" "docs/runs/ablations/$(basename "$folder")"
  done
}

restore_all() {
  local split saved
  for split in "${LONG_SPLITS[@]}"; do
    [ -d "docs/runs/long/${split}_adam" ] || continue
    "$PYTHON" scripts/sync_runs.py restore "docs/runs/long/${split}_adam" "runs/long/${split}_adam"
  done
  for saved in $(ls -d "$ABLATION_SAVED"-*ep 2>/dev/null); do
    "$PYTHON" scripts/sync_runs.py restore "$saved" "runs/ablations/$(basename "$saved")"
  done
}

# SIGTERM to the queue, then wait until it has exited: its trainer saves last.pt first.
pause_queue() {
  if [ ! -f "$LOCK" ] || flock -n "$LOCK" true; then say "no queue running"; return 0; fi
  local pid
  pid=$(cat "$LOCK")
  # The lock outlives a queue killed with SIGKILL while its trainer runs: signal only a live queue.
  if grep -q "cpu_queue.sh" "/proc/$pid/cmdline" 2>/dev/null; then
    kill -TERM "$pid" && say "asked the queue (PID $pid) to stop; waiting for its trainer to save"
  else
    say "the queue is gone but a process it started still holds $LOCK; stop that trainer (SIGTERM) to save it"
    return 1
  fi
  # The lock is held until the queue and the trainer it started (which inherit it) have exited.
  while ! flock -n "$LOCK" true; do sleep 2; done
  say "the queue has stopped"
}

status() {
  local split stage
  for split in "${LONG_SPLITS[@]}"; do
    for stage in encoder full; do
      local log="runs/long/${split}_adam/$stage/log.csv"
      if [ -f "runs/long/${split}_adam/$stage/summary.json" ]; then echo "long $split $stage: complete"
      elif [ -f "$log" ]; then echo "long $split $stage: epoch $(tail -1 "$log" | cut -d, -f1)"
      else echo "long $split $stage: not started"; fi
    done
  done
  local folder
  for folder in $(ablation_folders); do
    echo "ablations $(basename "$folder"): $(ls "$folder"/*/summary.json 2>/dev/null | wc -l) run(s) complete"
  done
  if [ -f "$LOCK" ] && ! flock -n "$LOCK" true; then echo "queue: running (PID $(cat "$LOCK"))"
  else echo "queue: not running"; fi
}

case "${1:-}" in
  run) run_queue ;;
  pause) pause_queue ;;
  save) save_all ;;
  restore) restore_all ;;
  status) status ;;
  *) echo "usage: bash scripts/cpu_queue.sh run|pause|save|restore|status" >&2; exit 2 ;;
esac
