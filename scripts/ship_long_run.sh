#!/bin/bash
# Ship the long CamVid run (issue 8, docs/recipe.md "When both runs have ended") and write every
# raw output the README and docs quote for it, at the paths they quote. Run from the repository
# root on an idle machine (the evaluations take minutes on 2 cores; nothing here is timed):
#
#   HARDWARE="..." NOTE="..." bash scripts/ship_long_run.sh            # DRY_RUN=1: print the commands only
#
# What it does, in order, stopping at the first failure:
#   1. refuses unless both runs' full-model stages have ended (summary.json beside last.pt);
#   2. scripts/ship_weights.py: the trainval run's last epoch -> the shipped `camvid` weights, with
#      its val figure, the held-out run's figure on 0006R0 and eval_short_side 360 in the metadata;
#   3. `fplnet evaluate` of the shipped weights on val (table, JSON, confusion plot) and with --tta
#      (the held-out run's own evaluation on 0006R0 is committed: docs/runs/long/heldout_final_*);
#   4. the demo grid (`fplnet demo`) and the training curves of both stages (plot_training.py);
#   5. the mIoU of what is deployed: eager, OpenVINO f32 and INT8 on val and heldout_val.
# Left to the person shipping (they are edits, not outputs): the README and docs tables that quote
# these files, and removing the runs' resumable checkpoints from docs/runs/long (and runs/long, or
# `cpu_queue.sh save` copies them back) once the weights are committed.
set -euo pipefail

DATA=${DATA:-../shared/data/camvid}
PY=${PYTHON:-.venv/bin/python}
RUN=${RUN:-runs/long/trainval_adam}
HELDOUT=${HELDOUT:-runs/long/heldout_adam}
WEIGHTS=${WEIGHTS:-src/fplnet/weights/fplnet_camvid.safetensors}
OUT=${OUT:-docs/runs/long}
: "${HARDWARE:?set HARDWARE, e.g. \"2-core AMD EPYC VM (torch 2.13 CPU, bf16 autocast)\"}"
: "${NOTE:?set NOTE: what the weights trained on, for how long, and which model users should pick}"

run() {  # print the command; run it unless DRY_RUN is set; $1 may be "> FILE" to keep stdout
  local keep=""
  if [[ "$1" == ">" ]]; then keep=$2; shift 2; fi
  echo "+ $*${keep:+ > $keep}"
  [ -n "${DRY_RUN:-}" ] && return 0
  if [ -n "$keep" ]; then "$@" | tee "$keep"; else "$@"; fi
}

for stage in "$RUN/encoder" "$RUN/full" "$HELDOUT/full"; do
  if [ ! -f "$stage/summary.json" ]; then
    echo "ship_long_run: $stage has not ended (no summary.json); resume it first (scripts/cpu_queue.sh run)" >&2
    exit 2
  fi
done

# 2. The weights, with the figures recorded in their metadata.
run ">" "$OUT/ship_weights.txt" "$PY" scripts/ship_weights.py "$RUN/full/last.pt" "$WEIGHTS" \
  --data-root "$DATA" --split val --heldout "$HELDOUT/full/last.pt" --heldout-split heldout_val \
  --eval-short-side 360 --hardware "$HARDWARE" --note "$NOTE"

# 3. What the README's accuracy section quotes.
evaluate=("$PY" -m fplnet.cli evaluate --dataset camvid --data-root "$DATA" --device cpu)
run ">" docs/runs/camvid_val_eval.txt "${evaluate[@]}" --checkpoint camvid --split val \
  --json docs/runs/camvid_val_eval.json --plot docs/images/camvid_val_confusion.png
run ">" "$OUT/trainval_final_val_tta.txt" "${evaluate[@]}" --checkpoint camvid --split val --tta \
  --json "$OUT/trainval_final_val_tta.json"

# 4. The demo grid and the training curves.
run "$PY" -m fplnet.cli demo --output demo_output
run cp demo_output/grid.png docs/images/camvid_demo_grid.png
run "$PY" scripts/plot_training.py "$RUN/encoder/log.csv" "$RUN/full/log.csv" --output docs/images/camvid_training.png

# 5. mIoU of what is deployed (docs/runs/openvino/README.md; INT8 calibrated on the training split).
for split in val heldout_val; do
  for variant in eager openvino openvino+int8; do
    run "${evaluate[@]}" --checkpoint camvid --split "$split" --variant "$variant" \
      --json "docs/runs/openvino/camvid_long_${split}_${variant//+/_}.json"
  done
done
echo "ship_long_run: done; now edit the README and docs tables from these files (see the header)"
