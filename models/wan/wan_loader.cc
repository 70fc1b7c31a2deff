#include "models/wan/wan_loader.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "models/core/sharded_weights.h"
#include "models/wan/wan_keys.h"
#include "models/wan/wan_model.h"

namespace raylight::models::wan {

namespace {

WanKeyShapes KeyShapesOf(const Checkpoint& checkpoint) {
  WanKeyShapes shapes;
  for (const auto& [name, tensor] : checkpoint.tensors) {
    shapes.shapes[name] = tensor.value_shape();
  }
  shapes.metadata = checkpoint.metadata;
  shapes.unknown_keys = checkpoint.unknown_keys;
  return shapes;
}

// Missing keys, extra keys and wrong shapes, all listed in one error.
absl::Status ValidateWanCheckpoint(const Checkpoint& checkpoint, const WanConfig& config) {
  const auto expected = WanWeightShapes(config);
  std::vector<std::string> missing, extra, wrong;
  for (const auto& [name, shape] : expected) {
    auto it = checkpoint.tensors.find(name);
    if (it == checkpoint.tensors.end()) {
      missing.push_back(name);
      continue;
    }
    const std::vector<int64_t> sizes = it->second.value_shape();
    if (sizes != shape) {
      wrong.push_back(absl::StrCat(it->second.raw_name, " is [", absl::StrJoin(sizes, ", "),
                                   "], expected [", absl::StrJoin(shape, ", "), "]"));
    }
  }
  for (const auto& [name, tensor] : checkpoint.tensors) {
    if (!expected.count(name)) extra.push_back(tensor.raw_name);
  }
  for (const std::string& key : checkpoint.unknown_keys) extra.push_back(key);
  if (missing.empty() && extra.empty() && wrong.empty()) return absl::OkStatus();
  auto list = [](const std::vector<std::string>& items) {
    constexpr size_t kShown = 8;
    std::vector<std::string> shown(items.begin(), items.begin() + std::min(items.size(), kShown));
    std::string text = absl::StrJoin(shown, ", ");
    if (items.size() > kShown) absl::StrAppend(&text, ", ... (", items.size(), " in all)");
    return text;
  };
  std::string message = absl::StrCat("Wan checkpoint does not match ", config.name, ":");
  if (!missing.empty()) absl::StrAppend(&message, " missing keys: ", list(missing), ";");
  if (!extra.empty()) absl::StrAppend(&message, " extra keys: ", list(extra), ";");
  if (!wrong.empty()) absl::StrAppend(&message, " wrong shapes: ", list(wrong), ";");
  return absl::InvalidArgumentError(message);
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

// Opens the checkpoint and places it with `place(checkpoint, layout, options)`.
// `resident`: the placement keeps every weight on options.device, so merged weights stay there.
// `attach`: LoRA patches ride with the weights and are merged where they are materialised (FSDP:
// each rank merges only its shard's rows).
template <typename Place>
absl::StatusOr<LoadedWan> Load(const std::vector<std::string>& paths, PlacementOptions options,
                               const std::vector<LoraFile>& loras, bool resident, Place place,
                               bool attach = false) {
  auto opened = OpenWanCheckpoint(paths);
  if (!opened.ok()) return opened.status();
  if (!options.keep_fp32) options.keep_fp32 = WanKeepsFp32;
  BlockLayout layout;
  layout.num_blocks = static_cast<int>(opened->config.num_layers);
  try {
    // An fp8 base merged with a LoRA is requantised to fp8 over its scale, as ComfyUI does.
    auto merged =
        ApplyLoras(opened->checkpoint, loras, NormalizeWanKey, options.device, resident, attach);
    if (!merged.ok()) return merged.status();
    auto weights = place(opened->checkpoint, layout, options);
    if (!weights.ok()) return weights.status();
    return LoadedWan{opened->config, *std::move(weights), *std::move(merged)};
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
                                          PlacementOptions options,
                                          const std::vector<LoraFile>& loras) {
  return Load(
      paths, std::move(options), loras, /*resident=*/true,
      [](const Checkpoint& checkpoint, const BlockLayout& layout,
         const PlacementOptions& placement) -> absl::StatusOr<std::unique_ptr<WeightProvider>> {
        return ResidentWeights::Create(checkpoint, layout, placement);
      });
}

absl::StatusOr<LoadedWan> LoadWanSharded(const std::vector<std::string>& paths,
                                         PlacementOptions options, comm::Communicator& group,
                                         const ShardOptions& shards,
                                         const std::vector<LoraFile>& loras) {
  return Load(
      paths, std::move(options), loras, /*resident=*/false,
      [&](const Checkpoint& checkpoint, const BlockLayout& layout,
          const PlacementOptions& placement) -> absl::StatusOr<std::unique_ptr<WeightProvider>> {
        return ShardedWeights::Create(checkpoint, layout, placement, group, shards);
      },
      /*attach=*/true);
}

absl::StatusOr<LoadedWan> LoadWanSwapped(const std::vector<std::string>& paths,
                                         PlacementOptions options, const SwapOptions& swap,
                                         const std::vector<LoraFile>& loras) {
  return Load(
      paths, std::move(options), loras, /*resident=*/false,
      [&](const Checkpoint& checkpoint, const BlockLayout& layout,
          const PlacementOptions& placement) -> absl::StatusOr<std::unique_ptr<WeightProvider>> {
        return SwappedWeights::Create(checkpoint, layout, placement, swap);
      });
}

}  // namespace raylight::models::wan
