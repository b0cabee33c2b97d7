#!/usr/bin/env bash
# What test-time augmentation (fplnet.tta, --tta) gains and costs on CamVid; outputs under
# docs/runs/tta/. The mIoU part can run beside other work; the timing part wants a quiet machine.
#
#   HELDOUT=<a checkpoint trained without sequence 0006R0> HELDOUT_NAME=<its name> bash scripts/tta_study.sh [miou] [timing]
set -euo pipefail
cd "$(dirname "$0")/.."
FPLNET=${FPLNET:-.venv/bin/fplnet}
DATA=${DATA:-../shared/data/camvid}
OUT=${OUT:-docs/runs/tta}
mkdir -p "$OUT"
parts=${*:-miou timing}
if [[ " $parts " == *" miou "* ]]; then
  E="$FPLNET evaluate --dataset camvid --data-root $DATA"
  $E --checkpoint "$HELDOUT" --split heldout_val --json "$OUT/${HELDOUT_NAME:-heldout_model}_heldout_val_plain.json"
  $E --checkpoint "$HELDOUT" --split heldout_val --tta --json "$OUT/${HELDOUT_NAME:-heldout_model}_heldout_val_tta.json"
  $E --checkpoint camvid --split val --json "$OUT/camvid_val_plain.json"
  $E --checkpoint camvid --split val --tta --json "$OUT/camvid_val_tta.json"
fi
if [[ " $parts " == *" timing "* ]]; then
  # 20 val frames, eager fp32 both ways; predict prints the median model latency per image.
  frames=("$DATA"/val/*.png)
  frames=("${frames[@]:0:20}")
  rm -rf /tmp/tta_plain /tmp/tta_tta
  $FPLNET predict --checkpoint camvid "${frames[@]}" --output /tmp/tta_plain --no-fast --overlay 0 --quiet
  $FPLNET predict --checkpoint camvid "${frames[@]}" --output /tmp/tta_tta --no-fast --overlay 0 --quiet --tta
fi
