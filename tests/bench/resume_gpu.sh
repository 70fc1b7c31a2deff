#!/usr/bin/env bash
# Issue #23 on one GPU: a job whose worker is killed mid-run resumes from its last step. A local
# cluster with the machine's GPU worker and a random Wan 1.3B (bf16) runs a 832x480x81 job to the
# end once; then the same job again, its worker killed (-9) halfway through its sampling time.
# The node restarts the worker, the head runs the job again, and rank 0's journal on the node
# replays the model calls made before the kill. Reports the disturbed job's wall time against the
# undisturbed one's, the model calls replayed, and the two latents' difference.
#
#   [STEPS=20] tests/bench/resume_gpu.sh BUILD_DIR WAN_CHECKPOINT OUT_DIR
#
# Writes OUT_DIR/resume.jsonl in the results schema.
set -euo pipefail
BIN=$1/bin
WAN=$2 OUT=$3
STEPS=${STEPS:-20}
WORK=/tmp/raylight-resume
rm -rf "$WORK" && mkdir -p "$WORK/models"
ln "$WAN" "$WORK/models/wan.safetensors"  # a hard link: the worker refuses paths out of its root
for side in positive:77 negative:20; do
  "$BIN/raylight-make-conditioning" --preset=wan2.1-t2v-1.3b --tokens="${side#*:}" --seed=3 \
    --out="$WORK/${side%%:*}.safetensors" >>"$OUT/resume.log" 2>&1
done
CTL=("$BIN/raylightctl" --state-dir="$WORK/state")
trap '"${CTL[@]}" down >/dev/null 2>&1 || true' EXIT
"${CTL[@]}" up --port="${PORT:-6395}" --num-cpu-workers=0 --model-root="$WORK/models" \
  >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log"; exit 1; }
JOB=(sample --model wan.safetensors --width 832 --height 480 --frames 81 --steps "$STEPS" --cfg 5
     --seed 7 --cond "$WORK/positive.safetensors" --negative "$WORK/negative.safetensors")
now() { date +%s.%N; }

start=$(now)
"${CTL[@]}" "${JOB[@]}" --out "$WORK/whole" >"$OUT/resume_whole.log" 2>&1
whole_s=$(python3 -c "print($(now) - $start)")
sample_s=$(grep -ho "sampled $STEPS steps in [0-9.]*" "$WORK/state/logs/"worker-*.log | tail -1 |
           awk '{print $5}')
echo "undisturbed: ${whole_s} s (sampling ${sample_s} s)"

start=$(now)
"${CTL[@]}" "${JOB[@]}" --out "$WORK/resumed" >"$OUT/resume_killed.log" 2>&1 &
client=$!
sleep "$(python3 -c "print(2 + $sample_s / 2)")"
pkill -9 -f 'raylight-worker.*--gpu=0' && echo "killed the worker"
wait "$client"
resumed_s=$(python3 -c "print($(now) - $start)")
replayed_line=$(grep -ho "[0-9]* of [0-9]* model calls replayed" "$WORK/state/logs/"worker-*.log |
                tail -1)
replayed=$(echo "$replayed_line" | awk '{print $1}')
calls=$(echo "$replayed_line" | awk '{print $3}')
echo "killed halfway and resumed: ${resumed_s} s, ${replayed:-0} of ${calls:-?} model calls replayed"
grep -h "resuming\|aborted\|requeued" "$WORK/state/logs/"*.log "$WORK/state/logs/"worker-*.log \
  >"$OUT/resume_messages.log" 2>/dev/null || true

python3 - "$WORK" "$whole_s" "$resumed_s" "${replayed:-0}" "${calls:-0}" >"$OUT/resume.jsonl" <<'PY'
import json, sys
from safetensors.torch import load_file
work, whole, resumed, replayed, calls = sys.argv[1], *map(float, sys.argv[2:])
a = load_file(f"{work}/whole.latent")["latent_tensor"].float()
b = load_file(f"{work}/resumed.latent")["latent_tensor"].float()
rel = float((a - b).norm() / a.norm())
print(json.dumps({"results": [
    dict(name="wan1_3b_832x480x81_killed_job_s", value=resumed, unit="s",
         anchor="the same job undisturbed, s", anchor_value=whole),
    dict(name="wan1_3b_832x480x81_killed_job_replayed_calls", value=replayed, unit="calls",
         anchor="model calls of the job", anchor_value=calls),
    dict(name="wan1_3b_832x480x81_killed_job_latent_rel_l2", value=rel, unit="ratio",
         anchor="the undisturbed job's latent", anchor_value=0.0),
    dict(name="wan1_3b_832x480x81_killed_job_latent_max_abs_diff",
         value=float((a - b).abs().max()), unit="abs", anchor="", anchor_value=None),
]}))
PY
cat "$OUT/resume.jsonl"
