#include "models/vision/clip_vision_config.h"

#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace raylight::models::vision {

std::optional<std::string> NormalizeClipVisionKey(const std::string& raw) {
  absl::string_view key = raw;
  absl::ConsumePrefix(&key, "clip_vision.");
  if (key == "visual_projection.weight") return std::string(key);
  if (!absl::ConsumePrefix(&key, "vision_model.")) return std::nullopt;
  for (absl::string_view part :
       {"embeddings.", "pre_layrnorm.", "encoder.layers.", "post_layernorm."}) {
    if (absl::StartsWith(key, part)) return std::string(key);
  }
  return std::nullopt;
}

std::map<std::string, std::vector<int64_t>> ClipVisionWeightShapes(const ClipVisionConfig& c) {
  std::map<std::string, std::vector<int64_t>> shapes;
  const int64_t d = c.width;
  shapes["embeddings.class_embedding"] = {d};
  shapes["embeddings.patch_embedding.weight"] = {d, 3, c.patch, c.patch};
  shapes["embeddings.position_embedding.weight"] = {c.tokens(), d};
  for (const char* norm : {"pre_layrnorm", "post_layernorm"}) {
    shapes[absl::StrCat(norm, ".weight")] = {d};
    shapes[absl::StrCat(norm, ".bias")] = {d};
  }
  for (int64_t i = 0; i < c.layers; ++i) {
    const std::string layer = absl::StrCat("encoder.layers.", i, ".");
    for (const char* projection : {"q_proj", "k_proj", "v_proj", "out_proj"}) {
      shapes[absl::StrCat(layer, "self_attn.", projection, ".weight")] = {d, d};
      shapes[absl::StrCat(layer, "self_attn.", projection, ".bias")] = {d};
    }
    for (const char* norm : {"layer_norm1", "layer_norm2"}) {
      shapes[absl::StrCat(layer, norm, ".weight")] = {d};
      shapes[absl::StrCat(layer, norm, ".bias")] = {d};
    }
    shapes[layer + "mlp.fc1.weight"] = {c.mlp, d};
    shapes[layer + "mlp.fc1.bias"] = {c.mlp};
    shapes[layer + "mlp.fc2.weight"] = {d, c.mlp};
    shapes[layer + "mlp.fc2.bias"] = {d};
  }
  if (c.projection > 0) shapes["visual_projection.weight"] = {c.projection, d};
  return shapes;
}

absl::StatusOr<ClipVisionConfig> DetectClipVisionConfig(
    const std::map<std::string, std::vector<int64_t>>& shapes, int64_t heads) {
  auto shape_of = [&](const std::string& name) -> const std::vector<int64_t>* {
    auto it = shapes.find(name);
    return it == shapes.end() ? nullptr : &it->second;
  };
  const auto* patch = shape_of("embeddings.patch_embedding.weight");
  const auto* positions = shape_of("embeddings.position_embedding.weight");
  const auto* fc1 = shape_of("encoder.layers.0.mlp.fc1.weight");
  if (patch == nullptr || patch->size() != 4 || positions == nullptr || positions->size() != 2 ||
      fc1 == nullptr || fc1->size() != 2) {
    return absl::InvalidArgumentError(
        "CLIP vision: no vision tower (embeddings.patch_embedding, position_embedding, "
        "encoder.layers.0.mlp.fc1)");
  }
  ClipVisionConfig config;
  config.width = (*patch)[0];
  config.patch = (*patch)[2];
  config.mlp = (*fc1)[0];
  const int64_t grid = static_cast<int64_t>(std::llround(std::sqrt((*positions)[0] - 1)));
  config.image_size = grid * config.patch;
  config.layers = 0;
  while (shapes.contains(absl::StrCat("encoder.layers.", config.layers, ".mlp.fc1.weight"))) {
    ++config.layers;
  }
  const auto* projection = shape_of("visual_projection.weight");
  config.projection = projection != nullptr && projection->size() == 2 ? (*projection)[0] : 0;
  config.heads = heads > 0              ? heads
                 : config.width == 768  ? 12
                 : config.width >= 1024 ? 16
                                        : std::max<int64_t>(1, config.width / 64);
  config.activation = config.width <= 1024 ? "quick_gelu" : "gelu";
  if (config.width % config.heads != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "CLIP vision: width ", config.width, " does not split into ", config.heads, " heads"));
  }
  for (const auto& [name, shape] : ClipVisionWeightShapes(config)) {
    const auto* found = shape_of(name);
    if (found == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat("CLIP vision: missing weight ", name));
    }
    if (*found != shape) {
      return absl::InvalidArgumentError(absl::StrCat("CLIP vision: ", name, " has shape [",
                                                     absl::StrJoin(*found, ", "), "], expected [",
                                                     absl::StrJoin(shape, ", "), "]"));
    }
  }
  if (config.width == 1280 && config.layers == 32 && config.patch == 14) config.name = "vit-h-14";
  return config;
}

}  // namespace raylight::models::vision
