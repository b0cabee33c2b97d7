#!/usr/bin/env bash
# The device calls of a GPU session (see scripts/gpu_campaign.py and docs/gpu.md).
#
# CamVid travels in three parts (.devdata/part0..2, scripts/device_data.py, about 28 MiB each): a
# call brings the working tree and at most 64 MiB in all, and the tree holds the long runs'
# checkpoints. Every mode first unpacks whatever parts the call carried (and any an earlier call
# left on the warm machine) into /tmp/camvid; the training modes then check all 468 frames are
# there. The machine keeps /tmp only while it is warm (30 s after a call), so the calls follow
# one another at once.
#
#   prepare [quick|smoke]: carry .devdata/part0 and .whl. Installs the wheels the device lacks
#             (kornia) and profiles the training step (scripts/gpu_train_profile.py) beside
#             `fplnet benchmark --mode train` and the inference benchmark of the five models.
#             (at most 150 + 2 x 100 + 3 x 60 s). `quick` stops after the wheels and the data, to keep
#             the device minutes for training. `smoke` instead runs the whole campaign for three
#             minutes on a tiny copy (every code path: compiled chains, phase B, packing) and ends
#             with SMOKE OK or SMOKE FAILED; it needs all three parts unpacked, so run `data` first.
#   data:     carry .devdata/part1. Unpacks it; nothing else.
#   campaign SECONDS: carry .devdata/part2. Runs scripts/gpu_campaign.py for SECONDS.
#   long SECONDS [SPLITS]: carry .devdata/part2, instead of campaign. Continues the long CamVid
#             runs committed in docs/runs/long/<split>_adam (scripts/camvid_long_run.sh) on the GPU
#             (bf16, chosen by amp auto) for SECONDS, every split of SPLITS (default trainval;
#             trainval,heldout runs both side by side: one process each, a launch-bound step leaves
#             the GPU room for two), then stops them cleanly and returns one archive per split,
#             $OUT/long_<split>.tar.gz (the stage folders as sync_runs.py saves them; unpack into a
#             folder of its own and merge with sync_runs.py restore, docs/gpu.md). LONG_COMPILE (default reduce-overhead: CUDA graphs, since the eager
#             step is bound by its ~14,000 kernel launches) is passed as --compile; a stage that fails
#             with it is resumed with --compile default for the time left. The full stage's last.pt
#             always comes back (its weights ship), the encoder's until the full stage has its own.
#   speed:    carry .whl only. Installs the wheels, then the speed benchmarks of `prepare` without the
#             profile: the training step at batch 8 and 32, FPLNet's compiled forward replayed by
#             CUDA graphs, and the five models at batch 1, 8 and 32 (at most 2 x 100 + 240 + 3 x 60 s).
#   sweep SECONDS CONFIG [PARALLEL]: carry .devdata/part2, instead of long. Runs `fplnet sweep CONFIG
#             --parallel PARALLEL` (default 4) on the GPU until SECONDS, resuming its runs from
#             docs/runs/sweeps/<name> if saved there, and returns them (sync_runs.py save: small
#             files, last.pt of unfinished runs) as $OUT/sweep_<name>.tgz.part-* plus the sweep's
#             JSON. configs/sweeps/recipe_camvid_long.yaml and baselines_heldout.yaml are such sweeps.
set -u
started=$(date +%s)   # SECONDS counts from here: unpacking is part of the call's time
# Overridable for tests/test_device_call.py: where the data and saved runs go, the long runner, the
# grace after SIGTERM, and how long a fresh training process needs before its first step.
camvid=${CAMVID_DIR:-/tmp/camvid}
long_save=${LONG_SAVE:-/tmp/long_save}
long_runner=${LONG_RUNNER:-scripts/camvid_long_run.sh}
kill_after=${LONG_KILL_AFTER:-30}
compile_seconds=${LONG_COMPILE_SECONDS:-120}
mode=${1:-}
seconds=${2:-500}
smoke=${2:-}
cd "$(dirname "$0")/.."
export PYTHONPATH=$PWD/src:/tmp/site PYTHONUNBUFFERED=1 FPLNET_CACHE=/tmp/fplnet_cache

for part in .devdata/part*; do
    [ -d "$part" ] || continue
    python3 scripts/device_data.py unpack "$part" "$camvid" || { echo "${mode^^} FAILED: unpack $part"; exit 1; }
done
if [ "$mode" = data ]; then echo "DATA OK"; exit 0; fi

install_wheels() {
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || { echo "${mode^^} FAILED: wheels"; exit 1; }
}

