#include "models/flux/flux_loader.h"

#include "models/flux/flux_keys.h"

namespace raylight::models::flux {

absl::StatusOr<OpenedFlux> OpenFluxCheckpoint(const std::vector<std::string>& paths) {
  auto checkpoint = OpenCheckpoint(paths, NormalizeFluxKey);
  if (!checkpoint.ok()) return checkpoint.status();
  const KeyShapes shapes = KeyShapesOf(*checkpoint);
  auto config = DetectFluxConfig(shapes);
  if (!config.ok()) return config.status();
  if (auto status = CheckFluxWeights(shapes, *config); !status.ok()) return status;
  return OpenedFlux{*std::move(checkpoint), *config};
}

BlockLayout FluxBlockLayout(const FluxConfig& config) {
  return BlockLayout{{{"double_blocks.", static_cast<int>(config.depth)},
                      {"single_blocks.", static_cast<int>(config.depth_single)}}};
}

LoraRowMap LoraRowsOf(const Checkpoint& checkpoint, const FluxConfig& config) {
  return FluxLoraRows(config, [&checkpoint](const std::string& name) {
    return checkpoint.tensors.count(name) > 0;
  });
}

absl::StatusOr<LoadedFlux> LoadFlux(const std::vector<std::string>& paths,
                                    const PlacementOptions& options,
                                    const WeightPlacement& placement,
                                    const std::vector<LoraFile>& loras) {
  auto opened = OpenFluxCheckpoint(paths);
  if (!opened.ok()) return opened.status();
  // Flux computes its modulation from the weights as stored (BFL runs it in the model's dtype):
  // nothing is kept in fp32 (the modulation tables are a quarter of the model).
  auto placed = PlaceCheckpoint(
      opened->checkpoint, FluxBlockLayout(opened->config), options, placement, loras,
      NormalizeFluxKey, opened->config.name,
      loras.empty() ? LoraRowMap() : LoraRowsOf(opened->checkpoint, opened->config));
  if (!placed.ok()) return placed.status();
  return LoadedFlux{opened->config, std::move(placed->weights), std::move(placed->loras)};
}

}  // namespace raylight::models::flux
