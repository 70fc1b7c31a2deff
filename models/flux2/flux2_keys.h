// FLUX.2 [dev] checkpoints in diffusers' Flux2Transformer2DModel names and in Black Forest Labs'
// own (which ComfyUI's `flux2_dev*.safetensors` use: fused `img_attn.qkv`, `linear1`,
// `double_stream_modulation_img.lin`, `final_layer.adaLN_modulation.1` in (shift, scale) order),
// onto Flux's internal ones: its blocks are Flux's double- and single-stream blocks with SwiGLU
// MLPs, no biases, and their modulation from three linears every block shares
// (FluxConfig::shared_modulation), so the Flux forward runs it.
// Torch-free: the head inspects checkpoints with it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/core/weight_shapes.h"
#include "models/flux/flux_config.h"

namespace raylight::models::flux2 {

// "flux2-dev" (32B: 8 double and 48 single blocks of 48 heads of 128, Mistral's 15360-wide text,
// a 128-channel latent in 1x1 patches, RoPE 32/32/32/32 at theta 2000) and "tiny-flux2" (2 + 2
// blocks of 4 heads of 32, text 48 wide, RoPE 8/8/8/8).
absl::StatusOr<flux::FluxConfig> Flux2Preset(const std::string& name);
std::vector<std::string> Flux2PresetNames();

// A raw key -> Flux's internal name; nullopt for keys that are not FLUX.2 weights.
std::optional<std::string> NormalizeFlux2Key(const std::string& raw);

// Whether the names (normalised) are a FLUX.2 transformer's: its shared modulation and inputs.
bool LooksLikeFlux2(const KeyShapes& checkpoint);

// The config from the shapes (the preset whose sizes match, fewer blocks allowed, else
// "custom"), its weights' shapes checked.
absl::StatusOr<flux::FluxConfig> DetectFlux2Config(const KeyShapes& checkpoint);

}  // namespace raylight::models::flux2
