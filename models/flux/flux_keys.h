// Flux.1 checkpoint names: Black Forest Labs' own (also ComfyUI's, under its
// `model.diffusion_model.` prefix) and diffusers' FluxTransformer2DModel, mapped to one internal
// naming: BFL's, where a fused projection (a double block's `img_attn.qkv`, a single block's
// `linear1` = q, k, v and the MLP's input) that diffusers stores as separate matrices keeps its
// parts as `<fused>.q`, `<fused>.k`, `<fused>.v` (and `linear1.mlp`). The forward runs either form:
// one GEMM over a fused matrix, one per part otherwise. diffusers' final modulation stores
// (scale, shift) where BFL stores (shift, scale): it is named `final_layer.scale_shift`.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/core/weight_shapes.h"
#include "models/flux/flux_config.h"

namespace raylight::models::flux {

// Any spelling -> internal name; nullopt for keys that are not Flux transformer weights.
std::optional<std::string> NormalizeFluxKey(const std::string& raw);

// How a checkpoint stores the projections BFL fuses.
enum class FluxSpelling {
  kFused,  // BFL / ComfyUI
  kSplit,  // diffusers
};

// Every weight `config` needs in `spelling`, internal name -> shape.
WeightShapes FluxWeightShapes(const FluxConfig& config, FluxSpelling spelling);

using FluxKeyShapes = KeyShapes;

// Whether the names are a Flux transformer's (a double-stream block and the text input).
bool LooksLikeFlux(const FluxKeyShapes& checkpoint);

// The spelling the checkpoint's first block uses.
FluxSpelling SpellingOf(const FluxKeyShapes& checkpoint);

// The config from the shapes: widths from img_in / txt_in / vector_in / the MLP, heads from the
// query norm's width, block counts from the names, guidance from guidance_in. The name is the
// preset whose sizes match (fewer blocks allowed), else "custom".
absl::StatusOr<FluxConfig> DetectFluxConfig(const FluxKeyShapes& checkpoint);

// DetectFluxConfig and CheckFluxWeights on the headers of the checkpoint in `paths`.
absl::StatusOr<FluxConfig> InspectFluxCheckpoint(const std::vector<std::string>& paths);

// Missing, extra and wrongly shaped weights against `config`, in one error naming them.
absl::Status CheckFluxWeights(const FluxKeyShapes& checkpoint, const FluxConfig& config);

}  // namespace raylight::models::flux
