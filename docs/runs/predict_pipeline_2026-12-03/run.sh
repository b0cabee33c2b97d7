#!/usr/bin/env bash
# fplnet predict on CamVid val (101 frames, 480x360) before and after fa3cfd7 (images read ahead
# and written on threads of their own, colorize / blend without temporaries), 2026-12-03.
# Run from the repository root on an idle machine:
#   bash docs/runs/predict_pipeline_2026-12-03/run.sh > docs/runs/predict_pipeline_2026-12-03/runs.txt
# Three arms, in turn, three rounds, for the fast path (`camvid`: OpenVINO f32) and the INT8 IR
# `fplnet export --int8` writes:
#   before     the code of 264fd6e (a git worktree), one image after the other
#   same_nice  fa3cfd7 with the reading and writing threads left at the network's priority
#   after      fa3cfd7 as it is (those threads at nice 10)
# Each line: arm, checkpoint, round, the wall time of the whole command (imports, loading, the
# per-shape compile included), then predict's own summary line.
set -euo pipefail
ir=${IR_DIR:-/tmp/fplnet_exported}
before=${BEFORE_DIR:-/tmp/fplnet_before_fa3cfd7}
py=$PWD/.venv/bin/python
if [ ! -f "$ir/fplnet_camvid_int8.xml" ]; then
    mkdir -p "$ir"
    .venv/bin/fplnet export --checkpoint camvid --format openvino --int8 --calib-data ../shared/data/camvid \
        --output "$ir/fplnet_camvid_int8.xml" --overwrite > /dev/null 2>&1
fi
[ -d "$before" ] || git worktree add -f "$before" 264fd6e > /dev/null 2>&1
out=$(mktemp -d)
arm() {   # arm checkpoint
    local src=$PWD/src patch=""
    [ "$1" = before ] && src=$before/src
    [ "$1" = same_nice ] && patch="import fplnet.engine.predict as p; p._lower_priority = lambda: None; "
    rm -rf "$out/$1"
    PYTHONPATH=$src $py -c "${patch}import sys; from fplnet.cli import main; sys.exit(main(sys.argv[1:]))" \
        predict --checkpoint "$2" ../shared/data/camvid/val --output "$out/$1" --quiet 2>/dev/null | tail -1
}
echo "# $(date -u +%FT%TZ) $(lscpu | grep 'Model name' | sed 's/  */ /g'), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg)"
for ckpt in camvid "$ir/fplnet_camvid_int8.xml"; do
    for round in 1 2 3; do
        for a in before same_nice after; do
            start=$(date +%s.%N)
            summary=$(arm $a "$ckpt")
            end=$(date +%s.%N)
            printf '%s\t%s\t%s\t%.2f s\t%s\n' "$a" "$(basename "$ckpt")" "$round" "$(echo "$end - $start" | bc)" "$summary"
        done
    done
done
# The outputs of the three arms are the same files, byte for byte.
diff -r "$out/before" "$out/after" > /dev/null && echo "before and after wrote identical files"
diff -r "$out/same_nice" "$out/after" > /dev/null && echo "same_nice and after wrote identical files"
rm -rf "$out"
