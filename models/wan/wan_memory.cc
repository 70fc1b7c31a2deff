#include "models/wan/wan_memory.h"

#include <algorithm>

#include "models/core/placed_checkpoint.h"
#include "models/wan/wan_loader.h"
#include "models/wan/wan_model.h"

namespace raylight::models::wan {

absl::StatusOr<WanBytes> MeasureWan(const std::vector<std::string>& paths,
                                    at::ScalarType compute_dtype, bool keep_fp8) {
  auto opened = OpenWanCheckpoint(paths);
  if (!opened.ok()) return opened.status();
  PlacementOptions options;
  options.compute_dtype = compute_dtype;
  options.keep_fp8 = keep_fp8;
  options.keep_fp32 = WanKeepsFp32;
  auto placed = MeasurePlacedBytes(
      opened->checkpoint, BlockLayout::Uniform(static_cast<int>(opened->config.num_layers)),
      options);
  if (!placed.ok()) return placed.status();
  WanBytes bytes;
  bytes.config = opened->config;
  bytes.block_bytes = placed->block_bytes;
  bytes.global_bytes = placed->global_bytes;
  return bytes;
}

int64_t WanActivationBytes(const WanConfig& config, int64_t tokens_per_rank, int batch,
                           at::ScalarType compute_dtype) {
  const int64_t element = static_cast<int64_t>(c10::elementSize(compute_dtype));
  const int64_t rows = tokens_per_rank * std::max(batch, 1);
  // Alive at the FFN's peak: the fp32 residual and its normed copy, the hidden layer and its
  // activation; at the attention's: q, k, v, the output and the all-to-all copies (about twice).
  const int64_t ffn = rows * (2 * config.ffn_dim * element + 2 * config.dim * 4);
  const int64_t attention = rows * config.dim * (4 * element * 2 + 4);
  constexpr int64_t kWorkspaces = int64_t{512} << 20;
  return std::max(ffn, attention) + kWorkspaces;
}

PlacementInputs WanPlacementInputs(const WanBytes& bytes, int64_t activation_bytes) {
  PlacementInputs in;
  in.block_bytes = bytes.block_bytes;
  in.num_blocks = static_cast<int>(bytes.config.num_layers);
  in.global_bytes = bytes.global_bytes;
  in.activation_bytes = activation_bytes;
  return in;
}

}  // namespace raylight::models::wan
