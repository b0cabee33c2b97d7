#!/usr/bin/env bash
# The long CamVid training of issue 8, both stages, resumable across sessions and machines.
#
#   SPLIT=trainval bash scripts/camvid_long_run.sh     # the model that ships (all 468 frames)
#   SPLIT=heldout  bash scripts/camvid_long_run.sh     # same recipe without 0006R0, scored on it
#
# Stage 1 is configs/camvid_adam_encoder.yaml, stage 2 configs/camvid_adam.yaml (initialised from
# stage 1's last epoch). Call it again at any time: a finished stage (summary.json) is skipped,
# an interrupted one (last.pt) is resumed with its own settings, a missing one is started.
# SIGTERM or Ctrl-C to this script is passed to the training process, which finishes its step,
# saves last.pt and exits; stage 2 never starts before stage 1 is complete. The trainer's output
# goes to <stage folder>.log, where scripts/sync_runs.py looks for it.
#
# Env: DATA (default ../shared/data/camvid), RUNS (default runs/long); relative paths are taken
# from the repository root. EPOCHS1 / EPOCHS2 (default: the configs', half the paper's schedule; a
# GPU session passes 500 / 1000) apply to a fresh stage only. EXTRA: run-time flags for every start
# and resume, e.g. "--save-every-minutes 2"; the run keeps them, so leave device and amp to
# `auto` (cuda + bf16 on a GPU; on this CPU bf16 when compiled) if a stage may move between machines.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
PYTHON=${PYTHON:-$( [ -x .venv/bin/python ] && echo .venv/bin/python || echo python3 )}
DATA=${DATA:-../shared/data/camvid}
RUNS=${RUNS:-runs/long}
SPLIT=${SPLIT:-trainval}
read -ra extra <<< "${EXTRA:-}"
case "$SPLIT" in
  trainval) splits=(--train-split trainval --val-split val) ;;
  heldout)  splits=(--train-split heldout_train --val-split heldout_val) ;;
  *) echo "camvid_long_run.sh: SPLIT=$SPLIT; use trainval or heldout" >&2; exit 2 ;;
esac
folder="$RUNS/${SPLIT}_adam"
child=""
stopping=0
trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; stopping=1' TERM INT

stop_if_asked() {
  if [ "$stopping" = 1 ]; then echo "[long run] $(date -u +%FT%TZ) stopped; run this script again to resume"; exit 0; fi
}

stage() {  # $1 = stage folder, $2 = config, $3 = epochs override (may be empty), rest = more flags
  local out=$1 config=$2 epochs=$3; shift 3
  stop_if_asked
  if [ -f "$out/summary.json" ]; then echo "[long run] $out complete; skipped"; return 0; fi
  local command
  if [ -f "$out/last.pt" ]; then
    command=(-m fplnet.cli train --resume "$out" --data-root "$DATA" "${extra[@]}")
  else
    command=(-m fplnet.cli train --config "$config" --data-root "$DATA" "${splits[@]}" --output "$out"
             --overwrite ${epochs:+--epochs "$epochs"} "$@" "${extra[@]}")
  fi
  mkdir -p "$folder"
  echo "[long run] $(date -u +%FT%TZ) $PYTHON ${command[*]} >> $out.log"
  "$PYTHON" "${command[@]}" >> "$out.log" 2>&1 &
  child=$!
  [ "$stopping" = 1 ] && kill -TERM "$child" 2>/dev/null   # a signal that came before child was set
  wait "$child"; local code=$?
  # A signal interrupts `wait`, not the child: wait again until it has saved and exited.
  while kill -0 "$child" 2>/dev/null; do wait "$child"; code=$?; done
  child=""
  if [ -f "$out/summary.json" ]; then stop_if_asked; return 0; fi
  if [ "$stopping" = 1 ] || [ "$code" = 0 ] || [ "$code" = 130 ]; then
    echo "[long run] $(date -u +%FT%TZ) $out stopped (exit $code); run this script again to resume"
    exit 0
  fi
  echo "[long run] $(date -u +%FT%TZ) $out failed (exit $code); see $out.log" >&2
  exit "$code"
}

stage "$folder/encoder" configs/camvid_adam_encoder.yaml "${EPOCHS1:-}"
if [ ! -f "$folder/full/last.pt" ] && [ ! -f "$folder/encoder/last.pt" ]; then
  echo "[long run] stage 2 starts from $folder/encoder/last.pt, which is missing; restore it" \
       "(scripts/sync_runs.py restore; save with --keep-finished keeps it)" >&2
  exit 2
fi
stage "$folder/full" configs/camvid_adam.yaml "${EPOCHS2:-}" --init-from "$folder/encoder/last.pt"
echo "[long run] $(date -u +%FT%TZ) both stages of $folder complete"
