#!/usr/bin/env bash
# The deployed files timed beside the variants of the checkpoint they were exported from
# (fplnet benchmark --exported), 2026-12-03. Run from the repository root on an idle machine:
#   bash docs/runs/exported_2026-12-03/run.sh
# The IR pair goes to /tmp (not committed: `fplnet export` rewrites it in minutes).
set -euo pipefail
out=docs/runs/exported_2026-12-03
ir=${IR_DIR:-/tmp/fplnet_exported}
mkdir -p "$ir"
fplnet() { .venv/bin/fplnet "$@"; }
fplnet export --checkpoint camvid --format openvino --output "$ir/fplnet_camvid.xml" --overwrite \
    > "$out/export_f32.txt" 2>&1
fplnet export --checkpoint camvid --format openvino --int8 --calib-data ../shared/data/camvid \
    --output "$ir/fplnet_camvid_int8.xml" --overwrite 2>&1 | grep -v 'INFO\|━\|PRelu$\|^$' > "$out/export_int8.txt"
for size in 512x1024 360x480; do
    fplnet benchmark --checkpoint camvid --size $size --variants eager,openvino,openvino+int8 \
        --calib-data ../shared/data/camvid --exported "$ir/fplnet_camvid.xml" "$ir/fplnet_camvid_int8.xml" \
        --agreement-images ../shared/data/camvid/val --agreement-count 6 --warmup 5 --iters 30 \
        --json "$out/benchmark_$size.json" --markdown "$out/benchmark_$size.md" 2>&1 \
        | grep -v 'INFO\|━\|PRelu$\|^$' > "$out/benchmark_$size.txt"
done
