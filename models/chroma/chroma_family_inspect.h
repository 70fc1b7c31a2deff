// Chroma's registration as a family, torch-free (family_registry.h, families.inc), and its
// conditioning files: Flux's layout without the pooled vector and the references,
//
//   "text"      [L, 4096] or [1, L, 4096]   T5-XXL's last hidden states, unpadded as ComfyUI's
//                                           Chroma encoder gives them
//   "guidance"  [] or [1] (optional)        what its approximator takes as guidance; absent: 0,
//                                           ComfyUI's and diffusers' value
#pragma once

#include <string>

#include "models/core/safetensors.h"
#include "models/family/family_registry.h"
#include "models/flux/flux_config.h"

namespace raylight::models::chroma {

absl::Status CheckChromaConditioningHeader(const StHeader& header, const std::string& where,
                                           const flux::FluxConfig& config);

ModelInfo ChromaModelInfo(const flux::FluxConfig& config);
FamilyInspection Inspection();

}  // namespace raylight::models::chroma
