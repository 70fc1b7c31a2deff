// Wan's torch side as a family (family/diffusion_model.h, families.inc): the loaded model. Wan's
// jobs (prompts, images, two experts, decoded video) have their own run in actors/diffusion.
#pragma once

#include "models/family/diffusion_model.h"
#include "models/wan/wan_loader.h"

namespace raylight::models::wan {

class WanDiffusionModel final : public DiffusionModel {
 public:
  explicit WanDiffusionModel(LoadedWan loaded);
  WeightProvider& weights() override { return *wan_.weights; }
  const LoraReport& loras() const override { return wan_.loras; }
  bool SameArchitecture(const DiffusionModel& other) const override;
  const LatentFormat& latent_format() const override;
  const WanConfig& config() const { return wan_.config; }

 private:
  LoadedWan wan_;
};

FamilyModels Models();

}  // namespace raylight::models::wan
