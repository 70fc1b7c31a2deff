#!/usr/bin/env bash
# Wan 2.2 A14B's two experts as one job against ComfyUI's two chained KSamplerAdvanced jobs, on
# a local cluster with this machine's first GPU (issue #22's GPU proof).
#
#   [PRESET=wan2.1-t2v-14b DTYPE=fp8 STEPS=8] tests/bench/experts_gpu.sh BUILD_DIR OUT_DIR
#
# DTYPE is the checkpoints' stored dtype (bf16; fp8: two 14B experts fit the lent machine's disk
# beside the build, and load as bf16 weights: both resident on the GPU).
#
# Writes OUT_DIR/experts.jsonl: the one job's wall time, the chain's, the second one-job run's
# (both experts resident), and the largest difference between the one-job and chained LATENTs.
set -euo pipefail
BIN=$1/bin
OUT=$2
WORK=$(mktemp -d)
trap '"$BIN/raylightctl" --state-dir="$WORK/state" down >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
PRESET=${PRESET:-wan2.1-t2v-1.3b}
mkdir -p "$WORK/models"
for expert in high:1 low:2; do
  "$BIN/raylight-make-checkpoint" --preset "$PRESET" --dtype "${DTYPE:-bf16}" --device "${DEVICE:-cuda}" \
    --seed "${expert#*:}" --out "$WORK/models/${expert%%:*}.safetensors" >/dev/null
done
for cond in positive:16 negative:8; do
  "$BIN/raylight-make-conditioning" --preset "$PRESET" --tokens "${cond#*:}" \
    --out "$WORK/${cond%%:*}.safetensors" >/dev/null
done
"$BIN/raylightctl" --state-dir="$WORK/state" up --port="${PORT:-6391}" \
  --model-root="$WORK/models" >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log"; exit 1; }
ctl() { "$BIN/raylightctl" --state-dir="$WORK/state" "$@" >>"$WORK/ctl.log" 2>&1; }
common=(--cond "$WORK/positive.safetensors" --negative "$WORK/negative.safetensors"
        --width "${WIDTH:-832}" --height "${HEIGHT:-480}" --frames "${FRAMES:-81}"
        --steps "${STEPS:-30}" --cfg 5 --sampler uni_pc
        --scheduler simple --seed 7 --preview-every 0)
now() { date +%s.%N; }
# The switch step of a 30-step shift-5 simple schedule at Wan's 0.875 T2V boundary.
SWITCH=$(python3 -c "
s=5.0; n=${STEPS:-30}; t=[(1000-int(i*(1000/n)))/1000 for i in range(n)]
sig=[s*x/(1+(s-1)*x) for x in t]
print(sum(1 for x in sig if x >= 0.875))")
t0=$(now); ctl sample --model high.safetensors --low-noise-model low.safetensors "${common[@]}" \
  --out "$WORK/one"
t1=$(now); ctl sample --model high.safetensors --low-noise-model low.safetensors "${common[@]}" \
  --out "$WORK/again"
t2=$(now); ctl sample --model high.safetensors "${common[@]}" --end-step "$SWITCH" \
  --leftover-noise --out "$WORK/first"
ctl sample --model low.safetensors "${common[@]}" --latent "$WORK/first.latent" --no-noise \
  --start-step "$SWITCH" --out "$WORK/second"
t3=$(now)
python3 - "$WORK" "$t0" "$t1" "$t2" "$t3" "$SWITCH" "$PRESET" \
  "${WIDTH:-832}x${HEIGHT:-480}x${FRAMES:-81}" >"$OUT/experts.jsonl" <<'EOF'
import json, sys
from safetensors.torch import load_file
work, t0, t1, t2, t3, switch, preset, size = sys.argv[1:]
t0, t1, t2, t3 = map(float, (t0, t1, t2, t3))
one = load_file(f"{work}/one.latent")["latent_tensor"]
again = load_file(f"{work}/again.latent")["latent_tensor"]
chained = load_file(f"{work}/second.latent")["latent_tensor"]
diff = float((one - chained).abs().max())
name = f"{preset}_experts_{size}"
rows = [
    dict(name=f"{name}_one_job_s", value=t1 - t0, unit="s", anchor="two chained jobs",
         anchor_value=t3 - t2),
    dict(name=f"{name}_one_job_resident_s", value=t2 - t1, unit="s", anchor="two chained jobs",
         anchor_value=t3 - t2),
    dict(name=f"{name}_one_job_vs_chain_max_abs_diff", value=diff, unit="latent units",
         anchor="switch step", anchor_value=int(switch)),
    dict(name=f"{name}_repeat_max_abs_diff", value=float((one - again).abs().max()),
         unit="latent units", anchor="", anchor_value=0),
]
print(json.dumps({"results": rows}))
EOF
cat "$OUT/experts.jsonl"
grep -E "resident|loaded|sampled" "$WORK/ctl.log" | head -20
