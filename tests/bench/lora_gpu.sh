#!/usr/bin/env bash
# LoRA merge time on a Wan 14B (issue #25's GPU row): a random rank-64 LoRA on every attention
# and FFN linear of all 40 blocks, loaded resident on this machine's first GPU through a local
# cluster, against the same load without it.
#
#   [PRESET=wan2.1-t2v-14b RANK=64] tests/bench/lora_gpu.sh BUILD_DIR OUT_DIR
#
# Writes OUT_DIR/lora.jsonl: the merge's seconds (the median LoRA'd load minus the median plain
# one, RUNS of each alternating, all from the page cache) with the plain load as the anchor.
set -euo pipefail
BIN=$1/bin
OUT=$2
WORK=${WORK:-/tmp/raylight-lora-bench}  # kept: a later call on a warm machine reuses the files
trap '"$BIN/raylightctl" --state-dir="$WORK/state" down >/dev/null 2>&1 || true' EXIT
rm -rf "$WORK/state"
PRESET=${PRESET:-wan2.1-t2v-14b}
RANK=${RANK:-64}
mkdir -p "$WORK/models"
[ -f "$WORK/models/base.safetensors" ] || "$BIN/raylight-make-checkpoint" --preset "$PRESET" \
  --dtype bf16 --device cuda --seed 1 --out "$WORK/models/base.safetensors" >/dev/null
[ -f "$WORK/models/lora.safetensors" ] || python3 - "$WORK/models/base.safetensors" "$WORK/models/lora.safetensors" "$RANK" <<'PY'
import sys, torch
from safetensors import safe_open
from safetensors.torch import save_file
base, out, rank = sys.argv[1], sys.argv[2], int(sys.argv[3])
modules = ("self_attn.q", "self_attn.k", "self_attn.v", "self_attn.o", "cross_attn.q",
           "cross_attn.k", "cross_attn.v", "cross_attn.o", "ffn.0", "ffn.2")
g = torch.Generator(device="cuda").manual_seed(0)
lora = {}
with safe_open(base, "pt") as f:
    for key in f.keys():
        if not key.startswith("blocks.") or not key.endswith(".weight"):
            continue
        module = key[: -len(".weight")]
        if module.split(".", 2)[2] not in modules:
            continue
        out_dim, in_dim = f.get_slice(key).get_shape()
        name = "lora_unet_" + module.replace(".", "_")
        lora[f"{name}.lora_up.weight"] = (torch.randn(out_dim, rank, generator=g, device="cuda") * 0.01).bfloat16().cpu()
        lora[f"{name}.lora_down.weight"] = (torch.randn(rank, in_dim, generator=g, device="cuda") * 0.01).bfloat16().cpu()
        lora[f"{name}.alpha"] = torch.tensor(float(rank))
save_file(lora, out)
print(f"{len(lora) // 3} modules, rank {rank}")
PY
"$BIN/raylightctl" --state-dir="$WORK/state" up --port="${PORT:-6393}" --num-cpu-workers=0 \
  --model-root="$WORK/models" >"$WORK/up.log" 2>&1 || { cat "$WORK/up.log"; exit 1; }
load() {
  "$BIN/raylightctl" --state-dir="$WORK/state" models load --model base.safetensors \
    --placement resident "$@" >>"$WORK/ctl.log" 2>&1
  "$BIN/raylightctl" --state-dir="$WORK/state" models unload >>"$WORK/ctl.log" 2>&1
}
load  # the page cache now holds the base file: every timed load reads it from memory
seconds() { grep -o "in [0-9.]* s" "$WORK/state/logs/worker-0.log" | tail -1 | tr -dc '0-9.'; }
plain=() merged=()
for _ in $(seq "${RUNS:-3}"); do  # alternating, so that drift hits both alike
  load
  plain+=("$(seconds)")
  load --lora "lora.safetensors:1.0"
  merged+=("$(seconds)")
done
grep -h "merged" "$WORK/state/logs/worker-0.log" | tail -1
python3 - "$RANK" "$PRESET" "${plain[*]}" "${merged[*]}" >"$OUT/lora.jsonl" <<'PY'
import json, statistics, sys
rank, preset = sys.argv[1], sys.argv[2]
plain = [float(x) for x in sys.argv[3].split()]
merged = [float(x) for x in sys.argv[4].split()]
name = "wan14b" if "14b" in preset else preset
print(json.dumps({"results": [
    dict(name=f"{name}_lora_rank{rank}_merge_s",
         value=statistics.median(merged) - statistics.median(plain), unit="s",
         anchor="median resident load without the LoRA", anchor_value=statistics.median(plain)),
    dict(name=f"{name}_lora_rank{rank}_load_s", value=statistics.median(merged), unit="s",
         anchor="median resident load without the LoRA", anchor_value=statistics.median(plain)),
], "runs": {"plain_s": plain, "lora_s": merged}}))
PY
cat "$OUT/lora.jsonl"
