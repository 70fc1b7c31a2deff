#include "models/wan/wan_memory.h"

#include <algorithm>
#include <map>

#include "models/wan/wan_loader.h"
#include "models/wan/wan_model.h"

namespace raylight::models::wan {

absl::StatusOr<WanBytes> MeasureWan(const std::vector<std::string>& paths,
                                    at::ScalarType compute_dtype, bool keep_fp8) {
  auto opened = OpenWanCheckpoint(paths);
  if (!opened.ok()) return opened.status();
  WanBytes bytes;
  bytes.config = opened->config;
  PlacementOptions options;
  options.compute_dtype = compute_dtype;
  options.keep_fp8 = keep_fp8;
  BlockLayout layout;
  layout.num_blocks = static_cast<int>(opened->config.num_layers);
  std::map<int, int64_t> per_block;
  for (const auto& [name, tensor] : opened->checkpoint.tensors) {
    auto owner = BlockOf(name, layout);
    if (!owner.ok()) return owner.status();
    const at::ScalarType placed =
        PlacedDtype(tensor, /*in_block=*/owner->first >= 0, WanKeepsFp32(name), options);
    // Kept encoded: the stored bytes; decoded at load: the values in the placed dtype.
    const int64_t placed_bytes =
        placed == tensor.data.scalar_type() && tensor.encoded()
            ? tensor.data.nbytes()
            : tensor.value_numel() * static_cast<int64_t>(c10::elementSize(placed));
    if (owner->first < 0) {
      bytes.global_bytes += placed_bytes;
    } else {
      per_block[owner->first] += placed_bytes;
    }
  }
  for (const auto& [index, block] : per_block) {
    bytes.block_bytes = std::max(bytes.block_bytes, block);
  }
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
