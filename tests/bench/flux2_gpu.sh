#!/usr/bin/env bash
# FLUX.2 [dev] on one GPU (issue #26): one forward at SIZE (default 1024x1024) with TOKENS text
# states (default 512, what its pipeline pads Mistral's to), guidance 4, bf16, on a random
# checkpoint of its real sizes (32B) in diffusers' names, fp8-scaled as ComfyUI ships it (its
# bf16 file, 64 GB, does not fit the machine's disk; flux2_diffusers_anchor.py --make), against
# diffusers' Flux2Transformer2DModel on the same weights (dequantised: both compute in bf16),
# inputs and GPU (COMPILE=1: also with compile_repeated_blocks), its prediction compared with
# ours; then ours with fp8 compute on the file's e4m3 bytes (FP8=0: not) and with layer swap at
# SWAP of the blocks' bytes on the GPU (default 0: not; 64 GB of pinned host memory).
#
#   tests/bench/flux2_gpu.sh BUILD_DIR OUT_DIR
#
# Writes OUT_DIR/flux2.jsonl in the results schema.
set -euo pipefail
BIN=$1/bin
OUT=$2
WORK=/tmp/raylight-flux2
mkdir -p "$WORK"
CKPT=$WORK/flux2-dev-fp8.safetensors
[ -f "$CKPT" ] || python3 tests/bench/flux2_diffusers_anchor.py --make "$CKPT"
SIZE=${SIZE:-1024x1024}
NAME=flux2_dev_${SIZE}
FP8_FLAG=(--fp8)
[ "${FP8:-1}" = 1 ] || FP8_FLAG=()
"$BIN/flux_bench" --family flux2 --checkpoint "$CKPT" --name "$NAME" \
  --width "${SIZE%x*}" --height "${SIZE#*x}" --text_tokens "${TOKENS:-512}" \
  --inputs "$WORK/inputs.safetensors" --out "$WORK/ours.safetensors" --runs "${RUNS:-5}" \
  --swap "${SWAP:-0}" "${FP8_FLAG[@]}" |
  tee "$OUT/flux2.jsonl"
OURS_MS=$(grep "\"${NAME}_forward\"" "$OUT/flux2.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["value"])')
python3 tests/bench/flux2_diffusers_anchor.py --checkpoint "$CKPT" \
  --inputs "$WORK/inputs.safetensors" --ours "$WORK/ours.safetensors" --ours-ms "$OURS_MS" \
  --name "$NAME" --runs "${RUNS:-5}" ${COMPILE:+--compile} | tee -a "$OUT/flux2.jsonl"
