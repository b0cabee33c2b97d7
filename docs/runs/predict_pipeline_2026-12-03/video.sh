#!/usr/bin/env bash
# fplnet predict on a 1920x1080 H.264 clip (the first 60 CamVid val frames scaled to 1920x1080,
# as a dash cam records), before and after a change to predict, 2026-12-03. From the
# repository root on an idle machine:
#   bash docs/runs/predict_pipeline_2026-12-03/video.sh BEFORE_COMMIT LABEL > docs/runs/predict_pipeline_2026-12-03/video_LABEL.txt
# Arms in turn, three rounds, the INT8 IR that `fplnet export --int8` writes (network at 640x360,
# the shipped weights' short side 360), overlay video out (the default):
#   before   the code of BEFORE_COMMIT (a git worktree)
#   after    the working tree
# Each line: arm, round, wall time of the command, predict's summary line, the output's size.
set -euo pipefail
commit=$1 label=$2
ir=${IR_DIR:-/tmp/fplnet_exported}
before=/tmp/fplnet_before_$label
clip=/tmp/fplnet_clip_1080p.mp4
py=$PWD/.venv/bin/python
if [ ! -f "$ir/fplnet_camvid_int8.xml" ]; then
    mkdir -p "$ir"
    .venv/bin/fplnet export --checkpoint camvid --format openvino --int8 --calib-data ../shared/data/camvid \
        --output "$ir/fplnet_camvid_int8.xml" --overwrite > /dev/null 2>&1
fi
[ -d "$before" ] || git worktree add -f "$before" "$commit" > /dev/null 2>&1
if [ ! -f "$clip" ]; then
    PYTHONPATH=$PWD/tests $py -c "
from pathlib import Path
import numpy as np
from PIL import Image
from _helpers import write_video
files = sorted(Path('../shared/data/camvid/val').glob('*.png'))[:60]
write_video(Path('$clip'), [np.asarray(Image.open(f).convert('RGB').resize((1920, 1080), Image.BILINEAR)) for f in files])"
fi
out=$(mktemp -d)
echo "# $(date -u +%FT%TZ) $(lscpu | grep 'Model name' | sed 's/  */ /g'), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg); before = $commit"
for round in 1 2 3; do
    for arm in before after; do
        src=$PWD/src; [ $arm = before ] && src=$before/src
        rm -rf "$out/$arm"
        start=$(date +%s.%N)
        summary=$(PYTHONPATH=$src $py -m fplnet.cli predict --checkpoint "$ir/fplnet_camvid_int8.xml" "$clip" \
            --output "$out/$arm" --quiet 2>/dev/null | tail -1)
        end=$(date +%s.%N)
        printf '%s\t%s\t%.2f s\t%s\t%s bytes\n' "$arm" "$round" "$(echo "$end - $start" | bc)" "$summary" \
            "$(stat -c %s "$out/$arm"/*.mp4)"
    done
done
rm -rf "$out"
