// FLUX.2's registration as a family, torch-free (family_registry.h, families.inc), and its
// conditioning files:
//
//   "text"      [L, 15360] or [1, L, 15360]   Mistral Small 3.1's hidden states, as ComfyUI's
//                                             encoder gives them; ComfyUI's model pads them in
//                                             front with zero rows to 512, and so does ours
//   "guidance"  [] or [1] (optional)          the distilled guidance strength; absent: 3.5
#pragma once

#include <string>

#include "models/core/safetensors.h"
#include "models/family/family_registry.h"
#include "models/flux/flux_config.h"

namespace raylight::models::flux2 {

// ComfyUI's Flux2 model pads the text to this many tokens (zero rows in front).
inline constexpr int64_t kFlux2TextTokens = 512;

absl::Status CheckFlux2ConditioningHeader(const StHeader& header, const std::string& where,
                                          const flux::FluxConfig& config);

ModelInfo Flux2ModelInfo(const flux::FluxConfig& config);
FamilyInspection Inspection();

}  // namespace raylight::models::flux2
