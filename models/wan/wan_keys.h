// Wan checkpoint names: the three spellings (official, ComfyUI with its `model.diffusion_model.`
// prefix, diffusers) mapped to one internal naming (the official one), the full list of weights a
// config needs with their shapes, and detection of the variant from a checkpoint's keys and shapes.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/core/weight_shapes.h"
#include "models/wan/wan_config.h"

namespace raylight::models::wan {

// Any spelling -> internal (official) name; nullopt for keys that are not Wan transformer weights.
std::optional<std::string> NormalizeWanKey(const std::string& raw);

// Internal name -> diffusers spelling (the checkpoint maker writes all three spellings).
std::string ToDiffusersKey(const std::string& internal);

// Every weight `config` needs, internal name -> shape.
std::map<std::string, std::vector<int64_t>> WanWeightShapes(const WanConfig& config);

// What detection needs from a checkpoint: no tensor data, so that it runs on headers alone (the
// head validates jobs without libtorch).
using WanKeyShapes = KeyShapes;

// The config a checkpoint holds: family from the keys (img_emb: I2V; 48 input channels: TI2V),
// sizes from the shapes, layers from the block count, heads from the matching preset (or the
// `num_heads` metadata entry, else dim / 128). The name is the preset whose sizes match, with
// fewer layers allowed, else "custom".
absl::StatusOr<WanConfig> DetectWanConfig(const WanKeyShapes& checkpoint);

}  // namespace raylight::models::wan
