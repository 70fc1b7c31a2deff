#include "models/family/diffusion_model.h"

#include "models/family/flux_info.h"
#include "models/family/wan_info.h"
#include "models/flux/flux_memory.h"
#include "models/wan/wan_memory.h"

namespace raylight::models {
WanDiffusionModel::WanDiffusionModel(wan::LoadedWan loaded)
    : DiffusionModel(WanModelInfo(loaded.config)), wan_(std::move(loaded)) {}

bool WanDiffusionModel::SameArchitecture(const DiffusionModel& other) const {
  const auto* wan = dynamic_cast<const WanDiffusionModel*>(&other);
  return wan != nullptr && wan->config().SameArchitecture(config());
}

FluxDiffusionModel::FluxDiffusionModel(flux::LoadedFlux loaded)
    : DiffusionModel(FluxModelInfo(loaded.config)), flux_(std::move(loaded)) {}

bool FluxDiffusionModel::SameArchitecture(const DiffusionModel& other) const {
  const auto* flux = dynamic_cast<const FluxDiffusionModel*>(&other);
  return flux != nullptr && flux->config().SameArchitecture(config());
}

absl::StatusOr<std::unique_ptr<DiffusionModel>> LoadDiffusionModel(
    const std::vector<std::string>& paths, const PlacementOptions& options,
    const WeightPlacement& placement, const std::vector<LoraFile>& loras) {
  auto info = InspectModel(paths);
  if (!info.ok()) return info.status();
  if (info->family == "flux") {
    auto loaded = flux::LoadFlux(paths, options, placement, loras);
    if (!loaded.ok()) return loaded.status();
    return std::make_unique<FluxDiffusionModel>(*std::move(loaded));
  }
  absl::StatusOr<wan::LoadedWan> loaded;
  switch (placement.kind) {
    case WeightPlacement::Kind::kResident:
      loaded = wan::LoadWanResident(paths, options, loras);
      break;
    case WeightPlacement::Kind::kSharded:
      loaded = wan::LoadWanSharded(paths, options, *placement.group, placement.shards, loras);
      break;
    case WeightPlacement::Kind::kSwapped:
      loaded = wan::LoadWanSwapped(paths, options, placement.swap, loras);
      break;
  }
  if (!loaded.ok()) return loaded.status();
  return std::make_unique<WanDiffusionModel>(*std::move(loaded));
}

absl::StatusOr<MeasuredModel> MeasureDiffusionModel(const std::vector<std::string>& paths,
                                                    at::ScalarType dtype) {
  auto info = InspectModel(paths);
  if (!info.ok()) return info.status();
  MeasuredModel measured;
  measured.info = *info;
  if (info->family == "flux") {
    auto bytes = flux::MeasureFlux(paths, dtype);
    if (!bytes.ok()) return bytes.status();
    measured.bytes = flux::FluxPlacementInputs(*bytes, 0);
    measured.activation_bytes = [config = bytes->config, dtype](int64_t tokens, int batch) {
      return flux::FluxActivationBytes(config, tokens, batch, dtype);
    };
    return measured;
  }
  auto bytes = wan::MeasureWan(paths, dtype);
  if (!bytes.ok()) return bytes.status();
  measured.bytes = wan::WanPlacementInputs(*bytes, 0);
  measured.activation_bytes = [config = bytes->config, dtype](int64_t tokens, int batch) {
    return wan::WanActivationBytes(config, tokens, batch, dtype);
  };
  return measured;
}

}  // namespace raylight::models
