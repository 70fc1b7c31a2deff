#include "actors/diffusion/step_caches.h"

#include "absl/strings/str_cat.h"
#include "models/wan/wan_tea_cache.h"

namespace raylight::actors {

absl::StatusOr<StepCaches> StepCaches::ForJob(const SampleRequest& request,
                                              const models::wan::WanConfig& config, int64_t width,
                                              int64_t height, bool two_experts) {
  StepCaches caches;
  if (request.cache_kind.empty()) return caches;
  if (request.cache_kind != "teacache") {
    return absl::InvalidArgumentError(absl::StrCat("cache.kind: '", request.cache_kind,
                                                   "' is not a step cache (known: teacache)"));
  }
  if (two_experts && request.cache_coefficients.empty()) {
    return absl::InvalidArgumentError(
        "cache.coefficients: Wan 2.2's experts have no published TeaCache coefficients; give the "
        "job's own");
  }
  auto settings =
      models::wan::WanTeaCacheSettings(config, width, height,
                                       {.threshold = request.cache_threshold,
                                        .coefficients = request.cache_coefficients,
                                        .retention_steps = request.cache_retention_steps,
                                        .steps = request.steps});
  if (!settings.ok()) return settings.status();
  caches.settings_ = *std::move(settings);
  caches.retention_steps_ = request.cache_retention_steps;
  return caches;
}

models::wan::WanStepCache* StepCaches::For(const void* model, int branch) {
  if (!settings_.has_value()) return nullptr;
  auto& cache = caches_[{model, branch}];
  if (cache == nullptr) {
    cache = std::make_unique<models::wan::WanStepCache>(*settings_, retention_steps_);
  }
  return cache.get();
}

int StepCaches::reused() const {
  int reused = 0;
  for (const auto& [key, cache] : caches_) reused += cache->policy.reused();
  return reused;
}

std::string StepCaches::Describe() const {
  if (!settings_.has_value()) return "no step cache";
  return absl::StrCat("TeaCache: threshold ", settings_->threshold,
                      retention_steps_ ? ", retention steps" : "");
}

}  // namespace raylight::actors
