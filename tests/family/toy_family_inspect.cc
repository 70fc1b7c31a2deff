// The toy family's torch-free half: its names, its ModelInfo, its conditioning check.
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/family/family_registry.h"
#include "tests/family/toy_family.h"

namespace raylight::toy_family {
namespace {

using models::KeyShapes;
using models::ModelInfo;

absl::Status CheckConditioning(const models::StHeader& header, const std::string& where) {
  const models::StTensorInfo* text = header.Find("text");
  if (text == nullptr) return absl::InvalidArgumentError(absl::StrCat(where, ": no 'text'"));
  std::vector<int64_t> shape = text->shape;
  if (shape.size() == 3 && shape[0] == 1) shape.erase(shape.begin());
  if (shape.size() != 2 || shape[0] < 1 || shape[1] != kTextWidth ||
      text->dtype != models::StDtype::kF32) {
    return absl::InvalidArgumentError(absl::StrCat(where, ": 'text' is [",
                                                   absl::StrJoin(text->shape, ", "),
                                                   "]; the toy takes F32 [L, ", kTextWidth, "]"));
  }
  return absl::OkStatus();
}

absl::StatusOr<ModelInfo> Inspect(const KeyShapes& shapes) {
  const auto& proj = shapes.shapes.find("proj.weight");
  if (proj->second != std::vector<int64_t>{kChannels, kTextWidth}) {
    return absl::InvalidArgumentError("toy: proj.weight is not [4, 8]");
  }
  ModelInfo info;
  info.family = "toy";
  info.variant = "toy-dit";
  info.num_heads = 2;
  info.video = false;
  info.latent_channels = kChannels;
  info.spatial_factor = 8;
  info.temporal_factor = 1;
  info.patch_t = info.patch_h = info.patch_w = 1;
  info.sampling = models::SamplingKind::kShiftedFlow;
  info.default_shift = 3.0;
  info.check_conditioning = CheckConditioning;
  return info;
}

}  // namespace

absl::Status RegisterToyFamily() {
  return models::RegisterFamily(models::FamilyInspection{
      .name = "toy",
      .normalize_key = [](const std::string& raw) -> std::optional<std::string> {
        if (!absl::StartsWith(raw, "toy.")) return std::nullopt;
        return raw.substr(4);
      },
      .claims = [](const KeyShapes& shapes) { return shapes.shapes.contains("proj.weight"); },
      .inspect = Inspect});
}

}  // namespace raylight::toy_family
