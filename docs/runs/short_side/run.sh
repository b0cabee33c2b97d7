#!/bin/bash
# What the network's input scale does to a CamVid model: the held-out run's model (never saw
# sequence 0006R0) on all 101 frames of 0006R0, run at the training scale (360x480), at twice it
# (720x960: what a CamVid-resolution original, or any larger image, gives when run at its own size)
# and at three times it (1080x1440, a 1080p frame's height); and squeezed to 360x360, the
# horizontal squeeze (x0.75) a 16:9 frame gets when it is run at a fixed 360x480. Labels stay
# 360x480; logits are resized to them. The training scale's figure (44.05) is
# docs/runs/long/heldout_final_heldout_val.json. Run from the repository root; writes beside this
# script.
set -euo pipefail
out=docs/runs/short_side
for size in ${SIZES:-720x960 1080x1440 360x360}; do
  .venv/bin/fplnet evaluate --checkpoint docs/runs/long/heldout_adam/full/last.pt --dataset camvid \
    --data-root ../shared/data/camvid --split heldout_val --device cpu --batch-size 1 --eval-size "$size" \
    --json "$out/heldout_val_at_$size.json" | tee "$out/heldout_val_at_$size.txt"
done
