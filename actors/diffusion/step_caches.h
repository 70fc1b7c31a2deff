// StepCaches: a sampling run's TeaCache states (models/wan/wan_model.h WanStepCache), one per
// model (each expert of a two-expert job) and conditioning branch, made from the job's cache
// settings; none when the job does not cache.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "actors/diffusion/diffusion_types.h"
#include "models/wan/wan_model.h"

namespace raylight::actors {

class StepCaches {
 public:
  // The job's settings for `config` at the latent's width x height (in pixels). InvalidArgument
  // or NotFound naming the field for an unknown kind, bad numbers, or a model nobody calibrated
  // (`two_experts`: Wan 2.2's) without the job's own coefficients.
  static absl::StatusOr<StepCaches> ForJob(const SampleRequest& request,
                                           const models::wan::WanConfig& config, int64_t width,
                                           int64_t height, bool two_experts);

  bool enabled() const { return settings_.has_value(); }
  // The state of `model`'s `branch` (made on first use); null when the job does not cache.
  models::wan::WanStepCache* For(const void* model, int branch);
  // Calls answered from a cache, over every state.
  int reused() const;
  // "TeaCache: threshold 0.1, retention steps" (for the job's log).
  std::string Describe() const;

 private:
  std::optional<models::TeaCacheSettings> settings_;
  bool retention_steps_ = true;
  std::map<std::pair<const void*, int>, std::unique_ptr<models::wan::WanStepCache>> caches_;
};

}  // namespace raylight::actors
