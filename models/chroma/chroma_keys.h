// Chroma (lodestones' Flux.1-schnell derivative: Chroma1-HD, Chroma1-Base) checkpoints: BFL's names
// (ComfyUI's files, under `model.diffusion_model.`) and diffusers' ChromaTransformer2DModel, onto
// Flux's internal names. Its blocks are Flux's without their modulation linears, and its
// modulation is one table its "distilled guidance layer" computes (FluxConfig::approximator_*),
// so the Flux forward runs it. Torch-free: the head inspects checkpoints with it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/core/weight_shapes.h"
#include "models/flux/flux_config.h"

namespace raylight::models::chroma {

// "chroma" (8.9B: 19 double and 38 single blocks of 24 heads of 128, T5 4096 wide, a 5120-wide
// approximator of 5 layers) and the test size "tiny-chroma" (the same blocks, 4 heads of 32,
// T5 48 wide, approximator 64 wide: ComfyUI's 344 modulation rows are exactly its blocks').
absl::StatusOr<flux::FluxConfig> ChromaPreset(const std::string& name);
std::vector<std::string> ChromaPresetNames();

// A raw key -> Flux's internal name; nullopt for keys that are not Chroma weights.
std::optional<std::string> NormalizeChromaKey(const std::string& raw);

// Whether the names (normalised) are a Chroma transformer's: its approximator and Flux's inputs.
bool LooksLikeChroma(const KeyShapes& checkpoint);

// The config from the shapes (the preset whose sizes match, fewer blocks allowed, else
// "custom"), then every weight's shape, missing and extra ones in one error.
absl::StatusOr<flux::FluxConfig> DetectChromaConfig(const KeyShapes& checkpoint);
absl::Status CheckChromaWeights(const KeyShapes& checkpoint, const flux::FluxConfig& config);

}  // namespace raylight::models::chroma
