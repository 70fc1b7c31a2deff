#!/usr/bin/env bash
# The communicator benchmark on a GPU host: raylight's Communicator (comm_bench) and the
# torch.distributed anchor, in the same call, on the same GPUs. Writes raw JSON lines to
# OUT_DIR; tests/bench/report.py turns them into BENCHMARKS.md rows and a results file.
#
#   tests/bench/run_comm_bench.sh BUILD_DIR OUT_DIR [NPROCS]
set -euo pipefail
BUILD=$1
OUT_DIR=$2
NPROCS=${3:-2}
SIZES=${SIZES_MIB:-1,16,64,256}
ITERS=${ITERS:-50}
export NCCL_NVLS_ENABLE=0 TORCH_SYMM_MEM_DISABLE_MULTICAST=1 NVSHMEM_DISABLE_NVLS=1
mkdir -p "$OUT_DIR"
: > "$OUT_DIR/comm_raylight.jsonl"
: > "$OUT_DIR/comm_torch.jsonl"
# Alternate the two twice, so that neither always runs on a cold or a warm machine.
for round in 1 2; do
  "$BUILD/bin/comm_bench" --backend=nccl --nprocs="$NPROCS" --sizes_mib="$SIZES" \
    --iters="$ITERS" --json="$OUT_DIR/comm_raylight.jsonl"
  python3 "$(dirname "$0")/torch_comm_anchor.py" --nprocs "$NPROCS" --sizes-mib "$SIZES" \
    --iters "$ITERS" --json "$OUT_DIR/comm_torch.jsonl"
done
