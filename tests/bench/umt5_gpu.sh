#!/usr/bin/env bash
# umT5-XXL on one GPU (issue #24's row `umt5_512_tokens_ratio_vs_transformers`): a random umT5-XXL
# (bf16, ComfyUI's names; made once per machine by umt5_anchor.py) encodes a prompt padded to 512
# tokens through raylight-encode-text (bf16 compute; median of RUNS after a first run) and through
# transformers' UMT5EncoderModel (bf16) in the same lease; the two conditionings are compared.
#
#   [RUNS=11] tests/bench/umt5_gpu.sh BUILD_DIR OUT_DIR
#
# Writes OUT_DIR/umt5.jsonl in the results schema.
set -euo pipefail
BIN=$1/bin
OUT=$2
DIR=${DIR:-/tmp/raylight-umt5}
PROMPT="a red fox runs in the snow under a pale winter sky, cinematic slow motion wide shot"
[ -f "$DIR/umt5-xxl.safetensors" ] || python3 tests/bench/umt5_anchor.py make --out "$DIR"
"$BIN/raylight-encode-text" --text-encoder "$DIR/umt5-xxl.safetensors" --prompt "$PROMPT" \
  --device cuda --dtype bf16 --runs "${RUNS:-11}" --out "$DIR/cond.safetensors" | tee "$OUT/umt5-ours.log"
python3 tests/bench/umt5_anchor.py time --dir "$DIR" --prompt "$PROMPT" \
  --ours "$DIR/cond.safetensors" | tee "$OUT/umt5-anchor.log"
python3 - "$OUT/umt5-ours.log" "$OUT/umt5-anchor.log" >"$OUT/umt5.jsonl" <<'PY'
import json, sys
ours = json.loads(open(sys.argv[1]).read().strip().splitlines()[-1])
anchor = json.loads(open(sys.argv[2]).read().strip().splitlines()[-1])
print(json.dumps({"results": [
    dict(name="umt5_512_tokens_ratio_vs_transformers",
         value=ours["encode_ms_median"] / anchor["transformers_ms_median"], unit="ratio",
         anchor="transformers UMT5EncoderModel bf16 forward, ms",
         anchor_value=anchor["transformers_ms_median"]),
    dict(name="umt5_512_tokens_encode_ms", value=ours["encode_ms_median"], unit="ms",
         anchor="", anchor_value=None),
    dict(name="umt5_512_tokens_relative_l2_vs_fp32",
         value=anchor["relative_l2_vs_fp32"], unit="ratio",
         anchor="transformers bf16 relative L2 vs the same fp32 forward",
         anchor_value=anchor["transformers_bf16_relative_l2_vs_fp32"]),
    dict(name="umt5_512_tokens_relative_l2_vs_transformers_bf16",
         value=anchor["relative_l2_vs_transformers"], unit="ratio", anchor="", anchor_value=None),
    dict(name="umt5_xxl_load_s", value=ours["load_s"], unit="s", anchor="", anchor_value=None),
]}))
PY
cat "$OUT/umt5.jsonl"
