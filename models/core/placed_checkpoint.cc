#include "models/core/placed_checkpoint.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace raylight::models {

absl::StatusOr<PlacedCheckpoint> PlaceCheckpoint(
    Checkpoint& checkpoint, const BlockLayout& layout, const PlacementOptions& options,
    const WeightPlacement& placement, const std::vector<LoraFile>& loras,
    const KeyNormalizer& normalize, const std::string& model, const LoraRowMap& remapped) {
  if (placement.kind == WeightPlacement::Kind::kSharded && placement.group == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("loading ", model, ": sharding needs a group"));
  }
  // A resident placement keeps every weight on the device, so merged weights may stay there.
  const bool resident = placement.kind == WeightPlacement::Kind::kResident;
  const bool attach = placement.kind == WeightPlacement::Kind::kSharded;
  try {
    auto merged =
        ApplyLoras(checkpoint, loras, normalize, options.device, resident, attach, remapped);
    if (!merged.ok()) return merged.status();
    absl::StatusOr<std::unique_ptr<WeightProvider>> weights;
    switch (placement.kind) {
      case WeightPlacement::Kind::kResident:
        weights = ResidentWeights::Create(checkpoint, layout, options);
        break;
      case WeightPlacement::Kind::kSharded:
        weights =
            ShardedWeights::Create(checkpoint, layout, options, *placement.group, placement.shards);
        break;
      case WeightPlacement::Kind::kSwapped:
        weights = SwappedWeights::Create(checkpoint, layout, options, placement.swap);
        break;
    }
    if (!weights.ok()) return weights.status();
    return PlacedCheckpoint{*std::move(weights), *std::move(merged)};
  } catch (const c10::OutOfMemoryError& error) {
    return absl::ResourceExhaustedError(
        absl::StrCat("loading ", model, ": ", error.what_without_backtrace()));
  } catch (const c10::Error& error) {
    return absl::InternalError(
        absl::StrCat("loading ", model, ": ", error.what_without_backtrace()));
  }
}

absl::StatusOr<PlacedBytes> MeasurePlacedBytes(const Checkpoint& checkpoint,
                                               const BlockLayout& layout,
                                               const PlacementOptions& options) {
  PlacedBytes bytes;
  bytes.num_blocks = layout.num_blocks();
  std::vector<int64_t> per_block(bytes.num_blocks, 0);
  for (const auto& [name, tensor] : checkpoint.tensors) {
    auto owner = BlockOf(name, layout);
    if (!owner.ok()) return owner.status();
    const bool fp32 = options.keep_fp32 && options.keep_fp32(name);
    const at::ScalarType placed =
        PlacedDtype(tensor, /*in_block=*/owner->first >= 0, fp32, options);
    // Kept encoded: the stored bytes; decoded at load: the values in the placed dtype; fp8
    // compute: a byte a value and a float a row.
    const int64_t placed_bytes =
        PlacedAsFp8Linear(owner->second, tensor, owner->first >= 0, fp32, options)
            ? tensor.value_numel() + tensor.value_shape()[0] * static_cast<int64_t>(sizeof(float))
        : placed == tensor.data.scalar_type() && tensor.encoded()
            ? tensor.data.nbytes()
            : tensor.value_numel() * static_cast<int64_t>(c10::elementSize(placed));
    if (owner->first < 0) {
      bytes.global_bytes += placed_bytes;
    } else {
      per_block[owner->first] += placed_bytes;
    }
  }
  for (int64_t block : per_block) bytes.block_bytes = std::max(bytes.block_bytes, block);
  return bytes;
}

}  // namespace raylight::models
