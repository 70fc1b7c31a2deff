#!/usr/bin/env bash
# A real-size Flux.1-dev job through a local cluster on one GPU (issues #26 and #27): a random
# checkpoint of the real sizes in BFL's spelling (flux_bench --make, as flux_gpu.sh makes it),
# a random conditioning of 512 T5 tokens with the pooled vector and guidance 3.5
# (flux_reference.py --conditioning), 1024x1024, STEPS steps (28: the step count the caches'
# authors calibrated), cfg 1 (guidance-distilled). The job uncached, then with each speed switch:
# `--cache teacache` at TeaCache4FLUX's polynomial with ComfyUI-TeaCache's recommended threshold
# (0.4) and the authors' gentlest (0.25), `--cache magcache` with MagCache4FLUX's curve and rule,
# `--cache easycache` at ComfyUI's defaults, and `--compute fp8`. Random weights make TeaCache's
# and EasyCache's measured changes (and so their reuse) unlike a trained model's; MagCache's
# schedule comes from its curve alone. Each row reports the reuse the run got beside its time,
# and the final latent's relative L2 from the uncached job's (random weights: not a quality
# measure).
#
#   [STEPS=28] tests/bench/flux_job_gpu.sh BUILD_DIR OUT_DIR
#
# Writes OUT_DIR/flux_job.jsonl in the results schema. For a smoke run of the script on a CPU
# cluster: CHECKPOINT=a Flux file, CONFIG=its flux_reference.py JSON, SIZE=WxH, TOKENS=N,
# CPU_WORKERS=1, and the calibrations below.
set -euo pipefail
BIN=$1/bin
OUT=$2
STEPS=${STEPS:-28}
WORK=/tmp/raylight-flux-job
mkdir -p "$WORK/models"
CKPT=$WORK/models/flux1-dev.safetensors
if [ -n "${CHECKPOINT:-}" ]; then
  cp "$CHECKPOINT" "$CKPT"
elif [ ! -f "$CKPT" ] && [ -f /tmp/raylight-flux/flux1-dev.safetensors ]; then
  ln /tmp/raylight-flux/flux1-dev.safetensors "$CKPT"  # flux_gpu.sh's, the same random file
elif [ ! -f "$CKPT" ]; then
  "$BIN/flux_bench" --make --preset flux1-dev --checkpoint "$CKPT" >>"$OUT/flux_job.log" 2>&1
fi
CONFIG=${CONFIG:-'{"hidden": 3072, "heads": 24, "depth": 19, "depth_single": 38,
  "context_dim": 4096, "vec_dim": 768, "guidance_embed": true, "axes_dim": [16, 56, 56]}'}
python3 tests/models/flux_reference.py --conditioning "$WORK/positive.safetensors" --seed 1 \
  --tokens "${TOKENS:-512}" --guidance 3.5 --config "$CONFIG"
SIZE=${SIZE:-1024x1024}
CTL=("$BIN/raylightctl" --state-dir="$WORK/state")
trap '"${CTL[@]}" down >/dev/null 2>&1 || true' EXIT
"${CTL[@]}" up --port="${PORT:-6397}" --num-cpu-workers="${CPU_WORKERS:-0}" \
  --model-root="$WORK/models" >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log"; exit 1; }
JOB=(sample --model flux1-dev.safetensors --width "${SIZE%x*}" --height "${SIZE#*x}"
     --steps "$STEPS" --cfg 1 --sampler euler --scheduler simple --seed 7
     --cond "$WORK/positive.safetensors")
RUN_LOG=flux_job
CALLS_UNREPORTED=$STEPS  # cfg 1: one call a step
source "$(dirname "$0")/job_runs.sh"
run warm  # the model loads; not measured
run uncached
# A smoke run's model has no published calibration: TEA_COEFFICIENTS=c1,c0, TEA_THRESHOLD=t and
# MAG_RATIOS=r,... stand in for the authors'.
TEA=(--cache teacache ${TEA_COEFFICIENTS:+--cache-coefficients "$TEA_COEFFICIENTS"})
run teacache "${TEA[@]}" ${TEA_THRESHOLD:+--cache-threshold "$TEA_THRESHOLD"}
run teacache_quality "${TEA[@]}" --cache-threshold 0.25
run magcache --cache magcache ${MAG_RATIOS:+--cache-mag-ratios "$MAG_RATIOS"}
run easycache --cache easycache
run fp8_warm --compute fp8  # the fp8 model loads; not measured
run fp8 --compute fp8

python3 "$(dirname "$0")/job_rows.py" "$WORK" "flux1_dev_${SIZE}_${STEPS}steps" \
  teacache:teacache_thresh0.4:reuse teacache_quality:teacache_thresh0.25:reuse \
  magcache:magcache_thresh0.24_k5:reuse easycache:easycache_thresh0.2:reuse fp8:fp8_compute \
  >"$OUT/flux_job.jsonl"
cat "$OUT/flux_job.jsonl"
