// A loaded diffusion model of any family, as the worker's engine holds it: its ModelInfo, its
// placed weights and the LoRAs merged into them; and the family-independent ways to load one and
// to size one for the placement planner. The sampling run reaches the family's own forward
// through the family's class (WanDiffusionModel, FluxDiffusionModel below).
#pragma once

#include <ATen/ATen.h>

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "models/core/lora.h"
#include "models/core/placed_checkpoint.h"
#include "models/core/placement_plan.h"
#include "models/core/weights.h"
#include "models/family/model_info.h"
#include "models/flux/flux_loader.h"
#include "models/wan/wan_loader.h"

namespace raylight::models {

class DiffusionModel {
 public:
  virtual ~DiffusionModel() = default;
  const ModelInfo& info() const { return info_; }
  virtual WeightProvider& weights() = 0;
  virtual const LoraReport& loras() const = 0;
  // Whether `other` computes with the same architecture (a two-expert job's experts must).
  virtual bool SameArchitecture(const DiffusionModel& other) const = 0;

 protected:
  explicit DiffusionModel(ModelInfo info) : info_(std::move(info)) {}

 private:
  ModelInfo info_;
};

class WanDiffusionModel final : public DiffusionModel {
 public:
  explicit WanDiffusionModel(wan::LoadedWan loaded);
  WeightProvider& weights() override { return *wan_.weights; }
  const LoraReport& loras() const override { return wan_.loras; }
  bool SameArchitecture(const DiffusionModel& other) const override;
  const wan::WanConfig& config() const { return wan_.config; }

 private:
  wan::LoadedWan wan_;
};

class FluxDiffusionModel final : public DiffusionModel {
 public:
  explicit FluxDiffusionModel(flux::LoadedFlux loaded);
  WeightProvider& weights() override { return *flux_.weights; }
  const LoraReport& loras() const override { return flux_.loras; }
  bool SameArchitecture(const DiffusionModel& other) const override;
  const flux::FluxConfig& config() const { return flux_.config; }

 private:
  flux::LoadedFlux flux_;
};

// Loads the checkpoint in `paths` with the family InspectModel finds, placed as asked.
absl::StatusOr<std::unique_ptr<DiffusionModel>> LoadDiffusionModel(
    const std::vector<std::string>& paths, const PlacementOptions& options,
    const WeightPlacement& placement, const std::vector<LoraFile>& loras);

// What the placement planner needs of a model: its bytes as placed in `dtype` (read from the
// header, nothing copied) and its family's activation estimate.
struct MeasuredModel {
  ModelInfo info;
  PlacementInputs bytes;  // block and global bytes, block count; no activations or memory yet
  std::function<int64_t(int64_t tokens_per_rank, int batch)> activation_bytes;
};
absl::StatusOr<MeasuredModel> MeasureDiffusionModel(const std::vector<std::string>& paths,
                                                    at::ScalarType dtype);

}  // namespace raylight::models
