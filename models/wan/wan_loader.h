// Opening a Wan checkpoint: files -> normalised names -> detected config -> validated -> weights
// placed by a provider. Every failure is an error naming the file and the key.
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
#include "models/wan/wan_config.h"

namespace raylight::models::wan {

// The checkpoint opened (mapped, names normalised), its config detected and validated.
struct OpenedWan {
  Checkpoint checkpoint;
  WanConfig config;
};
absl::StatusOr<OpenedWan> OpenWanCheckpoint(const std::vector<std::string>& paths);

struct LoadedWan {
  WanConfig config;
  std::unique_ptr<WeightProvider> weights;
  LoraReport loras;  // what the LoRAs patched, and their keys that named nothing
};

// Every placement merges `loras` (models/core/lora.h) into the opened checkpoint first.

// Resident placement on `options.device` (Wan's fp32 weights kept fp32).
absl::StatusOr<LoadedWan> LoadWanResident(const std::vector<std::string>& paths,
                                          PlacementOptions options,
                                          const std::vector<LoraFile>& loras = {});

// FSDP over `group` (sharded_weights.h): each rank reads and keeps 1/N of every block.
absl::StatusOr<LoadedWan> LoadWanSharded(const std::vector<std::string>& paths,
                                         PlacementOptions options, comm::Communicator& group,
                                         const ShardOptions& shards = {},
                                         const std::vector<LoraFile>& loras = {});

// Layer swap on one device (swapped_weights.h): the blocks beyond a budget stream from host memory.
absl::StatusOr<LoadedWan> LoadWanSwapped(const std::vector<std::string>& paths,
                                         PlacementOptions options, const SwapOptions& swap,
                                         const std::vector<LoraFile>& loras = {});

}  // namespace raylight::models::wan
