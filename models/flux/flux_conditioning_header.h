// Flux conditioning files, one safetensors file per prompt (ComfyUI's CONDITIONING for Flux: the
// T5 tokens, with the CLIP-L pooled vector and the FluxGuidance strength beside them):
//
//   "text"      [L, context_dim] or [1, L, context_dim]   T5-XXL's last hidden states (4096 wide)
//   "pooled"    [vec_dim] or [1, vec_dim] (optional)      CLIP-L's pooled output (768); absent:
//                                                         zeros, as ComfyUI without one
//   "guidance"  [] or [1] (optional)                      the distilled guidance strength of a
//                                                         dev / Krea model; absent: 3.5, ComfyUI's
//                                                         default; ignored by schnell
//
//   "reference_latent_0", "reference_latent_1", ... [16, h, w] or [1, 16, h, w] (optional)
//                                                         Kontext's reference images as LATENTs
//                                                         (the VAE's space, what ComfyUI's
//                                                         ReferenceLatent node attaches), any size
//
// Any float dtype. The head checks the header (torch-free); the worker reads the values.
#pragma once

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "models/core/safetensors.h"
#include "models/flux/flux_config.h"

namespace raylight::models::flux {

// At most this many reference latents.
inline constexpr int kMaxFluxReferences = 8;

// ComfyUI's default guidance (its Flux model's extra_conds and the FluxGuidance node).
inline constexpr double kDefaultFluxGuidance = 3.5;

// The header's tensors against `config`; `where` starts every message.
absl::Status CheckFluxConditioningHeader(const StHeader& header, const std::string& where,
                                         const FluxConfig& config);

// CheckFluxConditioningHeader on a job's payload; `source` names it ("positive").
absl::Status CheckFluxConditioningBytes(absl::string_view bytes, const std::string& source,
                                        const FluxConfig& config);

}  // namespace raylight::models::flux
