#!/usr/bin/env bash
# The CPU speed study of docs/benchmarks.md in one go, on a quiet machine (nothing else running:
# the script refuses to start above a 1-minute load average of 1.0). Every table it feeds is
# written as raw JSON and Markdown under $OUT_DIR.
#
#   OUT_DIR=docs/runs/cpu_2026-11-29 bash scripts/cpu_speed_study.sh
#   PARTS="5 6" OUT_DIR=... bash scripts/cpu_speed_study.sh     # only some of the numbered parts
#
# Part 12 also reads SIZES (default "512x1024 360x480"), WARMUP (5), ITERS (20) and CALIB_SIZE (60),
# so that it can be tried end to end at a tiny size before a real run.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT_DIR=${OUT_DIR:-docs/runs/cpu_$(date +%Y-%m-%d)}
FPLNET=${FPLNET:-.venv/bin/fplnet}
DATA=${DATA:-../shared/data/camvid}
MODELS=fplnet,espnet,enet,erfnet,cgnet
# The compiled torch path, named in full: `fast` on a CPU is OpenVINO f32 where OpenVINO is installed
# (fplnet.fast.CPU_FAST), and a run that also lists `openvino` would time it twice (refused).
TORCH_FAST=keep_memory+fold_bn+channels_last+compile+freeze
mkdir -p "$OUT_DIR"
load=$(cut -d' ' -f1 /proc/loadavg)
if [ "${FORCE:-0}" != 1 ] && awk "BEGIN{exit !($load > 1.0)}"; then
  echo "cpu_speed_study: load average $load; stop other work first (FORCE=1 to run anyway)" >&2; exit 2
fi
run() { echo "== $*" >&2; "$FPLNET" benchmark "$@"; }
PARTS=${PARTS:-1 2 3 4 5 6 7 8 9 10 11 12 13}
want() { [[ " $PARTS " == *" $1 "* ]]; }

# 1. Plain eager, default allocator: the reference every speed-up is measured against.
if want 1; then
run --models $MODELS --size 512x1024 --batch-size 1 --device cpu --warmup 5 --iters 20 \
  --json "$OUT_DIR/models_eager_512x1024.json" --markdown "$OUT_DIR/models_eager_512x1024.md"
fi
# All five models as one deploys them, side by side in one process (all with the allocator
# switch; untrained networks: INT8 is a speed figure only, calibrated on 60 CamVid train frames).
deploy_models() {  # $1 = HEIGHTxWIDTH
run --models $MODELS --size "$1" --batch-size 1 --device cpu --warmup 5 --iters 20 \
  --variants keep_memory,$TORCH_FAST,keep_memory+onnxruntime,keep_memory+openvino,keep_memory+openvino+int8 \
  --calib-data "$DATA/train" --calib-size 60 \
  --json "$OUT_DIR/models_deploy_$1.json" --markdown "$OUT_DIR/models_deploy_$1.md"
}
# 2. What one deploys at 512x1024.
if want 2; then
deploy_models 512x1024
fi
# 3. The shipped CamVid FPLNet at CamVid's size, with argmax agreement against eager fp32.
if want 3; then
run --checkpoint camvid --size 360x480 --batch-size 1 --device cpu --warmup 5 --iters 20 \
  --variants keep_memory,$TORCH_FAST,keep_memory+openvino,keep_memory+openvino+int8 \
  --calib-data "$DATA" --calib-size 300 --agreement-images "$DATA/val" --agreement-count 6 \
  --json "$OUT_DIR/fplnet_camvid_deploy_360x480.json" --markdown "$OUT_DIR/fplnet_camvid_deploy_360x480.md"
fi
# 4. The CPU training step: what the trainer can switch on (compile, bf16) on top of its default.
if want 4; then
run --models fplnet_encoder,fplnet --mode train --size 360x480 --batch-size 8 --device cpu --warmup 2 --iters 6 \
  --variants keep_memory+channels_last,keep_memory+channels_last+compile,keep_memory+channels_last+bf16 \
  --num-classes 11 \
  --json "$OUT_DIR/train_step_360x480.json" --markdown "$OUT_DIR/train_step_360x480.md"
