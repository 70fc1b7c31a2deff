#include "models/wan/wan_family.h"

#include "models/wan/wan_family_inspect.h"
#include "models/wan/wan_memory.h"

namespace raylight::models::wan {

WanDiffusionModel::WanDiffusionModel(LoadedWan loaded)
    : DiffusionModel(WanModelInfo(loaded.config)), wan_(std::move(loaded)) {}

bool WanDiffusionModel::SameArchitecture(const DiffusionModel& other) const {
  const auto* wan = dynamic_cast<const WanDiffusionModel*>(&other);
  return wan != nullptr && wan->config().SameArchitecture(config());
}

const LatentFormat& WanDiffusionModel::latent_format() const {
  return config().out_channels == Wan22LatentFormat().channels ? Wan22LatentFormat()
                                                               : Wan21LatentFormat();
}

FamilyModels Models() {
  return FamilyModels{
      .name = "wan",
      .load = [](const std::vector<std::string>& paths, const PlacementOptions& options,
                 const WeightPlacement& placement, const std::vector<LoraFile>& loras)
          -> absl::StatusOr<std::unique_ptr<DiffusionModel>> {
        absl::StatusOr<LoadedWan> loaded;
        switch (placement.kind) {
          case WeightPlacement::Kind::kResident:
            loaded = LoadWanResident(paths, options, loras);
            break;
          case WeightPlacement::Kind::kSharded:
            loaded = LoadWanSharded(paths, options, *placement.group, placement.shards, loras);
            break;
          case WeightPlacement::Kind::kSwapped:
            loaded = LoadWanSwapped(paths, options, placement.swap, loras);
            break;
        }
        if (!loaded.ok()) return loaded.status();
        return std::make_unique<WanDiffusionModel>(*std::move(loaded));
      },
      .measure = [](const std::vector<std::string>& paths,
                    at::ScalarType dtype) -> absl::StatusOr<MeasuredModel> {
        auto bytes = MeasureWan(paths, dtype);
        if (!bytes.ok()) return bytes.status();
        MeasuredModel measured;
        measured.bytes = WanPlacementInputs(*bytes, 0);
        measured.activation_bytes = [config = bytes->config, dtype](int64_t tokens, int batch) {
          return WanActivationBytes(config, tokens, batch, dtype);
        };
        return measured;
      }};
}

}  // namespace raylight::models::wan
