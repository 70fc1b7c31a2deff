#!/usr/bin/env bash
# Qwen-Image on one GPU (issue #26): one forward at SIZE (default 1328x1328, ComfyUI's default;
# 83 patches a side) with TOKENS text tokens (default 128), bf16, on a random checkpoint of the
# real sizes in diffusers' names, against diffusers' QwenImageTransformer2DModel on the same
# file, inputs and GPU (COMPILE=1: also with compile_repeated_blocks). A CFG step is two such
# forwards in both (diffusers' pipeline runs the branches one after the other; so do we when the
# prompts' token counts differ). The predictions are compared where the patch counts are even
# (SIZE=1344x1344): at odd ones diffusers centres RoPE one position lower than ComfyUI. Then the
# same forward with layer swap at SWAP (default 0.25) of the blocks' bytes on the GPU, against
# the resident one (SWAP=0: not).
#
#   tests/bench/qwen_image_gpu.sh BUILD_DIR OUT_DIR
#
# Writes OUT_DIR/qwen_image.jsonl in the results schema.
set -euo pipefail
BIN=$1/bin
OUT=$2
WORK=/tmp/raylight-qwen-image
mkdir -p "$WORK"
CKPT=$WORK/qwen-image.safetensors
[ -f "$CKPT" ] || python3 tests/bench/qwen_image_diffusers_anchor.py --make "$CKPT"
SIZE=${SIZE:-1328x1328}
NAME=qwen_image_${SIZE}
"$BIN/flux_bench" --family qwen_image --checkpoint "$CKPT" --name "$NAME" \
  --width "${SIZE%x*}" --height "${SIZE#*x}" --text_tokens "${TOKENS:-128}" \
  --inputs "$WORK/inputs.safetensors" --out "$WORK/ours.safetensors" --runs "${RUNS:-5}" \
  --swap "${SWAP:-0.25}" |
  tee "$OUT/qwen_image.jsonl"
OURS_MS=$(grep "\"${NAME}_forward\"" "$OUT/qwen_image.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["value"])')
python3 tests/bench/qwen_image_diffusers_anchor.py --checkpoint "$CKPT" \
  --inputs "$WORK/inputs.safetensors" --ours "$WORK/ours.safetensors" --ours-ms "$OURS_MS" \
  --name "$NAME" --runs "${RUNS:-5}" ${COMPILE:+--compile} | tee -a "$OUT/qwen_image.jsonl"
