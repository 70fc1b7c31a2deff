#include "models/family/diffusion_model.h"

#include "absl/strings/str_cat.h"

namespace raylight::models {

#define RAYLIGHT_FAMILY(name) \
  namespace name {            \
  FamilyModels Models();      \
  }
#include "models/family/families.inc"
#undef RAYLIGHT_FAMILY

namespace {

std::vector<FamilyModels>& Registry() {
  static auto* families = new std::vector<FamilyModels>{
#define RAYLIGHT_FAMILY(name) name::Models(),
#include "models/family/families.inc"
#undef RAYLIGHT_FAMILY
  };
  return *families;
}

absl::StatusOr<const FamilyModels*> ModelsOf(const ModelInfo& info) {
  for (const FamilyModels& family : Registry()) {
    if (family.name == info.family) return &family;
  }
  return absl::FailedPreconditionError(absl::StrCat("family '", info.family, "' (", info.variant,
                                                    ") has no registered loader in this worker"));
}

}  // namespace

absl::Status RegisterFamilyModels(FamilyModels family) {
  if (family.name.empty() || !family.load || !family.measure) {
    return absl::InvalidArgumentError(
        absl::StrCat("family '", family.name, "': a name, load and measure are required"));
  }
  for (const FamilyModels& known : Registry()) {
    if (known.name == family.name) {
      return absl::AlreadyExistsError(absl::StrCat("family '", family.name, "' is registered"));
    }
  }
  Registry().push_back(std::move(family));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<DiffusionModel>> LoadDiffusionModel(
    const std::vector<std::string>& paths, const PlacementOptions& options,
    const WeightPlacement& placement, const std::vector<LoraFile>& loras) {
  auto info = InspectModel(paths);
  if (!info.ok()) return info.status();
  auto family = ModelsOf(*info);
  if (!family.ok()) return family.status();
  if (!loras.empty() && !info->merges_loras) {
    return absl::InvalidArgumentError(
        absl::StrCat("loras: ", info->variant, " (", info->family, ") takes no LoRAs yet"));
  }
  if (options.fp8_compute && !info->computes_fp8) {
    return absl::InvalidArgumentError(absl::StrCat("compute: fp8: ", info->variant, " (",
                                                   info->family, ") has no fp8 forward yet"));
  }
  return (*family)->load(paths, options, placement, loras);
}

absl::StatusOr<MeasuredModel> MeasureDiffusionModel(const std::vector<std::string>& paths,
                                                    at::ScalarType dtype) {
  auto info = InspectModel(paths);
  if (!info.ok()) return info.status();
  auto family = ModelsOf(*info);
  if (!family.ok()) return family.status();
  auto measured = (*family)->measure(paths, dtype);
  if (!measured.ok()) return measured.status();
  measured->info = *std::move(info);
  return measured;
}

}  // namespace raylight::models
