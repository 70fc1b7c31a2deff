#!/usr/bin/env bash
# One GPU-machine session in one call (device time is short): install diffusers from the carried
# wheels (.whl/, made by `pip download`; the machine has no network) beside the host's PyTorch,
# build the GPU tests and benchmarks, run the `gpu` tests, then the benchmarks (Wan forward,
# parallel sampling on two GPUs).
# Logs and JSON lines go to $OUT (or ./gpu-out).
#
#   deploy/gpu/session.sh [tests|bench|all|parallel]
set -uo pipefail
cd "$(dirname "$0")/../.."
WHAT=${1:-all}
OUT=${OUT:-$PWD/gpu-out}
mkdir -p "$OUT"
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1

# The host's PyTorch lives in its own venv (python3 on PATH; a fresh machine every session):
# pip resolves diffusers against what that venv has (numpy, Pillow, transformers' pins) and
# installs only what is missing from the carried wheels.
if ! python3 -c 'import diffusers' 2>/dev/null; then
  python3 -m pip install -q --no-index --find-links .whl diffusers safetensors >"$OUT/pip.log" 2>&1 ||
    { echo "diffusers install failed"; tail -20 "$OUT/pip.log"; }
fi
export PYTHON=python3
python3 -c 'import diffusers, torch; print("diffusers", diffusers.__version__, "torch", torch.__version__)'
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv >"$OUT/gpu.txt" 2>&1

TARGETS="raylight-head raylight-node raylight-worker gpu_cluster_test comm_nccl_test comm_rank_suite
  wan_diffusers_gpu_test wan_gpu_test wan_bench raylight-make-checkpoint parallel_rank_main
  parallel_sampling_gpu_test" \
  deploy/gpu/build.sh --no-test build-gpu >"$OUT/build.log" 2>&1 || { tail -40 "$OUT/build.log"; exit 1; }
echo "build ok ($(grep -c 'Building' "$OUT/build.log") compiles)"

if [ "$WHAT" = parallel ]; then  # parallel sampling only: its gpu tests and benchmark
  (cd build-gpu && timeout 300 ctest -R ParallelSampling -V) >"$OUT/ctest-parallel.log" 2>&1
  echo "ctest ParallelSampling exit $?"; grep -E "tests passed|Failed|\*\*\*" "$OUT/ctest-parallel.log"
  CKPT=/tmp/raylight-bench; mkdir -p "$CKPT"
  for spec in "wan2.1-t2v-1.3b wan1_3b_832x480x81" "wan2.1-t2v-14b wan14b_832x480x81"; do
    set -- $spec
    build-gpu/bin/raylight-make-checkpoint --preset "$1" --dtype bf16 --spelling diffusers \
      --device cuda --out "$CKPT/$1.safetensors" >>"$OUT/bench.log" 2>&1
    timeout 400 tests/bench/run_parallel_bench.sh build-gpu "$CKPT/$1.safetensors" "$2" \
      >>"$OUT/parallel_bench.jsonl" 2>>"$OUT/bench.log"
    echo "$2 parallel exit $?"
    rm -f "$CKPT/$1.safetensors"
  done
  cat "$OUT/parallel_bench.jsonl"
  exit 0
fi
if [ "$WHAT" != bench ]; then
  (cd build-gpu && timeout 480 ctest -L gpu -V) >"$OUT/ctest-gpu.log" 2>&1
  echo "ctest -L gpu exit $?"; grep -E "tests passed|Failed|\*\*\*|relative L2" "$OUT/ctest-gpu.log" | head -30
fi
if [ "$WHAT" != tests ]; then
  CKPT=/tmp/raylight-bench; mkdir -p "$CKPT"
  for spec in "wan2.1-t2v-1.3b wan1_3b_832x480x81" "wan2.1-t2v-14b wan14b_832x480x81"; do
    set -- $spec
    build-gpu/bin/raylight-make-checkpoint --preset "$1" --dtype bf16 --spelling diffusers \
      --device cuda --out "$CKPT/$1.safetensors" >>"$OUT/bench.log" 2>&1
    timeout 300 build-gpu/bin/wan_bench --checkpoint "$CKPT/$1.safetensors" --name "$2" \
      >>"$OUT/wan_bench.jsonl" 2>>"$OUT/bench.log"
    echo "$2 exit $?"
    # Parallel sampling on the two GPUs (issue #5).
    timeout 400 tests/bench/run_parallel_bench.sh build-gpu "$CKPT/$1.safetensors" "$2" \
      >>"$OUT/parallel_bench.jsonl" 2>>"$OUT/bench.log"
    echo "$2 parallel exit $?"
    rm -f "$CKPT/$1.safetensors"
  done
  cat "$OUT/wan_bench.jsonl" "$OUT/parallel_bench.jsonl"
fi
