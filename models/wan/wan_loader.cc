#include "models/wan/wan_loader.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/core/placed_checkpoint.h"
#include "models/core/weight_shapes.h"
#include "models/wan/wan_keys.h"
#include "models/wan/wan_model.h"

namespace raylight::models::wan {

namespace {

// Missing keys, extra keys and wrong shapes, all listed in one error (by their names in the file).
absl::Status ValidateWanCheckpoint(const Checkpoint& checkpoint, const WanConfig& config) {
  WeightShapes actual;
  for (const auto& [name, tensor] : checkpoint.tensors) actual[name] = tensor.value_shape();
  return CheckWeightShapes(
      "Wan", config.name, WanWeightShapes(config), actual, checkpoint.unknown_keys,
      [&](const std::string& name) { return checkpoint.tensors.at(name).raw_name; });
}

}  // namespace

absl::StatusOr<OpenedWan> OpenWanCheckpoint(const std::vector<std::string>& paths) {
  auto checkpoint = OpenCheckpoint(paths, NormalizeWanKey);
  if (!checkpoint.ok()) return checkpoint.status();
  auto config = DetectWanConfig(KeyShapesOf(*checkpoint));
  if (!config.ok()) return config.status();
  if (auto status = ValidateWanCheckpoint(*checkpoint, *config); !status.ok()) return status;
  return OpenedWan{*std::move(checkpoint), *config};
}

namespace {

absl::StatusOr<LoadedWan> Load(const std::vector<std::string>& paths, PlacementOptions options,
                               const std::vector<LoraFile>& loras,
                               const WeightPlacement& placement) {
  auto opened = OpenWanCheckpoint(paths);
  if (!opened.ok()) return opened.status();
  if (!options.keep_fp32) options.keep_fp32 = WanKeepsFp32;
  auto placed = PlaceCheckpoint(opened->checkpoint,
                                BlockLayout::Uniform(static_cast<int>(opened->config.num_layers)),
                                options, placement, loras, NormalizeWanKey, opened->config.name);
  if (!placed.ok()) return placed.status();
  return LoadedWan{opened->config, std::move(placed->weights), std::move(placed->loras)};
}

}  // namespace

absl::StatusOr<LoadedWan> LoadWanResident(const std::vector<std::string>& paths,
                                          PlacementOptions options,
                                          const std::vector<LoraFile>& loras) {
  return Load(paths, std::move(options), loras, WeightPlacement::Resident());
}

absl::StatusOr<LoadedWan> LoadWanSharded(const std::vector<std::string>& paths,
                                         PlacementOptions options, comm::Communicator& group,
                                         const ShardOptions& shards,
                                         const std::vector<LoraFile>& loras) {
  return Load(paths, std::move(options), loras, WeightPlacement::Sharded(group, shards));
}

absl::StatusOr<LoadedWan> LoadWanSwapped(const std::vector<std::string>& paths,
                                         PlacementOptions options, const SwapOptions& swap,
                                         const std::vector<LoraFile>& loras) {
  return Load(paths, std::move(options), loras, WeightPlacement::Swapped(swap));
}

}  // namespace raylight::models::wan
