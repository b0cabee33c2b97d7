#!/usr/bin/env bash
# The whole CamVid training of the shipped model, on one GPU, in one go (both stages, two runs).
#
#   DATA=path/to/camvid OUT_DIR=runs bash scripts/train_camvid_gpu.sh
#
# Runs the train-only model (val held out, the figure we report) and the trainval model
# (the standard CamVid protocol, sees val) side by side on the same GPU: FPLNet is small
# enough that one process leaves most of an H100 idle. Each stage has a wall-time budget;
# the trainer measures its step time and sets the epoch count to fit (recorded in config.yaml
# and in every checkpoint), so the poly schedule still runs to zero.
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
DATA=${DATA:-../shared/data/camvid}
OUT_DIR=${OUT_DIR:-runs}
ENCODER_MINUTES=${ENCODER_MINUTES:-2.6}
DECODER_MINUTES=${DECODER_MINUTES:-5.0}
FPLNET="python -m fplnet.cli"

two_stages() {  # $1 = training split, $2 = run name, $3 = validation split
  $FPLNET train --config configs/camvid_encoder.yaml --data-root "$DATA" --train-split "$1" --val-split "$3" \
      --output "$OUT_DIR/$2_encoder" --time-budget-minutes "$ENCODER_MINUTES" --no-tensorboard \
      --save-every-minutes 1
  $FPLNET train --config configs/camvid.yaml --data-root "$DATA" --train-split "$1" --val-split "$3" \
      --init-from "$OUT_DIR/$2_encoder/last.pt" --output "$OUT_DIR/$2" \
      --time-budget-minutes "$DECODER_MINUTES" --no-tensorboard --save-every-minutes 1
}

two_stages train camvid_train val > "$OUT_DIR.train.log" 2>&1 &
first=$!
two_stages trainval camvid_trainval none > "$OUT_DIR.trainval.log" 2>&1 &
second=$!
status=0
wait $first || status=$?
wait $second || status=$?
exit $status
