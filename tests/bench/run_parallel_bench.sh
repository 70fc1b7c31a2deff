#!/usr/bin/env bash
# Parallel-sampling benchmark (issue #5): one denoising step (cond + uncond at cfg 5) of a Wan
# checkpoint at 832x480x81 (latent 21x60x104, 32,760 tokens), bf16, on 1 GPU and on 2 GPUs as
# ulysses 2, ring 2 and cfg 2; prints one JSON line per row with the speedup over 1 GPU, and the
# all-to-all time of a ulysses-2 forward.
#
#   tests/bench/run_parallel_bench.sh BUILD_DIR CHECKPOINT NAME   (e.g. wan14b_832x480x81)
set -uo pipefail
BUILD=$1 CKPT=$2 NAME=$3
LATENT=${LATENT:-21,60,104}
RUNS=${RUNS:-3}
export NCCL_NVLS_ENABLE=0

# Runs `size` ranks of parallel_rank_main with `mesh`; prints rank 0's output.
run() {
  local mesh=$1 size=$2 extra=${3:-}
  local store; store=$(mktemp -d)
  local pids=() r
  local args=(--size="$size" --store_dir="$store" --backend=nccl --checkpoint="$CKPT"
              --mesh="$mesh" --latent="$LATENT" --dtype=bf16 --cfg=5 --forward=false --steps=0
              --time_steps="$RUNS" $extra)
  for ((r = 1; r < size; r++)); do
    "$BUILD/bin/parallel_rank_main" --rank=$r "${args[@]}" >/dev/null 2>"$store/rank$r.log" &
    pids+=($!)
  done
  "$BUILD/bin/parallel_rank_main" --rank=0 "${args[@]}" 2>"$store/rank0.log"
  local code=$?
  for p in "${pids[@]}"; do wait "$p" || code=1; done
  [ $code -eq 0 ] || { echo "mesh '$mesh' failed:" >&2; cat "$store"/rank*.log >&2; }
  rm -rf "$store"
}

value() { awk -v key="$1" '$1 == key { print $2 }'; }

one=$(run "" 1 | value step_ms)
echo "{\"name\": \"${NAME}_1gpu_step_ms\", \"value\": $one}"
# The same on the other GPU: the two cards' own speeds bound what two-card modes can reach.
other=$(CUDA_VISIBLE_DEVICES=1 run "" 1 | value step_ms)
echo "{\"name\": \"${NAME}_1gpu_step_ms_second_gpu\", \"value\": $other}"
for mode in ulysses ring cfg; do
  extra=""
  [ $mode = ulysses ] && extra="--time_all_to_all"
  output=$(run "$mode=2" 2 "$extra")
  two=$(echo "$output" | value step_ms)
  echo "{\"name\": \"${NAME}_${mode}2_step_ms\", \"value\": $two}"
  echo "{\"name\": \"${NAME}_${mode}2_speedup\", \"value\": $(python3 -c "print(round($one / $two, 3))")}"
  if [ $mode = ulysses ]; then
    a2a=$(echo "$output" | value all_to_all_ms_per_forward)
    # A ulysses-2 step is two forwards (cond, uncond).
    echo "{\"name\": \"${NAME}_ulysses2_all_to_all_share\", \"value\": $(python3 -c "print(round(2 * $a2a / $two, 4))")}"
  fi
done
