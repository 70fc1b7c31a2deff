// A loaded diffusion model of any family, as the worker's engine holds it: its ModelInfo, its
// placed weights and the LoRAs merged into them, its latent format, and its forward under a
// job's conditioning files. A family registers how to load and size its models (FamilyModels,
// families.inc); the engine, the placement planner and the conditioning-file run
// (actors/diffusion) use only this interface.
#pragma once

#include <ATen/ATen.h>

#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "models/core/latent_format.h"
#include "models/core/lora.h"
#include "models/core/parallel_context.h"
#include "models/core/placed_checkpoint.h"
#include "models/core/placement_plan.h"
#include "models/core/residual_cache.h"
#include "models/core/weights.h"
#include "models/family/model_info.h"

namespace raylight::models {

// Which conditioning a forward takes: the positive, the negative, or both in one batch (x once,
// the output twice as many rows: the positive's then the negative's, as a CFG batch).
enum class ConditioningRows { kPositive, kNegative, kBoth };

// A job's conditioning, parsed and on the device, bound to a model: the network's raw output
// (flow velocity, eps or v, as the family's ModelInfo.sampling reads it) for x at `timestep`.
class ConditionedForward {
 public:
  virtual ~ConditionedForward() = default;
  // x [B, C, ...] (the LATENT's layout in the model's space), the full sequence: a family splits
  // it over `sequence` itself and returns the full output on every rank. `cache`: the rows'
  // step cache (null: run the blocks), for a family whose ModelInfo says it caches steps.
  virtual absl::StatusOr<at::Tensor> Forward(const at::Tensor& x, double timestep,
                                             ConditioningRows rows, const ParallelContext& sequence,
                                             ResidualCache* cache) = 0;
  // Whether a kBoth batch gives what the two halves alone give (false: the sampler calls the
  // positive and the negative one after the other; token counts that differ, say).
  virtual bool BatchesExactly() const { return true; }
  // A forward through one block of each kind the model has at the shape of a call on (x, rows),
  // its output discarded, returning once the device has finished it: the shape's first-call
  // costs paid before the first step (actors/diffusion/sampling_run.h, WarmUpAtShape). Returns
  // whether it ran: a family that does not override it starts its first step cold.
  virtual absl::StatusOr<bool> WarmUp(const at::Tensor& x, ConditioningRows rows,
                                      const ParallelContext& sequence) {
    (void)x, (void)rows, (void)sequence;
    return false;
  }
};

class DiffusionModel {
 public:
  virtual ~DiffusionModel() = default;
  const ModelInfo& info() const { return info_; }
  virtual WeightProvider& weights() = 0;
  virtual const LoraReport& loras() const = 0;
  // Whether `other` computes with the same architecture (a two-expert job's experts must).
  virtual bool SameArchitecture(const DiffusionModel& other) const = 0;
  // ComfyUI's latent format of the family (process_in / process_out, previews).
  virtual const LatentFormat& latent_format() const = 0;
  // The job shapes this model was warmed at since it loaded (sampling_run.h, WarmUpAtShape): the
  // plans a shape's first call builds stay in the process, so a shape comes back warm. The last
  // kMaxWarmedShapes are kept.
  bool WarmedAt(const std::string& shape) const {
    return std::find(warmed_shapes_.begin(), warmed_shapes_.end(), shape) != warmed_shapes_.end();
  }
  void NoteWarmedAt(std::string shape) {
    if (WarmedAt(shape)) return;
    if (warmed_shapes_.size() == kMaxWarmedShapes) warmed_shapes_.erase(warmed_shapes_.begin());
    warmed_shapes_.push_back(std::move(shape));
  }
  static constexpr size_t kMaxWarmedShapes = 16;
  // `positive` and `negative` (empty: none, cfg 1) conditioning files bound for forwards on
  // `device`. Errors name the file ("positive: ..."). A family whose jobs have their own run
  // (Wan: prompts, images, experts) need not offer it.
  virtual absl::StatusOr<std::unique_ptr<ConditionedForward>> Condition(const std::string& positive,
                                                                        const std::string& negative,
                                                                        at::Device device) {
    (void)positive, (void)negative, (void)device;
    return absl::UnimplementedError(absl::StrCat(info_.variant, " (", info_.family,
                                                 ") takes its family's own job inputs, not files"));
  }

 protected:
  explicit DiffusionModel(ModelInfo info) : info_(std::move(info)) {}

 private:
  ModelInfo info_;
  std::vector<std::string> warmed_shapes_;
};

// What the placement planner needs of a model: its bytes as placed in `dtype` (read from the
// header, nothing copied) and its family's activation estimate.
struct MeasuredModel {
  ModelInfo info;
  PlacementInputs bytes;  // block and global bytes, block count; no activations or memory yet
  std::function<int64_t(int64_t tokens_per_rank, int batch)> activation_bytes;
};

// A family's torch side: how its models load (placed as asked, LoRAs merged) and are sized.
struct FamilyModels {
  std::string name;  // the FamilyInspection's
  std::function<absl::StatusOr<std::unique_ptr<DiffusionModel>>(
      const std::vector<std::string>& paths, const PlacementOptions& options,
      const WeightPlacement& placement, const std::vector<LoraFile>& loras)>
      load;
  // `info` (filled) is left in the result.
  std::function<absl::StatusOr<MeasuredModel>(const std::vector<std::string>& paths,
                                              at::ScalarType dtype)>
      measure;
};

// Adds a family's torch side after the built-in ones; as RegisterFamily, before threads use it.
absl::Status RegisterFamilyModels(FamilyModels family);

// Loads the checkpoint in `paths` with the family InspectModel finds, placed as asked.
absl::StatusOr<std::unique_ptr<DiffusionModel>> LoadDiffusionModel(
    const std::vector<std::string>& paths, const PlacementOptions& options,
    const WeightPlacement& placement, const std::vector<LoraFile>& loras);

absl::StatusOr<MeasuredModel> MeasureDiffusionModel(const std::vector<std::string>& paths,
                                                    at::ScalarType dtype);

}  // namespace raylight::models
