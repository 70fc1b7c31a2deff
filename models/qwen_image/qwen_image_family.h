// Qwen-Image's torch side as a family (family/diffusion_model.h, families.inc): the Flux
// forward's loading and model (flux_family.h) with Qwen-Image's names, conditioning files and
// one-frame LATENT.
#pragma once

#include "models/flux/flux_family.h"

namespace raylight::models::qwen_image {

const flux::FluxArchitecture& QwenImageArchitecture();

absl::StatusOr<flux::LoadedFlux> LoadQwenImage(
    const std::vector<std::string>& paths, const PlacementOptions& options,
    const WeightPlacement& placement = WeightPlacement::Resident(),
    const std::vector<LoraFile>& loras = {});

FamilyModels Models();

}  // namespace raylight::models::qwen_image
