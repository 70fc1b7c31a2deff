// Qwen-Image's registration as a family, torch-free (family_registry.h, families.inc), and its
// conditioning files: one safetensors file per prompt holding
//
//   "text"  [L, context_dim] or [1, L, context_dim]   Qwen2.5-VL's last hidden states (3584 wide),
//                                                     the template's prefix dropped as ComfyUI's
//                                                     encoder drops it
//   "reference_latent_0", ... [16, h, w], [1, 16, h, w] or [1, 16, 1, h, w] (optional)
//                            Qwen-Image-Edit's reference images as LATENTs (the VAE's space, what
//                            ComfyUI's ReferenceLatent node attaches), any size
//
// Any float dtype.
#pragma once

#include <string>

#include "models/core/safetensors.h"
#include "models/family/family_registry.h"
#include "models/flux/flux_config.h"

namespace raylight::models::qwen_image {

absl::Status CheckQwenImageConditioningHeader(const StHeader& header, const std::string& where,
                                              const flux::FluxConfig& config);

ModelInfo QwenImageModelInfo(const flux::FluxConfig& config);
FamilyInspection Inspection();

}  // namespace raylight::models::qwen_image
