#include "models/flux/flux_memory.h"

#include <algorithm>

#include "models/core/placed_checkpoint.h"
#include "models/flux/flux_loader.h"

namespace raylight::models::flux {

absl::StatusOr<FluxBytes> MeasureFlux(const std::vector<std::string>& paths,
                                      at::ScalarType compute_dtype, bool keep_fp8) {
  auto opened = OpenFluxCheckpoint(paths);
  if (!opened.ok()) return opened.status();
  PlacementOptions options;
  options.compute_dtype = compute_dtype;
  options.keep_fp8 = keep_fp8;
  auto placed = MeasurePlacedBytes(opened->checkpoint, FluxBlockLayout(opened->config), options);
  if (!placed.ok()) return placed.status();
  return FluxBytes{opened->config, placed->block_bytes, placed->global_bytes};
}

int64_t FluxActivationBytes(const FluxConfig& config, int64_t tokens_per_rank, int batch,
                            at::ScalarType compute_dtype) {
  const int64_t element = static_cast<int64_t>(c10::elementSize(compute_dtype));
  const int64_t rows = tokens_per_rank * std::max(batch, 1);
  const int64_t residual = rows * config.hidden * 4 * 2;
  // The fused projection's output (q, k, v and the MLP input: twice the MLP width for SwiGLU).
  const int64_t projection = rows * (3 * config.hidden + config.mlp_in()) * element * 2;
  const int64_t attention = rows * config.hidden * (4 * element * 2 + 4);
  constexpr int64_t kWorkspaces = int64_t{512} << 20;
  return residual + std::max(projection, attention) + kWorkspaces;
}

PlacementInputs FluxPlacementInputs(const FluxBytes& bytes, int64_t activation_bytes) {
  PlacementInputs in;
  in.block_bytes = bytes.block_bytes;
  in.num_blocks = static_cast<int>(bytes.config.num_blocks());
  in.global_bytes = bytes.global_bytes;
  in.activation_bytes = activation_bytes;
  return in;
}

}  // namespace raylight::models::flux