fi
# 5. Which torch variant of the shipped FPLNet is the CPU fast path without OpenVINO
#    (fplnet.fast.CPU_FAST_TORCH; the fast path itself is OpenVINO f32, parts 9 and 12), with
#    argmax agreement: every candidate, once with the default allocator and once with freed
#    memory kept (a process-wide switch, hence two runs).
if want 5; then
run --checkpoint camvid --size 512x1024 --batch-size 1 --device cpu --warmup 3 --iters 20 \
  --variants eager,channels_last,fold_bn+shuffle_deconv,bf16,channels_last+bf16,torchscript,onnxruntime,channels_last+compile,fold_bn+channels_last+compile+freeze,fold_bn+channels_last+bf16+compile+freeze \
  --agreement-images "$DATA/val" --agreement-count 6 \
  --json "$OUT_DIR/fplnet_variants_default_allocator.json" --markdown "$OUT_DIR/fplnet_variants_default_allocator.md"
run --checkpoint camvid --size 512x1024 --batch-size 1 --device cpu --warmup 3 --iters 20 \
  --variants keep_memory,keep_memory+channels_last,keep_memory+channels_last+bf16,keep_memory+fold_bn+channels_last+compile+freeze,keep_memory+fold_bn+channels_last+bf16+compile+freeze \
  --agreement-images "$DATA/val" --agreement-count 6 \
  --json "$OUT_DIR/fplnet_variants_keep_memory.json" --markdown "$OUT_DIR/fplnet_variants_keep_memory.md"
fi
# 6. The CPU training step against plain fp32 NCHW: layout and precision, with and without the
#    allocator switch.
if want 6; then
run --models fplnet --mode train --size 360x480 --batch-size 8 --device cpu --warmup 2 --iters 6 --num-classes 11 \
  --variants eager,channels_last,bf16,channels_last+bf16 \
  --json "$OUT_DIR/train_step_default_allocator.json" --markdown "$OUT_DIR/train_step_default_allocator.md"
run --models fplnet --mode train --size 360x480 --batch-size 8 --device cpu --warmup 2 --iters 6 --num-classes 11 \
  --variants keep_memory,keep_memory+channels_last,keep_memory+bf16,keep_memory+channels_last+bf16 \
  --json "$OUT_DIR/train_step_keep_memory.json" --markdown "$OUT_DIR/train_step_keep_memory.md"
fi
# 7. The shipped CamVid FPLNet at 512x1024 as deployed (the size of the INT8 goal of issue 9), with
#    argmax agreement against eager fp32.
if want 7; then
run --checkpoint camvid --size 512x1024 --batch-size 1 --device cpu --warmup 5 --iters 20 \
  --variants keep_memory,$TORCH_FAST,keep_memory+openvino,keep_memory+openvino+int8 \
  --calib-data "$DATA" --calib-size 300 --agreement-images "$DATA/val" --agreement-count 6 \
  --json "$OUT_DIR/fplnet_camvid_deploy_512x1024.json" --markdown "$OUT_DIR/fplnet_camvid_deploy_512x1024.md"
fi
# 8. OpenVINO alone in its process. OpenVINO runs on its own thread pool; right after a torch call,
#    torch's OpenMP threads still spin on the 2 cores, so in a process that also times torch entries
#    the OpenVINO rows come out slower (and with OMP_WAIT_POLICY=PASSIVE the torch rows do).
if want 8; then
run --models $MODELS --size 512x1024 --batch-size 1 --device cpu --warmup 5 --iters 20 \
  --variants keep_memory+openvino,keep_memory+openvino+int8 --calib-data "$DATA/train" --calib-size 60 \
  --json "$OUT_DIR/models_openvino_alone_512x1024.json" --markdown "$OUT_DIR/models_openvino_alone_512x1024.md"
