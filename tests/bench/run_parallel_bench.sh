#!/usr/bin/env bash
# Parallel-sampling and weight-placement benchmark (issues #5, #6, #8): one denoising step (cond +
# uncond at cfg 5) of a Wan checkpoint, bf16, on 1 GPU and on each mesh given; prints one JSON line
# per row with the speedup over 1 GPU, the all-to-all share of pure-Ulysses steps, FSDP's per-GPU
# weight fraction and peak host memory while loading, and layer swap's step time over resident.
#
#   tests/bench/run_parallel_bench.sh BUILD_DIR CHECKPOINT NAME \
#     [LABEL:MESH:RANKS[:PLACEMENT[:FLAGS]] ...]
#
# e.g. NAME wan14b_832x480x81 and `ulysses4:ulysses=4:4 fsdp4_ulysses4:ulysses=4:4:fsdp`, or
# `swap10::1:swap:--swap_budget=0.1` (FLAGS: parallel_rank_main flags, comma-separated).
# Without meshes: ulysses 2, ring 2 and cfg 2 on two GPUs, and the 1-GPU step on the second card.
# LATENT (frames,height,width; default 21,60,104 = 832x480x81, 32,760 tokens), RUNS (timed
# steps after one warm-up, default 3), SINGLE (0: no 1-GPU reference) and SECOND_GPU (1: the
# 1-GPU step on the second card too, with meshes given) come from the environment.
set -uo pipefail
BUILD=$1 CKPT=$2 NAME=$3
shift 3
LATENT=${LATENT:-21,60,104}
RUNS=${RUNS:-3}
export NCCL_NVLS_ENABLE=0

# Runs `size` ranks of parallel_rank_main with `mesh`; prints rank 0's output.
run() {
  local mesh=$1 size=$2 placement=${3:-resident} extra=${4:-}
  local store; store=$(mktemp -d)
  local pids=() r
  local args=(--size="$size" --store_dir="$store" --backend=nccl --checkpoint="$CKPT"
              --mesh="$mesh" --latent="$LATENT" --dtype=bf16 --cfg=5 --forward=false --steps=0
              --time_steps="$RUNS" --placement="$placement" --timeout_ms=600000 $extra)
  for ((r = 1; r < size; r++)); do
    "$BUILD/bin/parallel_rank_main" --rank=$r "${args[@]}" >/dev/null 2>"$store/rank$r.log" &
    pids+=($!)
  done
  "$BUILD/bin/parallel_rank_main" --rank=0 "${args[@]}" 2>"$store/rank0.log"
  local code=$?
  for p in "${pids[@]}"; do wait "$p" || code=1; done
  [ $code -eq 0 ] || { echo "mesh '$mesh' on $size failed:" >&2; cat "$store"/rank*.log >&2; }
  rm -rf "$store"
}

value() { awk -v key="$1" '$1 == key { print $2 }'; }
row() { echo "{\"name\": \"${NAME}_$1\", \"value\": $2}"; }
ratio() { python3 -c "print(round($1 / $2, ${3:-3}))" 2>/dev/null || echo null; }

MESHES=("$@")
second_gpu=false
[ "${SECOND_GPU:-0}" = 1 ] && second_gpu=true
if [ ${#MESHES[@]} -eq 0 ]; then
  MESHES=(ulysses2:ulysses=2:2 ring2:ring=2:2 cfg2:cfg=2:2)
  second_gpu=true
fi

# SINGLE=0 leaves the 1-GPU reference out (its ratios are then null), for profiling runs.
one="" one_weights=""
if [ "${SINGLE:-1}" = 1 ]; then
  single=$(run "" 1)
  one=$(echo "$single" | value step_ms)
  one_weights=$(echo "$single" | value weight_device_bytes)
  row 1gpu_step_ms "$one"
fi
if $second_gpu; then
  # The same on the other GPU: the two cards' own speeds bound what two-card modes can reach.
  row 1gpu_step_ms_second_gpu "$(CUDA_VISIBLE_DEVICES=1 run "" 1 | value step_ms)"
fi
for spec in "${MESHES[@]}"; do
  IFS=: read -r label mesh size placement flags <<<"$spec"
  placement=${placement:-resident}
  extra=${flags//,/ }
  pure_ulysses=false
  [[ $mesh =~ ^ulysses=[0-9]+$ ]] && pure_ulysses=true && extra="$extra --time_all_to_all"
  output=$(run "$mesh" "$size" "$placement" "$extra")
  step=$(echo "$output" | value step_ms)
  row "${label}_step_ms" "${step:-null}"
  if [ "$size" = 1 ]; then  # one GPU, another placement: its cost over resident
    row "${label}_ratio" "$([ -n "$step" ] && ratio "$step" "$one" || echo null)"
    echo "$output" | grep '^swap_resident_blocks' >&2
  else
    row "${label}_speedup" "$([ -n "$step" ] && ratio "$one" "$step" || echo null)"
  fi
  if $pure_ulysses && [ -n "$step" ]; then
    a2a=$(echo "$output" | value all_to_all_ms_per_forward)
    # A pure-Ulysses step is two forwards (cond, uncond) on every rank.
    row "${label}_all_to_all_share" "$(ratio "2 * $a2a" "$step" 4)"
  fi
  if [ "$placement" != resident ]; then
    weights=$(echo "$output" | value weight_device_bytes)
    row "${label}_weight_fraction" "$([ -n "$weights" ] && ratio "$weights" "$one_weights" 4 || echo null)"
  fi
  if [[ $placement == fsdp* ]]; then
    # The weights proper (shards + replicated globals) and, apart, with the gather buffers
    # (prefetch + 1 blocks, and host shards' staging copy) that any prefetching FSDP holds.
    buffers=$(echo "$output" | value gather_buffer_bytes)
    row "${label}_weight_fraction_without_buffers" \
      "$([ -n "$weights" ] && [ -n "$buffers" ] && ratio "($weights - $buffers)" "$one_weights" 4 || echo null)"
    rss=$(echo "$output" | value load_peak_rss_bytes)
    row "${label}_load_peak_rss_GB" "$([ -n "$rss" ] && ratio "$rss" 1e9 2 || echo null)"
  fi
done
