#!/usr/bin/env bash
# A prompt-to-video job on one GPU (issue #24's `wan1_3b_prompt_to_mp4_e2e_overhead_ratio`):
# `raylightctl sample --prompt ... --out x.mp4` on a local cluster whose model root holds a
# random Wan 1.3B in bf16, a random umT5-XXL in text_encoders/ and a random real-size Wan 2.1 VAE
# in vae/ (raylight-vae make-random). A build without video files (a prefix without
# pack_ffmpeg.sh's FFmpeg) writes the frames (ComfyUI's IMAGE, uint8) instead: the rows then say
# `frames` for `mp4`. A first job loads everything; the second, measured, finds the models
# resident and the prompts cached. The ratio is the second job's wall time (the whole raylightctl
# call, submit to file written) over the sum of the parts the job reports (sampling seconds and
# decode seconds, the MP4's encoding included).
#
#   [STEPS=30] tests/bench/prompt_to_video_gpu.sh BUILD_DIR WAN_CHECKPOINT UMT5_CHECKPOINT OUT_DIR
#
# Writes OUT_DIR/prompt_to_video.jsonl in the results schema.
set -euo pipefail
BIN=$1/bin
WAN=$2 UMT5=$3 OUT=$4
WORK=/tmp/raylight-prompt-video
rm -rf "$WORK" && mkdir -p "$WORK/models/text_encoders" "$WORK/models/vae"
# Hard links: the worker refuses files that resolve outside its model root.
ln "$WAN" "$WORK/models/wan.safetensors"
ln "$UMT5" "$WORK/models/text_encoders/umt5-xxl.safetensors"
"$BIN/raylight-vae" make-random --preset wan2.1 --seed 3 \
  --out "$WORK/models/vae/wan_2.1_vae.safetensors" >/dev/null
CTL=("$BIN/raylightctl" --state-dir="$WORK/state")
trap '"${CTL[@]}" down >/dev/null 2>&1 || true' EXIT
"${CTL[@]}" up --port="${PORT:-6395}" --num-cpu-workers=0 --model-root="$WORK/models" \
  >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log"; exit 1; }
PROMPT="a red fox runs in the snow under a pale winter sky, cinematic slow motion"
ARGS=(--model wan.safetensors --prompt "$PROMPT" --width 832 --height 480 --frames 81
      --steps "${STEPS:-30}" --cfg 5 --seed 7 --preview-every 0)
KIND=frames EXT=safetensors
if grep -q "RAYLIGHT_WITH_MEDIA:BOOL=ON" "$1/CMakeCache.txt"; then KIND=mp4 EXT=mp4; fi
for name in first second; do
  start=$(date +%s.%N)
  "${CTL[@]}" sample "${ARGS[@]}" --out "$WORK/$name.$EXT" >"$OUT/video-$name.log" 2>&1 ||
    { cat "$OUT/video-$name.log"; exit 1; }
  end=$(date +%s.%N)
  python3 -c "print($end - $start)" >"$WORK/$name.s"
done
python3 - "$WORK" "$OUT/video-second.log" "$KIND" >"$OUT/prompt_to_video.jsonl" <<'PY'
import json, os, re, sys
from safetensors import safe_open
work, log, kind = sys.argv[1], open(sys.argv[2]).read(), sys.argv[3]
wall = float(open(f"{work}/second.s").read())
sampled = float(re.search(r"sampled in ([0-9.]+) s", log).group(1))
decoded = float(re.search(r"decoded in ([0-9.]+) s", log).group(1))
if kind == "mp4":
    assert re.search(r"^mp4: ", log, re.M) and os.path.getsize(f"{work}/second.mp4") > 0, log
else:
    with safe_open(f"{work}/second.safetensors", "pt") as f:
        shape = list(f.get_slice("images").get_shape())
    assert shape == [81, 480, 832, 3], shape
print(json.dumps({"results": [
    dict(name=f"wan1_3b_prompt_to_{kind}_e2e_overhead_ratio", value=wall / (sampled + decoded),
         unit="ratio", anchor="sampling + decode seconds the job reports",
         anchor_value=sampled + decoded),
    dict(name=f"wan1_3b_prompt_to_{kind}_wall_s", value=wall, unit="s", anchor="",
         anchor_value=None),
    dict(name=f"wan1_3b_prompt_to_{kind}_sample_s", value=sampled, unit="s", anchor="",
         anchor_value=None),
    dict(name=f"wan1_3b_prompt_to_{kind}_decode_s", value=decoded, unit="s", anchor="",
         anchor_value=None),
    dict(name=f"wan1_3b_prompt_to_{kind}_first_job_s",
         value=float(open(f"{work}/first.s").read()), unit="s",
         anchor="with the loads and the prompt encodes", anchor_value=None),
]}))
PY
cat "$OUT/prompt_to_video.jsonl"