run --checkpoint camvid --size 512x1024 --batch-size 1 --device cpu --warmup 5 --iters 20 \
  --variants keep_memory+openvino,keep_memory+openvino+int8 \
  --calib-data "$DATA" --calib-size 300 --agreement-images "$DATA/val" --agreement-count 6 \
  --json "$OUT_DIR/fplnet_camvid_openvino_alone_512x1024.json" --markdown "$OUT_DIR/fplnet_camvid_openvino_alone_512x1024.md"
fi
# 9. OpenVINO's precisions on a CPU with native bf16 (avx512_bf16 here): f32, bf16, INT8, and INT8
#    with the layers left in float run in bf16; the shipped CamVid FPLNet at both sizes, alone in
#    its process, with argmax agreement against eager fp32. bf16 also with the classifier as a
#    1x1 conv + pixel shuffle: with AMX the plugin then runs the whole decoder in bf16, not f32
#    (docs/benchmarks.md, "The classifier as a pixel shuffle ..."), untimed on an idle AMX CPU so far.
if want 9; then
for size in 512x1024 360x480; do
run --checkpoint camvid --size $size --batch-size 1 --device cpu --warmup 5 --iters 20 \
  --variants keep_memory+openvino,keep_memory+bf16+openvino,keep_memory+bf16+openvino+shuffle_deconv,keep_memory+openvino+int8,keep_memory+bf16+openvino+int8 \
  --calib-data "$DATA" --calib-size 300 --agreement-images "$DATA/val" --agreement-count 6 \
  --json "$OUT_DIR/fplnet_camvid_openvino_precisions_$size.json" --markdown "$OUT_DIR/fplnet_camvid_openvino_precisions_$size.md"
done
fi
# 10. The same at CamVid's 360x480 (issue 9 asks for both sizes).
if want 10; then
deploy_models 360x480
fi
# 11. The CPU training step compiled, fp32 against bf16 autocast (what `amp: auto` picks on a CPU
#     with native bf16 when the step is compiled; docs/benchmarks.md, "CPU training step").
if want 11; then
run --models fplnet --size 360x480 --batch-size 8 --device cpu --mode train --warmup 2 --iters 6 \
  --variants keep_memory+channels_last+compile,keep_memory+channels_last+bf16+compile --num-classes 11 \
  --json "$OUT_DIR/train_step_compile_bf16.json" --markdown "$OUT_DIR/train_step_compile_bf16.md"
fi
# 12. The shipped CamVid FPLNet on every path the deployment issue lists, in one process per size
#     (`$TORCH_FAST` brings keep_memory, so every variant runs with it and says so).
#     INT8 is a speed figure here, calibrated on 60 frames (its accuracy, with 300, is measured by
#     `fplnet evaluate` on the exported file: docs/runs/openvino/exported_int8/); the quantized graph,
#     and so its speed, does not depend on the frames.
if want 12; then
for size in ${SIZES:-512x1024 360x480}; do
run --checkpoint camvid --size $size --batch-size 1 --device cpu --warmup ${WARMUP:-5} --iters ${ITERS:-20} \
  --variants eager,$TORCH_FAST,onnxruntime,openvino,openvino+int8 --calib-data "$DATA" --calib-size ${CALIB_SIZE:-60} \
  --json "$OUT_DIR/fplnet_camvid_issue_variants_$size.json" --markdown "$OUT_DIR/fplnet_camvid_issue_variants_$size.md"
done
fi
# 13. Issue 9's own ratio for the shipped CamVid FPLNet: plain eager (the default allocator, what
#     `Segmenter(fast=False)` runs) and the fast path (`fast`: OpenVINO f32), each alone in its
#     process as the issue measured them, alternating, twice per size. Part 12 times eager in one
#     process with the others, with freed memory kept: the stricter reference.
if want 13; then
for round in 1 2; do
for size in 512x1024 360x480; do
for variant in eager fast; do
run --checkpoint camvid --size $size --batch-size 1 --device cpu --warmup 5 --iters 20 --variants $variant \
  --json "$OUT_DIR/fplnet_camvid_alone_${variant}_${size}_run$round.json" \
  --markdown "$OUT_DIR/fplnet_camvid_alone_${variant}_${size}_run$round.md"
done
done
done
fi