# Speed: the training step (the trainer's goal) and inference of the five models.
speed_benchmarks() {
    # cuda_graphs in a training step is torch.compile(mode="reduce-overhead"), the trainer's --compile.
    for b in 8 32; do
        timeout 100 python3 -m fplnet.cli benchmark --mode train --device cuda --models fplnet_encoder,fplnet \
            --size 360x480 --batch-size $b --variants channels_last+bf16,cuda_graphs+channels_last+bf16 --iters 30 \
            --json "$OUT/train_step_b$b.json"
    done
    # FPLNet's forward compiled (element-wise ops fused) and replayed by inductor's CUDA graphs,
    # beside the eager capture that is the CUDA default: the candidate for issue 9's 1000 FPS.
    timeout 240 python3 -m fplnet.cli benchmark --device cuda --models fplnet --size 512x1024 --batch-size 1 \
        --variants fold_bn+channels_last+cuda_graphs+bf16,fold_bn+channels_last+bf16+compile+cuda_graphs,fold_bn+channels_last+bf16+compile+freeze+cuda_graphs \
        --iters 50 --json "$OUT/inference_fplnet_compiled_graphs_b1.json"
    # Inference of the five models in one run per batch size (issue 9 asks for 1, 8 and 32).
    for b in 1 8 32; do
        timeout 60 python3 -m fplnet.cli benchmark --device cuda --models fplnet,espnet,enet,erfnet,cgnet \
            --size 512x1024 --batch-size $b --variants eager,fast,fold_bn+channels_last+cuda_graphs+bf16 --iters 30 \
            --json "$OUT/inference_b$b.json"
    done
}

if [ "$mode" = prepare ]; then
    install_wheels
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    python3 -c "import torch, kornia; print('torch', torch.__version__, 'kornia', kornia.__version__, torch.cuda.get_device_name())"
    if [ "$smoke" = quick ]; then echo "PREPARE OK"; exit 0; fi
    ok=1
    if [ "$smoke" = smoke ]; then
        # A tiny CamVid with all three sequences: 6 frames of each for train, 3 as val.
        rm -rf /tmp/smoke && mkdir -p /tmp/smoke/{train,trainannot,val,valannot}
        for seq in 0001TP 0006R0 0016E5; do
            for f in $(ls "$camvid"/train | grep "^$seq" | head -6); do
                cp "$camvid"/train/$f /tmp/smoke/train/; cp "$camvid"/trainannot/$f /tmp/smoke/trainannot/
            done
        done
        for f in $(ls "$camvid"/train | grep "^0016E5" | tail -3); do
            cp "$camvid"/train/$f /tmp/smoke/val/; cp "$camvid"/trainannot/$f /tmp/smoke/valannot/
        done
        timeout 140 python3 scripts/gpu_campaign.py --data-root /tmp/smoke --work /tmp/smoke_work --out /tmp/smoke_out \
            --seconds 130 --phases a --recipes adam_appearance
        timeout 50 python3 scripts/gpu_campaign.py --data-root /tmp/smoke --work /tmp/smoke_work --out /tmp/smoke_out \
            --seconds 35 --phases b --min-phase-b 10 --epochs-b 2 --sweep-parallel 3 --ablate-parallel 3
        pkill -KILL -f "fplnet.cli" ; sleep 1   # runs start their own sessions: none may outlive the smoke
        for f in /tmp/smoke_out/chain_heldout_adam_appearance.tar.gz /tmp/smoke_out/chain_trainval_adam_appearance.tar.gz; do
            [ -s "$f" ] || ok=0
        done
        grep -h "img/s" /tmp/smoke_work/logs/*_full.log | tail -2
        grep -l "Traceback" /tmp/smoke_work/logs/*.log /tmp/smoke_work/sweeps/recipe_camvid/*.log \
            /tmp/smoke_work/ablations/*/*.log 2>/dev/null && ok=0
        ls /tmp/smoke_work/sweeps/recipe_camvid/*/summary.json /tmp/smoke_work/ablations/*/*/summary.json 2>/dev/null | wc -l
        mkdir -p "$OUT/smoke" && cp -r /tmp/smoke_work/logs "$OUT/smoke/" 2>/dev/null
        tar czf "$OUT/smoke_logs.tar.gz" -C /tmp/smoke_work logs sweeps ablations --exclude='*.pt' 2>/dev/null
        rm -rf "$OUT/smoke"
        # The smoke is a call of its own: with the profile and benchmarks it would outlast 600 s.
        if [ $ok = 1 ]; then echo "SMOKE OK"; else echo "SMOKE FAILED"; fi
        exit 0
    fi
    timeout 150 python3 scripts/gpu_train_profile.py --model fplnet_encoder --out "$OUT/profile_fplnet_encoder.txt"
    speed_benchmarks
    exit 0
fi

if [ "$mode" = speed ]; then
    install_wheels
    speed_benchmarks
    exit 0
fi

if [ "$mode" = campaign ] || [ "$mode" = long ] || [ "$mode" = sweep ]; then
    n_train=$(ls "$camvid/train" | wc -l); n_val=$(ls "$camvid/val" | wc -l)
    echo "frames: train $n_train val $n_val"
    if [ "$n_train" != 367 ] || [ "$n_val" != 101 ]; then echo "${mode^^} FAILED: data incomplete"; exit 1; fi
fi

