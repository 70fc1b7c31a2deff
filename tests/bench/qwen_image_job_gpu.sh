#!/usr/bin/env bash
# A real-size Qwen-Image job through a local cluster on one GPU (issue #26): a random Qwen-Image
# of the real sizes in diffusers' names (qwen_image_diffusers_anchor.py --make, as
# qwen_image_gpu.sh makes it) in the model root, random conditionings of TOKENS Qwen2.5-VL
# states a side (qwen_image_reference.py --conditioning; positive and negative of one length, so
# the two branches run as one batch), SIZE (1328x1328, ComfyUI's default), STEPS steps (20) of
# Euler at cfg 4 (the issue's step). The job uncached, with `--cache magcache` (MagCache's
# Qwen-Image curve, built in), with `--compute fp8`, and with layer swap at 25% of the blocks'
# bytes on the GPU. Each row reports its time over the uncached job's and its final latent's
# relative L2 from the uncached latent (random weights: how far a switch moves a job, not what an
# image loses; swap must give the same latent).
#
#   [STEPS=20] tests/bench/qwen_image_job_gpu.sh BUILD_DIR OUT_DIR
#
# Writes OUT_DIR/qwen_image_job.jsonl in the results schema. For a smoke run of the script on a
# CPU cluster: CHECKPOINT=a Qwen-Image file, CONFIG=its qwen_image_reference.py JSON, SIZE=WxH,
# TOKENS=N, CPU_WORKERS=1, SWAP=a budget that holds two of its blocks, and MAG_RATIOS=r,... (cond and uncond of each step in turn) for the
# authors' curve, which a tiny model has not.
set -euo pipefail
BIN=$1/bin
OUT=$2
STEPS=${STEPS:-20}
WORK=/tmp/raylight-qwen-image-job
mkdir -p "$WORK/models"
CKPT=$WORK/models/qwen-image.safetensors
if [ -n "${CHECKPOINT:-}" ]; then
  cp "$CHECKPOINT" "$CKPT"
elif [ ! -f "$CKPT" ] && [ -f /tmp/raylight-qwen-image/qwen-image.safetensors ]; then
  ln /tmp/raylight-qwen-image/qwen-image.safetensors "$CKPT"  # qwen_image_gpu.sh's random file
elif [ ! -f "$CKPT" ]; then
  python3 tests/bench/qwen_image_diffusers_anchor.py --make "$CKPT"
fi
CONFIG=${CONFIG:-'{"hidden": 3072, "heads": 24, "depth": 60, "context_dim": 3584,
  "axes_dim": [16, 56, 56]}'}
for side in positive:1 negative:2; do
  python3 tests/models/qwen_image_reference.py --conditioning "$WORK/${side%%:*}.safetensors" \
    --seed "${side#*:}" --tokens "${TOKENS:-128}" --config "$CONFIG"
done
SIZE=${SIZE:-1328x1328}
CTL=("$BIN/raylightctl" --state-dir="$WORK/state")
trap '"${CTL[@]}" down >/dev/null 2>&1 || true' EXIT
"${CTL[@]}" up --port="${PORT:-6398}" --num-cpu-workers="${CPU_WORKERS:-0}" \
  --model-root="$WORK/models" >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log"; exit 1; }
JOB=(sample --model qwen-image.safetensors --width "${SIZE%x*}" --height "${SIZE#*x}"
     --steps "$STEPS" --cfg 4 --sampler euler --scheduler simple --seed 7
     --cond "$WORK/positive.safetensors" --negative "$WORK/negative.safetensors")
RUN_LOG=qwen_image_job
CALLS_UNREPORTED=$STEPS  # one batched call a step
source "$(dirname "$0")/job_runs.sh"
run warm  # the model loads; not measured
run uncached
run magcache --cache magcache ${MAG_RATIOS:+--cache-mag-ratios "$MAG_RATIOS"}
run fp8_warm --compute fp8  # the fp8 model loads; not measured
run fp8 --compute fp8
SWAP=${SWAP:-0.25}
run swap_warm --placement swap --swap-budget "$SWAP"  # the swap placement loads; not measured
run swap --placement swap --swap-budget "$SWAP"

python3 - "$WORK" "$STEPS" "$SIZE" "$SWAP" >"$OUT/qwen_image_job.jsonl" <<'PY'
import json, sys
from safetensors.torch import load_file
work, steps = sys.argv[1], int(sys.argv[2])
def read(name):
    seconds, reused, calls = open(f"{work}/{name}.txt").read().split()
    latent = load_file(f"{work}/{name}.latent")["latent_tensor"].float()
    return float(seconds), int(reused), int(calls), latent
base_s, _, _, base = read("uncached")
prefix = f"qwen_image_{sys.argv[3]}_{steps}steps_cfg4"
rows = [dict(name=f"{prefix}_job_s", value=base_s, unit="s",
             anchor="sampling seconds of the uncached job", anchor_value=base_s)]
for name, label in [("magcache", "magcache"), ("fp8", "fp8_compute"), ("swap", "swap" + format(float(sys.argv[4]) * 100, "g"))]:
    seconds, reused, calls, latent = read(name)
    rows.append(dict(name=f"{prefix}_{label}_job_ratio", value=seconds / base_s, unit="ratio",
                     anchor="the same job uncached, sampling s", anchor_value=base_s))
    if name == "magcache":
        rows.append(dict(name=f"{prefix}_{label}_calls_reused", value=reused, unit="calls",
                         anchor="model calls of the job", anchor_value=calls))
    rows.append(dict(name=f"{prefix}_{label}_latent_rel_l2",
                     value=float((latent - base).norm() / base.norm()), unit="ratio",
                     anchor="the uncached job's latent", anchor_value=0.0))
print(json.dumps({"results": rows}))
PY
cat "$OUT/qwen_image_job.jsonl"
