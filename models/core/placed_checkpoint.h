// One way for every model to go from an opened checkpoint to placed weights: its LoRAs merged (or
// attached, where a placement merges them itself), then the weights placed resident, sharded over
// a group (FSDP) or swapped from host memory. A model family supplies only its block layout, key
// normaliser and which weights stay fp32.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/core/checkpoint.h"
#include "models/core/lora.h"
#include "models/core/sharded_weights.h"
#include "models/core/swapped_weights.h"
#include "models/core/weights.h"
#include "models/parallel/comm/communicator.h"

namespace raylight::models {

struct WeightPlacement {
  enum class Kind { kResident, kSharded, kSwapped };
  Kind kind = Kind::kResident;
  comm::Communicator* group = nullptr;  // kSharded: the ranks sharing the weights
  ShardOptions shards;
  SwapOptions swap;

  static WeightPlacement Resident() { return {}; }
  static WeightPlacement Sharded(comm::Communicator& group, const ShardOptions& shards = {}) {
    return {.kind = Kind::kSharded, .group = &group, .shards = shards};
  }
  static WeightPlacement Swapped(const SwapOptions& swap) {
    return {.kind = Kind::kSwapped, .swap = swap};
  }
};

struct PlacedCheckpoint {
  std::unique_ptr<WeightProvider> weights;
  LoraReport loras;  // what the LoRAs patched, and their keys that named nothing
};

// Merges `loras` into `checkpoint` (an fp8 base is requantised over its scale, as ComfyUI does;
// FSDP attaches them so that each rank merges its own rows; `remapped`: the modules the
// checkpoint stores in other rows, lora.h) and places it. libtorch errors come
// back as a Status naming `model` (ResourceExhausted for out-of-memory).
absl::StatusOr<PlacedCheckpoint> PlaceCheckpoint(
    Checkpoint& checkpoint, const BlockLayout& layout, const PlacementOptions& options,
    const WeightPlacement& placement, const std::vector<LoraFile>& loras,
    const KeyNormalizer& normalize, const std::string& model, const LoraRowMap& remapped = {});

// What a checkpoint takes on a device as `options` would place it (fp8 and GGUF blocks kept
// encoded where they stay so, the rest in its placed dtype), read from the opened checkpoint with
// nothing copied: the placement planner's inputs.
struct PlacedBytes {
  int64_t block_bytes = 0;  // the largest block
  int num_blocks = 0;
  int64_t global_bytes = 0;  // everything outside the blocks
};
absl::StatusOr<PlacedBytes> MeasurePlacedBytes(const Checkpoint& checkpoint,
                                               const BlockLayout& layout,
                                               const PlacementOptions& options);

}  // namespace raylight::models
