// The toy family's torch half: loading through the shared placement (resident, FSDP, swap), its
// latent format and its forward under conditioning files.
#include <ATen/ATen.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "models/core/checkpoint.h"
#include "models/core/placed_checkpoint.h"
#include "models/core/safetensors_tensors.h"
#include "models/family/diffusion_model.h"
#include "tests/family/toy_family.h"

namespace raylight::toy_family {
namespace {

using models::ConditioningRows;

std::optional<std::string> Normalize(const std::string& raw) {
  if (!absl::StartsWith(raw, "toy.")) return std::nullopt;
  return raw.substr(4);
}

const models::LatentFormat& ToyLatentFormat() {
  static const models::LatentFormat format{.name = "toy", .channels = kChannels};
  return format;
}

int CountBlocks(const models::Checkpoint& checkpoint) {
  int blocks = 0;
  while (checkpoint.tensors.contains(absl::StrCat("blocks.", blocks, ".scale"))) ++blocks;
  return blocks;
}

// "text" [L, D] of a conditioning file, on `device`.
absl::StatusOr<at::Tensor> ReadText(const std::string& bytes, const std::string& field,
                                    at::Device device) {
  auto tensors = models::ParseTensors(bytes, field);
  if (!tensors.ok()) return tensors.status();
  auto text = tensors->find("text");
  if (text == tensors->end()) return absl::InvalidArgumentError(absl::StrCat(field, ": no 'text'"));
  return text->second.reshape({-1, kTextWidth}).to(device, at::kFloat);
}

class ToyForward final : public models::ConditionedForward {
 public:
  ToyForward(models::WeightProvider& weights, at::Tensor positive, at::Tensor negative)
      : weights_(weights), positive_(std::move(positive)), negative_(std::move(negative)) {}

  absl::StatusOr<at::Tensor> Forward(const at::Tensor& x, double timestep, ConditioningRows rows,
                                     const models::ParallelContext& sequence,
                                     models::ResidualCache* cache) override {
    (void)sequence;  // every token is its own: each rank computes them all
    (void)cache;     // its ModelInfo does not offer step caching: the head refuses it
    const double sigma = timestep / 1000.0;
    auto velocity = [&](const at::Tensor& text) -> absl::StatusOr<at::Tensor> {
      const models::WeightSet& globals = weights_.globals();
      at::Tensor target = at::matmul(globals.Get("proj.weight").to(at::kFloat), text.mean(0)) +
                          globals.Get("proj.bias").to(at::kFloat);
      for (int i = 0; i < weights_.num_blocks(); ++i) {
        auto block = weights_.Acquire(i);
        if (!block.ok()) return block.status();
        target = target * (*block)->Get("scale").to(at::kFloat);
        weights_.Release(i);
      }
      return (x - target.view({1, kChannels, 1, 1})) / sigma;
    };
    if (rows != ConditioningRows::kBoth) {
      return velocity(rows == ConditioningRows::kPositive ? positive_ : negative_);
    }
    auto cond = velocity(positive_);
    if (!cond.ok()) return cond.status();
    auto uncond = velocity(negative_);
    if (!uncond.ok()) return uncond.status();
    return at::cat({*cond, *uncond}, 0);
  }

 private:
  models::WeightProvider& weights_;
  const at::Tensor positive_, negative_;
};

class ToyModel final : public models::DiffusionModel {
 public:
  ToyModel(models::ModelInfo info, models::PlacedCheckpoint placed)
      : DiffusionModel(std::move(info)), placed_(std::move(placed)) {}
  models::WeightProvider& weights() override { return *placed_.weights; }
  const models::LoraReport& loras() const override { return placed_.loras; }
  bool SameArchitecture(const DiffusionModel& other) const override {
    return other.info().family == "toy";
  }
  const models::LatentFormat& latent_format() const override { return ToyLatentFormat(); }
  absl::StatusOr<std::unique_ptr<models::ConditionedForward>> Condition(
      const std::string& positive, const std::string& negative, at::Device device) override {
    auto cond = ReadText(positive, "positive", device);
    if (!cond.ok()) return cond.status();
    at::Tensor uncond = *cond;
    if (!negative.empty()) {
      auto read = ReadText(negative, "negative", device);
      if (!read.ok()) return read.status();
      uncond = *read;
    }
    return std::make_unique<ToyForward>(weights(), *cond, uncond);
  }

 private:
  models::PlacedCheckpoint placed_;
};

}  // namespace

absl::Status RegisterToyFamilyModels() {
  return models::RegisterFamilyModels(models::FamilyModels{
      .name = "toy",
      .load = [](const std::vector<std::string>& paths, const models::PlacementOptions& options,
                 const models::WeightPlacement& placement, const std::vector<models::LoraFile>&)
          -> absl::StatusOr<std::unique_ptr<models::DiffusionModel>> {
        auto info = models::InspectModel(paths);
        if (!info.ok()) return info.status();
        auto checkpoint = models::OpenCheckpoint(paths, Normalize);
        if (!checkpoint.ok()) return checkpoint.status();
        const models::BlockLayout layout{{{"blocks.", CountBlocks(*checkpoint)}}};
        auto placed = models::PlaceCheckpoint(*checkpoint, layout, options, placement, {},
                                              Normalize, "toy-dit");
        if (!placed.ok()) return placed.status();
        return std::make_unique<ToyModel>(*std::move(info), *std::move(placed));
      },
      .measure = [](const std::vector<std::string>& paths,
                    at::ScalarType dtype) -> absl::StatusOr<models::MeasuredModel> {
        auto checkpoint = models::OpenCheckpoint(paths, Normalize);
        if (!checkpoint.ok()) return checkpoint.status();
        models::PlacementOptions options;
        options.compute_dtype = dtype;
        const int blocks = CountBlocks(*checkpoint);
        auto bytes = models::MeasurePlacedBytes(*checkpoint, {{{"blocks.", blocks}}}, options);
        if (!bytes.ok()) return bytes.status();
        models::MeasuredModel measured;
        measured.bytes.block_bytes = bytes->block_bytes;
        measured.bytes.num_blocks = blocks;
        measured.bytes.global_bytes = bytes->global_bytes;
        // The latent twice over (the input and the velocity), per sample.
        measured.activation_bytes = [](int64_t tokens, int batch) {
          return 2 * tokens * batch * kChannels * static_cast<int64_t>(sizeof(float));
        };
        return measured;
      }});
}

}  // namespace raylight::toy_family
