#!/usr/bin/env bash
# A prompt job on one GPU (issue #24): `raylightctl sample --prompt` on a local cluster whose model
# root holds a random Wan 1.3B and a random umT5-XXL in text_encoders/ (both bf16; made by
# session.sh and umt5_anchor.py). The first job loads the encoder and encodes the prompt and
# Wan's default negative; the second finds both encodings cached; the third runs on the
# conditioning raylight-encode-text writes on the same GPU, and its latent must equal the prompt
# job's. Wall times of the whole raylightctl call (832x480x81, STEPS steps, cfg 5).
#
#   [STEPS=2] tests/bench/prompt_job_gpu.sh BUILD_DIR WAN_CHECKPOINT UMT5_CHECKPOINT OUT_DIR
#
# Writes OUT_DIR/prompt_job.jsonl in the results schema.
set -euo pipefail
BIN=$1/bin
WAN=$2 UMT5=$3 OUT=$4
WORK=/tmp/raylight-prompt-job
rm -rf "$WORK" && mkdir -p "$WORK/models/text_encoders"
# Hard links: the worker refuses files that resolve outside its model root.
ln "$WAN" "$WORK/models/wan.safetensors"
ln "$UMT5" "$WORK/models/text_encoders/umt5-xxl.safetensors"
CTL=("$BIN/raylightctl" --state-dir="$WORK/state")
trap '"${CTL[@]}" down >/dev/null 2>&1 || true' EXIT
"${CTL[@]}" up --port="${PORT:-6394}" --num-cpu-workers=0 --model-root="$WORK/models" \
  >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log"; exit 1; }
PROMPT="a red fox runs in the snow under a pale winter sky, cinematic slow motion"
SIZE=(--width 832 --height 480 --frames 81 --steps "${STEPS:-2}" --cfg 5 --seed 7)
run() {  # NAME ARGS...: one job, its wall seconds into $WORK/NAME.s
  local name=$1; shift
  local start end
  start=$(date +%s.%N)
  "${CTL[@]}" sample --model wan.safetensors "${SIZE[@]}" --out "$WORK/$name" "$@" \
    >"$OUT/$name.log" 2>&1 || { cat "$OUT/$name.log"; exit 1; }
  end=$(date +%s.%N)
  python3 -c "print($end - $start)" >"$WORK/$name.s"
}
run first --prompt "$PROMPT"
run cached --prompt "$PROMPT"
"$BIN/raylight-encode-text" --text-encoder "$UMT5" --prompt "$PROMPT" --device cuda \
  --dtype bf16 --out "$WORK/positive.safetensors" >"$OUT/encode.log"
"$BIN/raylight-encode-text" --text-encoder "$UMT5" --wan-default-negative --device cuda \
  --dtype bf16 --out "$WORK/negative.safetensors" >>"$OUT/encode.log"
run conditioned --cond "$WORK/positive.safetensors" --negative "$WORK/negative.safetensors"
grep -h "prompt" "$WORK/state/logs/"worker-*.log | tail -4 >"$OUT/prompt_messages.log" || true
python3 - "$WORK" >"$OUT/prompt_job.jsonl" <<'PY'
import json, sys
from safetensors.torch import load_file
work = sys.argv[1]
seconds = {n: float(open(f"{work}/{n}.s").read()) for n in ("first", "cached", "conditioned")}
a = load_file(f"{work}/first.latent")["latent_tensor"].float()
b = load_file(f"{work}/conditioned.latent")["latent_tensor"].float()
print(json.dumps({"results": [
    dict(name="wan1_3b_prompt_job_first_s", value=seconds["first"], unit="s",
         anchor="the same job on conditioning files, s", anchor_value=seconds["conditioned"]),
    dict(name="wan1_3b_prompt_job_cached_s", value=seconds["cached"], unit="s",
         anchor="the same job on conditioning files, s", anchor_value=seconds["conditioned"]),
    dict(name="wan1_3b_prompt_job_latent_max_abs_diff_vs_files", value=float((a - b).abs().max()),
         unit="abs", anchor="", anchor_value=None),
]}))
PY
cat "$OUT/prompt_job.jsonl" "$OUT/prompt_messages.log"
