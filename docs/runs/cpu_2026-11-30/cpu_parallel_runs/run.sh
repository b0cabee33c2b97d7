#!/usr/bin/env bash
# One ablation run with 2 threads, then two at once with 1 thread each: epochs/s of the grid.
set -u
cd /work/main
OUT=docs/runs/cpu_2026-11-30/cpu_parallel_runs
mkdir -p $OUT
T="train --config configs/ablations/camvid_heldout_adam.yaml --epochs 4 --device cpu --save-every-minutes 60"
rm -rf /tmp/par_*
OMP_NUM_THREADS=2 .venv/bin/fplnet $T --seed 7 --output /tmp/par_two_threads > $OUT/two_threads.log 2>&1
OMP_NUM_THREADS=1 .venv/bin/fplnet $T --seed 7 --output /tmp/par_one_thread_a > $OUT/one_thread_a.log 2>&1 &
OMP_NUM_THREADS=1 .venv/bin/fplnet $T --seed 8 --output /tmp/par_one_thread_b > $OUT/one_thread_b.log 2>&1 &
wait
for r in two_threads one_thread_a one_thread_b; do cp /tmp/par_$r/log.csv $OUT/$r.csv; done
