// Qwen-Image (and Qwen-Image-Edit, the same network) checkpoints: diffusers'
// QwenImageTransformer2DModel names, which ComfyUI's files keep under `model.diffusion_model.`.
// Its blocks are Flux's double-stream blocks (models/flux: the same modulation, joint attention,
// QK norms and GELU MLPs), so its names map onto Flux's internal ones and the Flux forward runs
// it from a FluxConfig: 0 single blocks, no pooled vector, txt_norm before txt_in, Qwen's RoPE
// positions. Torch-free: the head inspects checkpoints with it.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/core/weight_shapes.h"
#include "models/flux/flux_config.h"

namespace raylight::models::qwen_image {

// "qwen-image" (20B: 60 blocks of 24 heads of 128, text 3584 wide) and the test size
// "tiny-qwen-image" (2 blocks of 4 heads of 32, text 48 wide).
absl::StatusOr<flux::FluxConfig> QwenImagePreset(const std::string& name);
std::vector<std::string> QwenImagePresetNames();

// A raw key -> Flux's internal name; nullopt for keys that are not Qwen-Image weights.
std::optional<std::string> NormalizeQwenImageKey(const std::string& raw);

// Whether the names (normalised) are a Qwen-Image transformer's.
bool LooksLikeQwenImage(const KeyShapes& checkpoint);

// The config from the shapes (widths from img_in / txt_in / the MLP, heads from the query norm,
// blocks from the names); the name of the preset whose sizes match (fewer blocks allowed), else
// "custom". Then every weight's shape, missing and extra ones in one error.
absl::StatusOr<flux::FluxConfig> DetectQwenImageConfig(const KeyShapes& checkpoint);
absl::Status CheckQwenImageWeights(const KeyShapes& checkpoint, const flux::FluxConfig& config);

}  // namespace raylight::models::qwen_image
