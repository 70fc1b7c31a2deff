// What a Wan model needs on a device, for the placement planner (models/core/placement_plan.h):
// its blocks' and other weights' bytes as placed (fp8 blocks stay fp8, Wan's fp32 weights fp32,
// the rest in the compute dtype), and an estimate of one forward's peak activations.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/core/placement_plan.h"
#include "models/wan/wan_config.h"

namespace raylight::models::wan {

struct WanBytes {
  WanConfig config;
  int64_t block_bytes = 0;  // the largest block (Wan's blocks are equal)
  int64_t global_bytes = 0;
};

// Reads the checkpoint's header (mapped, nothing copied).
absl::StatusOr<WanBytes> MeasureWan(const std::vector<std::string>& paths,
                                    at::ScalarType compute_dtype, bool keep_fp8 = true);

// One forward's peak activations on a rank holding `tokens_per_rank` tokens of `batch` samples:
// the block's residual stream in fp32, the attention's q, k, v and output, and the FFN's hidden
// layer (the largest), with a fixed allowance for cuBLAS and NCCL workspaces. An estimate with
// room, not a measurement: the planner keeps a further headroom of free memory.
int64_t WanActivationBytes(const WanConfig& config, int64_t tokens_per_rank, int batch,
                           at::ScalarType compute_dtype);

// The planner's inputs for this model and job on one rank (free memory filled in by the caller).
PlacementInputs WanPlacementInputs(const WanBytes& bytes, int64_t activation_bytes);

}  // namespace raylight::models::wan
