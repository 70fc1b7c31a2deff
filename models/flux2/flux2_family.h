// FLUX.2's torch side as a family (family/diffusion_model.h, families.inc): the Flux forward's
// loading and model (flux_family.h) with FLUX.2's names and conditioning files.
#pragma once

#include "models/flux/flux_family.h"

namespace raylight::models::flux2 {

const flux::FluxArchitecture& Flux2Architecture();

absl::StatusOr<flux::LoadedFlux> LoadFlux2(
    const std::vector<std::string>& paths, const PlacementOptions& options,
    const WeightPlacement& placement = WeightPlacement::Resident(),
    const std::vector<LoraFile>& loras = {});

FamilyModels Models();

}  // namespace raylight::models::flux2
