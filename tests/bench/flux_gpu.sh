#!/usr/bin/env bash
# Flux.1-dev on one GPU (issue #26): one 1024x1024 forward with 512 T5 tokens and its guidance,
# bf16, on a random checkpoint of the real sizes in BFL's spelling (flux_bench --make), against
# diffusers' FluxTransformer2DModel on the same file (converted by diffusers' own converter), the
# same inputs and GPU, eager and with compile_repeated_blocks; the two predictions' relative L2.
#
#   tests/bench/flux_gpu.sh BUILD_DIR OUT_DIR
#
# Writes OUT_DIR/flux.jsonl in the results schema (PROFILE=1: and a Chrome trace of one of our
# forwards, summarised by kernel family in OUT_DIR/flux_trace_summary.txt; FP8_ATTENTION=1: and
# our forward with fp8 attention; ANCHOR=0: without diffusers).
set -euo pipefail
BIN=$1/bin
OUT=$2
WORK=/tmp/raylight-flux
mkdir -p "$WORK"
CKPT=$WORK/flux1-dev.safetensors
[ -f "$CKPT" ] || "$BIN/flux_bench" --make --preset flux1-dev --checkpoint "$CKPT"
NAME=flux1_dev_1024x1024
"$BIN/flux_bench" --checkpoint "$CKPT" --name "$NAME" --inputs "$WORK/inputs.safetensors" \
  --out "$WORK/ours.safetensors" --runs "${RUNS:-5}" ${FP8_ATTENTION:+--fp8_attention} ${FP8:+--fp8} \
  ${PROFILE:+--profile_trace "$OUT/flux_trace.json"} | tee "$OUT/flux.jsonl"
[ -z "${PROFILE:-}" ] || python3 tests/bench/trace_summary.py "$OUT/flux_trace.json" | tee "$OUT/flux_trace_summary.txt"
[ "${ANCHOR:-1}" = 1 ] || exit 0
OURS_MS=$(grep "\"${NAME}_forward\"" "$OUT/flux.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["value"])')
python3 tests/bench/flux_diffusers_anchor.py --checkpoint "$CKPT" --inputs "$WORK/inputs.safetensors" \
  --ours "$WORK/ours.safetensors" --ours-ms "$OURS_MS" --name "$NAME" --runs "${RUNS:-5}" \
  ${COMPILE:+--compile} | tee -a "$OUT/flux.jsonl"
