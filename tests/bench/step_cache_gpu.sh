#!/usr/bin/env bash
# Step caching on one GPU (issue #27): a random Wan 2.1 1.3B (bf16) job, 832x480x81, STEPS steps
# at cfg 5, through a local cluster, uncached and with `--cache teacache` at the authors' 1.3B
# thresholds (0.05: their quality setting; 0.10: their fast one with retention steps) and with a
# threshold that reuses every call past the retained five (the identity polynomial, threshold
# 9.5: what a reused call costs). Random weights make the time embedding's changes, and so the
# number of calls reused at the published thresholds, unlike a trained model's: the rows report
# the reuse each run got beside its time. Then `--cache magcache` with the authors' 1.3B curve at
# their default (threshold 0.12, K 2) and at their README's fast setting (0.24, K 6): MagCache's
# schedule comes from the curve alone, so its reuse, and so its time, is what a trained model's
# job gets (CACHES=0: none of these). Then the uncached job with `--attention fp8` (cuDNN's fp8
# attention), `--compute fp8` (the linears as e4m3 GEMMs) and both: each one's time and its final
# latent's distance from the bf16 job's (issue #27's accuracy after a whole run). The
# latent's relative L2 from the uncached run says how far the reuse moved it
# (random weights: not a quality measure).
#
#   [STEPS=30] tests/bench/step_cache_gpu.sh BUILD_DIR WAN_CHECKPOINT OUT_DIR
#
# Writes OUT_DIR/teacache.jsonl in the results schema.
set -euo pipefail
BIN=$1/bin
WAN=$2 OUT=$3
STEPS=${STEPS:-30}
WORK=/tmp/raylight-teacache
rm -rf "$WORK" && mkdir -p "$WORK/models"
ln "$WAN" "$WORK/models/wan.safetensors"
for side in positive:1 negative:2; do  # equal lengths: cond and uncond batched, a call a step
  "$BIN/raylight-make-conditioning" --preset=wan2.1-t2v-1.3b --tokens=77 --seed="${side#*:}" \
    --out="$WORK/${side%%:*}.safetensors" >>"$OUT/teacache.log" 2>&1
done
CTL=("$BIN/raylightctl" --state-dir="$WORK/state")
trap '"${CTL[@]}" down >/dev/null 2>&1 || true' EXIT
"${CTL[@]}" up --port="${PORT:-6396}" --num-cpu-workers=0 --model-root="$WORK/models" \
  >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log"; exit 1; }
JOB=(sample --model wan.safetensors --width 832 --height 480 --frames 81 --steps "$STEPS" --cfg 5
     --seed 7 --cond "$WORK/positive.safetensors" --negative "$WORK/negative.safetensors")
RUN_LOG=teacache
source "$(dirname "$0")/job_runs.sh"
run warm  # the model loads; not measured
run uncached
rows=()
if [ "${CACHES:-1}" = 1 ]; then
  run published --cache teacache --cache-threshold 0.05
  run fast --cache teacache --cache-threshold 0.10
  run every --cache teacache --cache-threshold 9.5 --cache-coefficients 1,0
  run magcache --cache magcache
  run magcache_fast --cache magcache --cache-threshold 0.24 --cache-max-skips 6
  rows+=(published:teacache_thresh0.05:reuse fast:teacache_thresh0.10:reuse
         every:teacache_every_call:reuse magcache:magcache_thresh0.12_k2:reuse
         magcache_fast:magcache_thresh0.24_k6:reuse)
fi
run fp8_attention --attention fp8  # its plan is built and timed in the job's warm-up, untimed
run fp8_warm --compute fp8  # the fp8 model loads; not measured
run fp8 --compute fp8
run fp8_all --compute fp8 --attention fp8
rows+=(fp8_attention:fp8_attention fp8:fp8_compute fp8_all:fp8_compute_and_attention)

python3 "$(dirname "$0")/job_rows.py" "$WORK" wan1_3b_832x480x81 "${rows[@]}" \
  >"$OUT/teacache.jsonl"
cat "$OUT/teacache.jsonl"
