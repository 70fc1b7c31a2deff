#include "models/wan/wan_loader.h"

#include "models/core/sharded_weights.h"
#include "models/wan/wan_keys.h"
#include "models/wan/wan_model.h"

namespace raylight::models::wan {

absl::StatusOr<OpenedWan> OpenWanCheckpoint(const std::vector<std::string>& paths) {
  auto checkpoint = OpenCheckpoint(paths, NormalizeWanKey);
  if (!checkpoint.ok()) return checkpoint.status();
  auto config = DetectWanConfig(*checkpoint);
  if (!config.ok()) return config.status();
  if (auto status = ValidateWanCheckpoint(*checkpoint, *config); !status.ok()) return status;
  return OpenedWan{*std::move(checkpoint), *config};
}

namespace {

// Opens the checkpoint and places it with `place(checkpoint, layout, options)`.
template <typename Place>
absl::StatusOr<LoadedWan> Load(const std::vector<std::string>& paths, PlacementOptions options,
                               Place place) {
  auto opened = OpenWanCheckpoint(paths);
  if (!opened.ok()) return opened.status();
  if (!options.keep_fp32) options.keep_fp32 = WanKeepsFp32;
  BlockLayout layout;
  layout.num_blocks = static_cast<int>(opened->config.num_layers);
  try {
    auto weights = place(opened->checkpoint, layout, options);
    if (!weights.ok()) return weights.status();
    return LoadedWan{opened->config, *std::move(weights)};
  } catch (const c10::OutOfMemoryError& error) {
    return absl::ResourceExhaustedError(
        absl::StrCat("loading ", opened->config.name, ": ", error.what_without_backtrace()));
  } catch (const c10::Error& error) {
    return absl::InternalError(
        absl::StrCat("loading ", opened->config.name, ": ", error.what_without_backtrace()));
  }
}

}  // namespace

absl::StatusOr<LoadedWan> LoadWanResident(const std::vector<std::string>& paths,
                                          PlacementOptions options) {
  return Load(
      paths, std::move(options),
      [](const Checkpoint& checkpoint, const BlockLayout& layout,
         const PlacementOptions& placement) -> absl::StatusOr<std::unique_ptr<WeightProvider>> {
        return ResidentWeights::Create(checkpoint, layout, placement);
      });
}

absl::StatusOr<LoadedWan> LoadWanSharded(const std::vector<std::string>& paths,
                                         PlacementOptions options, comm::Communicator& group) {
  return Load(
      paths, std::move(options),
      [&group](
          const Checkpoint& checkpoint, const BlockLayout& layout,
          const PlacementOptions& placement) -> absl::StatusOr<std::unique_ptr<WeightProvider>> {
        return ShardedWeights::Create(checkpoint, layout, placement, group);
      });
}

}  // namespace raylight::models::wan
