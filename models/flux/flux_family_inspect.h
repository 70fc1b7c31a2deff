// Flux.1's registration as a family, torch-free (family_registry.h, families.inc).
#pragma once

#include "models/family/family_registry.h"
#include "models/flux/flux_config.h"

namespace raylight::models::flux {

ModelInfo FluxModelInfo(const FluxConfig& config);
FamilyInspection Inspection();

}  // namespace raylight::models::flux
