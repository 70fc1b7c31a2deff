// What a Flux model needs on a device, for the placement planner (models/core/placement_plan.h):
// its blocks' and other weights' bytes as placed, and an estimate of one forward's peak
// activations over the joint [text; image] sequence.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/core/placement_plan.h"
#include "models/flux/flux_config.h"

namespace raylight::models::flux {

struct FluxBytes {
  FluxConfig config;
  int64_t block_bytes = 0;  // the largest block (a double-stream one)
  int64_t global_bytes = 0;
};

// Reads the checkpoint's header (mapped, nothing copied).
absl::StatusOr<FluxBytes> MeasureFlux(const std::vector<std::string>& paths,
                                      at::ScalarType compute_dtype, bool keep_fp8 = true);

// One forward's peak activations on a rank holding `tokens_per_rank` joint tokens of `batch`
// samples: the fp32 residual stream and its normed copy, q, k, v and the attention output with
// the Ulysses copies, and a single block's fused projection (3 x hidden + the MLP's 4 x hidden,
// the largest), plus a fixed allowance for cuBLAS and NCCL workspaces. An estimate with room.
int64_t FluxActivationBytes(const FluxConfig& config, int64_t tokens_per_rank, int batch,
                            at::ScalarType compute_dtype);

PlacementInputs FluxPlacementInputs(const FluxBytes& bytes, int64_t activation_bytes);

}  // namespace raylight::models::flux
