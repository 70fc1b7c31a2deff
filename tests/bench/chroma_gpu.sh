#!/usr/bin/env bash
# Chroma on one GPU (issue #26): one forward at SIZE (default 1024x1024) with TOKENS T5 tokens
# (default 512, what its pipelines pad to), bf16, on a random checkpoint of the real sizes in
# diffusers' names (chroma_diffusers_anchor.py --make), against diffusers'
# ChromaTransformer2DModel on the same file, inputs and GPU (COMPILE=1: also with
# compile_repeated_blocks), its prediction compared with ours; then the same forward with layer
# swap at SWAP (default 0.25) of the blocks' bytes on the GPU against the resident one (SWAP=0:
# not). Chroma is not guidance-distilled: a step is two such forwards at cfg > 1.
#
#   tests/bench/chroma_gpu.sh BUILD_DIR OUT_DIR
#
# Writes OUT_DIR/chroma.jsonl in the results schema.
set -euo pipefail
BIN=$1/bin
OUT=$2
WORK=/tmp/raylight-chroma
mkdir -p "$WORK"
CKPT=$WORK/chroma.safetensors
[ -f "$CKPT" ] || python3 tests/bench/chroma_diffusers_anchor.py --make "$CKPT"
SIZE=${SIZE:-1024x1024}
NAME=chroma_${SIZE}
"$BIN/flux_bench" --family chroma --checkpoint "$CKPT" --name "$NAME" \
  --width "${SIZE%x*}" --height "${SIZE#*x}" --text_tokens "${TOKENS:-512}" \
  --inputs "$WORK/inputs.safetensors" --out "$WORK/ours.safetensors" --runs "${RUNS:-5}" \
  --swap "${SWAP:-0.25}" |
  tee "$OUT/chroma.jsonl"
OURS_MS=$(grep "\"${NAME}_forward\"" "$OUT/chroma.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["value"])')
python3 tests/bench/chroma_diffusers_anchor.py --checkpoint "$CKPT" \
  --inputs "$WORK/inputs.safetensors" --ours "$WORK/ours.safetensors" --ours-ms "$OURS_MS" \
  --name "$NAME" --runs "${RUNS:-5}" ${COMPILE:+--compile} | tee -a "$OUT/chroma.jsonl"
