// CLIP vision transformers (Wan 2.1 I2V / FLF2V's image encoder: ViT-H/14, ComfyUI's
// clip_vision_h.safetensors) — configs, weight names and their detection. The internal names are
// Hugging Face's (`embeddings.patch_embedding.weight`, `encoder.layers.0.self_attn.q_proj.weight`,
// ...) without the `vision_model.` prefix ComfyUI's and transformers' files carry. Torch-free: the
// head checks image-encoder files with it.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace raylight::models::vision {

struct ClipVisionConfig {
  std::string name = "custom";
  int64_t width = 1280;  // hidden size
  int64_t heads = 16;
  int64_t layers = 32;
  int64_t mlp = 5120;
  int64_t patch = 14;
  int64_t image_size = 224;
  int64_t projection = 1024;  // 0: no visual projection
  // "gelu" (exact: LAION's ViT-H / bigG) or "quick_gelu" (OpenAI's ViT-B / ViT-L).
  std::string activation = "gelu";
  double eps = 1e-5;

  int64_t tokens() const { return (image_size / patch) * (image_size / patch) + 1; }
};

// Any spelling ComfyUI and transformers write (`vision_model.` prefix, optionally under
// `clip_vision.`) -> the internal name; nullopt for keys that are not vision-tower weights.
std::optional<std::string> NormalizeClipVisionKey(const std::string& raw);

// Every weight `config` needs: internal name -> shape.
std::map<std::string, std::vector<int64_t>> ClipVisionWeightShapes(const ClipVisionConfig& config);

// The config of a checkpoint from its shapes by internal name: width, patch and image size from
// the embeddings, layers from their count; heads and activation by width (CLIP's towers: 768 ->
// 12 heads, 1024 and 1280 -> 16, 1664 -> 16; quick_gelu for OpenAI's 768 and 1024, gelu beyond),
// `heads` overriding. Every weight's shape is checked; errors name the weight.
absl::StatusOr<ClipVisionConfig> DetectClipVisionConfig(
    const std::map<std::string, std::vector<int64_t>>& shapes, int64_t heads = 0);

}  // namespace raylight::models::vision
