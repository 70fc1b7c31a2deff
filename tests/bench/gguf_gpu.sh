#!/usr/bin/env bash
# GGUF on one GPU (issue #25's rows): one denoising step (cond + uncond at cfg 5, bf16 compute) of
# Wan 14B at 832x480x81 with Q8_0 and Q4_K weights (blocks kept quantised on the device,
# dequantised per block by the CUDA kernels), and Q8_0 under layer swap at 10%, against the bf16
# checkpoint resident; with each run's device bytes for weights. Each GGUF step is also timed with
# the same file dequantised at load (--keep_encoded=false: the same values, as bf16 on the device),
# which isolates the per-block dequantisation from what the values themselves do to the GEMMs'
# clocks (random blocks are not the bf16 checkpoint's values). And Q8_0 with a rank-64 LoRA on
# all 400 linears, applied after each dequantisation, against Q8_0 without it.
#
#   [RUNS=3 LATENT=21,60,104] tests/bench/gguf_gpu.sh BUILD_DIR BF16_CHECKPOINT OUT_DIR
#
# The GGUF files hold random quantisation blocks (raylight-make-checkpoint --dtype q8_0|q4_k;
# made once per machine beside the bf16 one): the step time does not depend on the values.
# Writes OUT_DIR/gguf.jsonl, one row per line in the results schema.
set -uo pipefail
BUILD=$1 BF16=$2 OUT=$3
LATENT=${LATENT:-21,60,104}
RUNS=${RUNS:-3}
DIR=$(dirname "$BF16")
export NCCL_NVLS_ENABLE=0

# A random rank-64 LoRA on every attention and FFN linear of the 40 blocks (PEFT names, as the
# base's diffusers spelling has them): on a GGUF base it is applied after each dequantisation.
LORA=$DIR/wan14b-lora64.safetensors
[ -f "$LORA" ] || python3 - "$BF16" "$LORA" <<'PY' >&2
import sys, torch
from safetensors import safe_open
from safetensors.torch import save_file
base, out = sys.argv[1], sys.argv[2]
g = torch.Generator(device="cuda").manual_seed(0)
lora = {}
with safe_open(base, "pt") as f:
    for key in f.keys():
        shape = f.get_slice(key).get_shape()
        if not key.startswith("blocks.") or not key.endswith(".weight") or len(shape) != 2:
            continue
        out_dim, in_dim = shape
        name = "transformer." + key[: -len(".weight")]  # PEFT names, any spelling of the base
        up = torch.randn(out_dim, 64, generator=g, device="cuda") * 0.01
        down = torch.randn(64, in_dim, generator=g, device="cuda") * 0.01
        lora[f"{name}.lora_B.weight"] = up.bfloat16().cpu()
        lora[f"{name}.lora_A.weight"] = down.bfloat16().cpu()
        lora[f"{name}.alpha"] = torch.tensor(64.0)
assert len(lora) == 40 * 10 * 3, len(lora)
save_file(lora, out)
PY

for type in q8_0 q4_k; do
  [ -f "$DIR/wan14b-$type.gguf" ] || "$BUILD/bin/raylight-make-checkpoint" \
    --preset wan2.1-t2v-14b --dtype "$type" --spelling comfyui --device cuda --seed 1 \
    --out "$DIR/wan14b-$type.gguf" >&2 || exit 1
done

# One rank's step on this GPU: prints parallel_rank_main's "key value" lines.
step() {
  local ckpt=$1 placement=$2 extra=${3:-}
  local store; store=$(mktemp -d)
  # shellcheck disable=SC2086
  "$BUILD/bin/parallel_rank_main" --rank=0 --size=1 --store_dir="$store" --backend=nccl \
    --checkpoint="$ckpt" --mesh= --latent="$LATENT" --dtype=bf16 --cfg=5 --forward=false \
    --steps=0 --time_steps="$RUNS" --placement="$placement" --timeout_ms=600000 $extra \
    2>"$store/rank0.log" || { echo "step $ckpt $placement failed:" >&2; cat "$store/rank0.log" >&2; }
  rm -rf "$store"
}
value() { awk -v key="$1" '$1 == key { print $2 }'; }
ratio() { python3 -c "print(round($1 / $2, ${3:-3}))" 2>/dev/null || echo null; }
row() {  # name value unit anchor anchor_value
  printf '{"name": "%s", "value": %s, "unit": "%s", "anchor": "%s", "anchor_value": %s}\n' \
    "$1" "${2:-null}" "$3" "$4" "${5:-null}"
}

NAME=wan14b_832x480x81
bf16=$([ "${BF16_ROW:-1}" = 1 ] && step "$BF16" resident)
bf16_ms=$(echo "$bf16" | value step_ms)
bf16_bytes=$(echo "$bf16" | value weight_device_bytes)
{
  row "${NAME}_bf16_step_ms" "$bf16_ms" ms "" null
  for spec in ${SPECS:-q8_0:resident: q4_k:resident: q8_0:swap:--swap_budget=0.1}; do
    IFS=: read -r type placement flags <<<"$spec"
    output=$(step "$DIR/wan14b-$type.gguf" "$placement" "$flags")
    ms=$(echo "$output" | value step_ms)
    bytes=$(echo "$output" | value weight_device_bytes)
    label=$type
    [ "$placement" = swap ] && label=${type}_swap10
    row "${NAME}_${label}_step_ratio" "$([ -n "$ms" ] && ratio "$ms" "$bf16_ms" || echo null)" \
      ratio "bf16 resident step ms" "$bf16_ms"
    if [ "$spec" = q8_0:resident: ]; then
      with_lora=$(step "$DIR/wan14b-$type.gguf" resident --lora="$LORA" | value step_ms)
      row "${NAME}_q8_0_lora64_over_q8_0" \
        "$([ -n "$ms" ] && [ -n "$with_lora" ] && ratio "$with_lora" "$ms" || echo null)" ratio \
        "Q8_0 resident step ms without the LoRA" "${ms:-null}"
    fi
    if [ "$placement" = resident ]; then
      same=$(step "$DIR/wan14b-$type.gguf" resident --keep_encoded=false | value step_ms)
      row "${NAME}_${label}_over_dequantised_at_load" \
        "$([ -n "$ms" ] && [ -n "$same" ] && ratio "$ms" "$same" || echo null)" ratio \
        "same values dequantised at load, step ms" "${same:-null}"
    fi
    row "${NAME}_${label}_weight_device_fraction" \
      "$([ -n "$bytes" ] && ratio "$bytes" "$bf16_bytes" 4 || echo null)" ratio \
      "bf16 resident weight device bytes" "$bf16_bytes"
  done
} | tee "$OUT/gguf.jsonl"
