#include "models/family/model_info.h"

#include <algorithm>
#include <optional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/core/weight_shapes.h"
#include "models/family/family_registry.h"

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

absl::StatusOr<MagCacheSettings> MagCacheSettingsOf(const ModelInfo& info,
                                                    const MagCacheRequest& request, int64_t width,
                                                    int64_t height) {
  return MagCacheSettingsFor(
      info.published_mag_cache ? info.published_mag_cache(width, height) : std::nullopt, request,
      info.variant, "the authors published Wan 2.1's and Qwen-Image's");
}

absl::StatusOr<TeaCacheSettings> TeaCacheSettingsOf(const ModelInfo& info,
                                                    const TeaCacheRequest& request) {
  if (!info.tea_caches) {
    return absl::InvalidArgumentError(
        absl::StrCat("cache.kind: teacache: ", info.family, " models measure no TeaCache change"));
  }
  const std::optional<TeaCacheSettings> published =
      info.published_tea_cache ? info.published_tea_cache() : std::nullopt;
  TeaCacheSettings settings;
  settings.coefficients = request.coefficients;
  settings.threshold = request.threshold;
  if (settings.coefficients.empty()) {
    if (!published.has_value()) {
      return absl::NotFoundError(
          absl::StrCat("cache.coefficients: no published TeaCache coefficients for ", info.variant,
                       " (TeaCache4FLUX calibrated Flux.1-dev); give the job's own"));
    }
    settings.coefficients = published->coefficients;
  }
  if (settings.threshold == 0) {
    if (!published.has_value()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "cache.threshold: no published TeaCache threshold for ", info.variant, "; give one"));
    }
    settings.threshold = published->threshold;
  }
  // TeaCache4FLUX computes its counter's first and last call (cnt 0 and num_steps - 1).
  settings.retention_calls = 1;
  settings.cutoff_call = std::max(1, request.steps - 1);
  if (auto valid = ValidateTeaCacheSettings(settings); !valid.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("cache.", valid.message()));
  }
  return settings;
}

absl::StatusOr<ModelInfo> InspectModel(const std::vector<std::string>& paths) {
  // The headers are read once, with their raw names, and named by each family in turn.
  auto raw = ReadKeyShapes(
      paths, [](const std::string& key) -> std::optional<std::string> { return key; });
  if (!raw.ok()) return raw.status();
  std::vector<std::string> names;
  for (const FamilyInspection& family : Families()) {
    const KeyShapes shapes = RenamedKeyShapes(*raw, family.normalize_key);
    if (family.claims(shapes)) return family.inspect(shapes);
    names.push_back(family.name);
  }
  std::vector<std::string> examples;
  for (const auto& [key, shape] : raw->shapes) {
    if (examples.size() == 3) break;
    examples.push_back(absl::StrCat("'", key, "'"));
  }
  return absl::InvalidArgumentError(
      absl::StrCat(paths.empty() ? std::string("no files") : paths.front(),
                   ": not a diffusion transformer of a known family (", absl::StrJoin(names, ", "),
                   "); ", raw->shapes.size(), " tensors", examples.empty() ? "" : ", e.g. ",
                   absl::StrJoin(examples, ", ")));
}

}  // namespace raylight::models
