#include "models/family/model_info.h"

#include <algorithm>

#include "models/core/weight_shapes.h"
#include "models/family/flux_info.h"
#include "models/family/wan_info.h"
#include "models/flux/flux_keys.h"
#include "models/wan/wan_keys.h"

namespace raylight::models {
int64_t ModelInfo::Tokens(int64_t frames, int64_t height, int64_t width) const {
  auto cells = [](int64_t side, int64_t patch) { return (side + patch - 1) / patch; };
  return cells(std::max<int64_t>(frames, 1), patch_t) * cells(height, patch_h) *
             cells(width, patch_w) +
         joint_text_tokens;
}

int64_t ModelInfo::PixelTokens(int64_t frames, int64_t height, int64_t width) const {
  const int64_t latent_frames =
      video ? (std::max<int64_t>(frames, 1) - 1) / temporal_factor + 1 : 1;
  return Tokens(latent_frames, height / spatial_factor, width / spatial_factor);
}

absl::StatusOr<ModelInfo> InspectModel(const std::vector<std::string>& paths) {
  // Flux first: its names are unmistakable, while Wan's detection is the fallback that explains
  // what a checkpoint of no family lacks.
  // The headers are read once, with their raw names, and named by each family in turn.
  auto raw = ReadKeyShapes(
      paths, [](const std::string& key) -> std::optional<std::string> { return key; });
  if (!raw.ok()) return raw.status();
  const KeyShapes flux_shapes = RenamedKeyShapes(*raw, flux::NormalizeFluxKey);
  if (flux::LooksLikeFlux(flux_shapes)) {
    auto config = flux::DetectFluxConfig(flux_shapes);
    if (!config.ok()) return config.status();
    if (auto status = flux::CheckFluxWeights(flux_shapes, *config); !status.ok()) return status;
    return FluxModelInfo(*config);
  }
  auto config = wan::DetectWanConfig(RenamedKeyShapes(*raw, wan::NormalizeWanKey));
  if (!config.ok()) return config.status();
  return WanModelInfo(*config);
}

}  // namespace raylight::models
