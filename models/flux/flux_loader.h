// Opening a Flux checkpoint (any spelling, safetensors shards, fp8-scaled or GGUF) and placing its
// weights: the double-stream blocks then the single-stream ones form one flat sequence of
// blocks for every placement (resident, FSDP, layer swap).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/core/checkpoint.h"
#include "models/core/lora.h"
#include "models/core/placed_checkpoint.h"
#include "models/core/weights.h"
#include "models/flux/flux_config.h"

namespace raylight::models::flux {

struct OpenedFlux {
  Checkpoint checkpoint;
  FluxConfig config;
};
absl::StatusOr<OpenedFlux> OpenFluxCheckpoint(const std::vector<std::string>& paths);

// Block i of a config: double-stream block i below config.depth, single-stream block
// i - depth after.
BlockLayout FluxBlockLayout(const FluxConfig& config);

// The modules a LoRA may name that `checkpoint` stores in other rows (flux_keys.h FluxLoraRows).
LoraRowMap LoraRowsOf(const Checkpoint& checkpoint, const FluxConfig& config);

struct LoadedFlux {
  FluxConfig config;
  std::unique_ptr<WeightProvider> weights;
  LoraReport loras;
};

absl::StatusOr<LoadedFlux> LoadFlux(const std::vector<std::string>& paths,
                                    const PlacementOptions& options,
                                    const WeightPlacement& placement = WeightPlacement::Resident(),
                                    const std::vector<LoraFile>& loras = {});

}  // namespace raylight::models::flux
