// Flux.1's torch side as a family (family/diffusion_model.h, families.inc), and what every family
// on the Flux forward shares: the loaded model and its forward under a job's conditioning files.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "models/core/checkpoint.h"
#include "models/family/diffusion_model.h"
#include "models/flux/flux_loader.h"
#include "models/flux/flux_model.h"

namespace raylight::models::flux {

// What a family whose network is the Flux forward (Flux.1, Chroma, Qwen-Image) tells about
// itself; the rest (loading in any placement, sizing for the planner, the DiffusionModel, its
// forward under a job's files) is shared.
struct FluxArchitecture {
  std::string family;
  KeyNormalizer normalize;
  // The config of a checkpoint's names (normalised), its weights' shapes checked.
  std::function<absl::StatusOr<FluxConfig>(const KeyShapes&)> detect;
  std::function<ModelInfo(const FluxConfig&)> info;
  const LatentFormat& (*latent_format)();
  // A conditioning file's inputs on `device` (the context; the pooled vector, guidance and
  // references where the family has them); errors name `field`.
  std::function<absl::StatusOr<FluxInputs>(const std::string& bytes, const std::string& field,
                                           const FluxConfig& config, at::Device device)>
      read_conditioning;
  bool frame_axis = false;  // its LATENT is [B, C, 1, H, W] (Qwen-Image)
};

absl::StatusOr<LoadedFlux> LoadFluxArchitecture(const FluxArchitecture& architecture,
                                                const std::vector<std::string>& paths,
                                                const PlacementOptions& options,
                                                const WeightPlacement& placement,
                                                const std::vector<LoraFile>& loras);
FamilyModels FluxArchitectureModels(FluxArchitecture architecture);

// The Flux forward under a job's two conditionings (their context, pooled vector, guidance and
// references; x and t come with each call), for every family the Flux forward runs (Flux, Chroma,
// Qwen-Image). `frame_axis`: x is [B, C, 1, H, W] (Qwen-Image's LATENT), the output too.
std::unique_ptr<ConditionedForward> MakeFluxForward(const FluxConfig& config,
                                                    WeightProvider& weights, FluxInputs positive,
                                                    FluxInputs negative, bool frame_axis = false);

FamilyModels Models();

}  // namespace raylight::models::flux
