#!/usr/bin/env bash
# A real-size job of FAMILY (qwen_image, chroma or flux2) through a local cluster on one GPU (issue
# #26): a random checkpoint of the family's real sizes in diffusers' names (its anchor script's
# --make, as qwen_image_gpu.sh, chroma_gpu.sh and flux2_gpu.sh make it) in the model root, random
# conditionings of TOKENS text states a side (the family's reference script's --conditioning;
# positive and negative of one length, so the two branches run as one batch), SIZE, STEPS steps of
# Euler at CFG. Qwen-Image: 1328x1328 (ComfyUI's default), 20 steps, cfg 4 (the issue's step), 128
# Qwen2.5-VL states. Chroma: 1024x1024, 26 steps, cfg 4 (its model card's), 512 T5 tokens. FLUX.2
# [dev]: its fp8-scaled file (as ComfyUI ships it; its bf16 one does not fit the disk), 1024x1024,
# 20 steps at cfg 1 (guidance-distilled: guidance 4 in the conditioning, no negative), 512 text
# states (what its pipeline pads Mistral's to). The job uncached,
# with `--cache magcache` where the authors published the family's curve (Qwen-Image), with
# `--compute fp8`, and with layer swap at SWAP (25%) of the blocks' bytes on the GPU. Each row
# reports its time over the uncached job's and its final latent's relative L2 from the uncached
# latent (random weights: how far a switch moves a job, not what an image loses; swap must give
# the same latent).
#
#   FAMILY=qwen_image|chroma|flux2 [STEPS=..] tests/bench/family_job_gpu.sh BUILD_DIR OUT_DIR
#
# Writes OUT_DIR/FAMILY_job.jsonl in the results schema. For a smoke run of the script on a CPU
# cluster: CHECKPOINT=a file of the family, CONFIG=its reference script's JSON, SIZE=WxH,
# TOKENS=N, CPU_WORKERS=1, SWAP=a budget that holds two of its blocks, and MAG_RATIOS=r,... (cond
# and uncond of each step in turn) for the authors' curve, which a tiny model has not.
set -euo pipefail
BIN=$1/bin
OUT=$2
FAMILY=${FAMILY:?FAMILY=qwen_image, chroma or flux2}
CONDITIONING=()  # the reference script's further --conditioning arguments
case $FAMILY in
  qwen_image)
    STEPS=${STEPS:-20} SIZE=${SIZE:-1328x1328} TOKENS=${TOKENS:-128}
    MAKER=tests/bench/qwen_image_diffusers_anchor.py REFERENCE=tests/models/qwen_image_reference.py
    CONFIG=${CONFIG:-'{"hidden": 3072, "heads": 24, "depth": 60, "context_dim": 3584,
      "axes_dim": [16, 56, 56]}'}
    FORWARD_CKPT=/tmp/raylight-qwen-image/qwen-image.safetensors  # qwen_image_gpu.sh's
    MAGCACHE=1 ;;
  chroma)
    STEPS=${STEPS:-26} SIZE=${SIZE:-1024x1024} TOKENS=${TOKENS:-512}
    MAKER=tests/bench/chroma_diffusers_anchor.py REFERENCE=tests/models/chroma_reference.py
    CONFIG=${CONFIG:-'{"hidden": 3072, "heads": 24, "depth": 19, "depth_single": 38,
      "context_dim": 4096, "axes_dim": [16, 56, 56], "approximator_hidden": 5120,
      "approximator_layers": 5}'}
    FORWARD_CKPT=/tmp/raylight-chroma/chroma.safetensors  # chroma_gpu.sh's
    MAGCACHE=${MAG_RATIOS:+1} ;;
  flux2)
    STEPS=${STEPS:-20} SIZE=${SIZE:-1024x1024} TOKENS=${TOKENS:-512} CFG=${CFG:-1}
    MAKER=tests/bench/flux2_diffusers_anchor.py REFERENCE=tests/models/flux2_reference.py
    CONFIG=${CONFIG:-'{"hidden": 6144, "heads": 48, "depth": 8, "depth_single": 48,
      "context_dim": 15360, "axes_dim": [32, 32, 32, 32]}'}
    FORWARD_CKPT=/tmp/raylight-flux2/flux2-dev-fp8.safetensors  # flux2_gpu.sh's
    CONDITIONING=(--guidance 4)
    MAGCACHE=${MAG_RATIOS:+1} ;;
  *) echo "FAMILY: '$FAMILY' is not qwen_image, chroma or flux2" >&2; exit 2 ;;
esac
WORK=/tmp/raylight-$FAMILY-job
mkdir -p "$WORK/models"
CKPT=$WORK/models/$FAMILY.safetensors
if [ -n "${CHECKPOINT:-}" ]; then
  cp "$CHECKPOINT" "$CKPT"
elif [ ! -f "$CKPT" ] && [ -f "$FORWARD_CKPT" ]; then
  ln "$FORWARD_CKPT" "$CKPT"  # the forward benchmark's random file
elif [ ! -f "$CKPT" ]; then
  python3 "$MAKER" --make "$CKPT"
fi
for side in positive:1 negative:2; do
  python3 "$REFERENCE" --conditioning "$WORK/${side%%:*}.safetensors" --seed "${side#*:}" \
    --tokens "$TOKENS" --config "$CONFIG" "${CONDITIONING[@]}"
done
CTL=("$BIN/raylightctl" --state-dir="$WORK/state")
trap '"${CTL[@]}" down >/dev/null 2>&1 || true' EXIT
"${CTL[@]}" up --port="${PORT:-6398}" --num-cpu-workers="${CPU_WORKERS:-0}" \
  --model-root="$WORK/models" >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log"; exit 1; }
JOB=(sample --model "$FAMILY.safetensors" --width "${SIZE%x*}" --height "${SIZE#*x}"
     --steps "$STEPS" --cfg "${CFG:-4}" --sampler euler --scheduler simple --seed 7
     --cond "$WORK/positive.safetensors")
[ "${CFG:-4}" = 1 ] || JOB+=(--negative "$WORK/negative.safetensors")
RUN_LOG=${FAMILY}_job
CALLS_UNREPORTED=$STEPS  # one batched call a step
source "$(dirname "$0")/job_runs.sh"
run warm  # the model loads; not measured
run uncached
VARIANTS=()
if [ -n "$MAGCACHE" ]; then
  run magcache --cache magcache ${MAG_RATIOS:+--cache-mag-ratios "$MAG_RATIOS"}
  VARIANTS+=(magcache:magcache:reuse)
fi
run fp8_warm --compute fp8  # the fp8 model loads; not measured
run fp8 --compute fp8
SWAP=${SWAP:-0.25}
run swap_warm --placement swap --swap-budget "$SWAP"  # the swap placement loads; not measured
run swap --placement swap --swap-budget "$SWAP"
VARIANTS+=(fp8:fp8_compute "swap:swap$(python3 -c "print(format($SWAP * 100, 'g'))")")

python3 "$(dirname "$0")/job_rows.py" "$WORK" "${FAMILY}_${SIZE}_${STEPS}steps_cfg${CFG:-4}" \
  "${VARIANTS[@]}" >"$OUT/${FAMILY}_job.jsonl"
cat "$OUT/${FAMILY}_job.jsonl"