if [ "$mode" = long ]; then
    IFS=, read -ra splits <<< "${3:-trainval}"
    deadline=$(( started + seconds ))
    long_split() {  # $1 = split: restore, train until the deadline, save, pack
        local split=$1 compile=${LONG_COMPILE:-reduce-overhead} left code
        local saved=docs/runs/long/${split}_adam runs=runs/long/${split}_adam
        if [ -d "$saved" ]; then
            python3 scripts/sync_runs.py restore "$saved" "$runs" || { echo "LONG $split FAILED: restore"; return 1; }
        fi
        while :; do
            left=$(( deadline - $(date +%s) ))
            [ "$left" -gt "$kill_after" ] || break
            # SIGTERM at the deadline: the trainer finishes its step, saves last.pt, and the script
            # stops (rc 124 = the deadline, as planned). Device and amp stay `auto` (cuda + bf16
            # here), so the stage resumes on the CPU afterwards.
            DATA=$camvid PYTHON=python3 SPLIT=$split EXTRA="--save-every-minutes 2 --compile $compile" \
                timeout -k "$kill_after" -s TERM "$left" bash "$long_runner"
            code=$?
            echo "LONG $split compile=$compile rc=$code"
            if [ "$code" = 124 ] || [ "$code" = 0 ] || [ "$compile" = default ]; then break; fi
            # A fresh process compiles for 45-65 s before its first step: too little time left for that.
            if [ $(( deadline - $(date +%s) )) -lt $(( compile_seconds + kill_after )) ]; then echo "LONG $split: too little time left to retry"; break; fi
            tail -5 "$runs"/*.log
            compile=default
        done
        # The full stage's checkpoint always (its weights ship), the encoder's until stage 2 has its own.
        python3 scripts/sync_runs.py save --long-run "$runs" "$long_save/${split}_adam"
        for log in "$runs"/*.log; do echo "== $log"; grep -E "img/s|mIoU|Error|error" "$log" | tail -4; done
        if tar czf "$OUT/long_${split}.tar.gz" -C "$long_save" "${split}_adam"; then echo "LONG $split PACKED"
        else rm -f "$OUT/long_${split}.tar.gz"; echo "LONG $split FAILED: pack"; fi
    }
    # Each split once (two processes on one run folder would fight over its lock).
    mapfile -t splits < <(printf '%s\n' "${splits[@]}" | awk 'NF && !seen[$0]++')
    for split in "${splits[@]}"; do long_split "$split" > "$OUT/long_${split}.out" 2>&1 & done
    wait
    cat "$OUT"/long_*.out
    nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv,noheader 2>/dev/null
    missing=0
    for split in "${splits[@]}"; do [ -s "$OUT/long_${split}.tar.gz" ] || { echo "LONG $split: no archive"; missing=1; }; done
    exit $missing
fi

if [ "$mode" = sweep ]; then
    config=${3:?usage: $0 sweep SECONDS CONFIG [PARALLEL]} parallel=${4:-4}
    output=$(python3 -c "import sys, yaml; print(yaml.safe_load(open(sys.argv[1]))['output'])" "$config") \
        || { echo "SWEEP FAILED: $config"; exit 1; }
    name=$(basename "$output")
    saved=docs/runs/sweeps/$name
    if [ -d "$saved" ]; then python3 scripts/sync_runs.py restore "$saved" "$output" || exit 1; fi
    # SIGTERM at the deadline: the sweep runner passes it on, every run saves last.pt and stops.
    timeout -k "$kill_after" -s TERM $(( started + seconds - $(date +%s) )) python3 -m fplnet.cli sweep "$config" \
        --parallel "$parallel" --device "${SWEEP_DEVICE:-cuda}" --data-root "$camvid" --json "$OUT/sweep_$name.json"
    echo "SWEEP rc=$?"
    rm -rf "$long_save/sweeps/$name"
    python3 scripts/sync_runs.py save "$output" "$long_save/sweeps/$name"
    for log in "$output"/*.log; do echo "== $log"; grep -E "img/s|mIoU|Error" "$log" | tail -2; done
    # Unfinished runs keep last.pt (an ERFNet's is 25 MB): parts of 15 MiB, each under the 16 MiB
    # a returned file may have. Put back with: cat sweep_NAME.tgz.part-* | tar xz -C docs/runs/sweeps
    tar czf - -C "$long_save/sweeps" "$name" | split -b 15m - "$OUT/sweep_$name.tgz.part-"
    ls -la "$OUT"
    exit 0
fi

if [ "$mode" = campaign ]; then
    python3 scripts/gpu_campaign.py --data-root "$camvid" --work /tmp/gpu --out "$OUT" --seconds "$seconds"
    nvidia-smi --query-gpu=name,utilization.gpu,memory.used --format=csv,noheader
    exit 0
fi
echo "usage: $0 prepare [quick|smoke] | data | speed | campaign SECONDS | long SECONDS [trainval,heldout]" \
     "| sweep SECONDS CONFIG [PARALLEL]" >&2
exit 2
