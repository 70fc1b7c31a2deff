#include "actors/diffusion/step_caches.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "models/wan/wan_mag_cache.h"
#include "models/wan/wan_tea_cache.h"
#include "runtime/common/status_macros.h"

namespace raylight::actors {
namespace {

absl::StatusOr<samplers::EasyCacheSettings> EasyCacheOf(const SampleRequest& request) {
  return samplers::MakeEasyCacheSettings(request.cache_threshold, request.cache_start_percent,
                                         request.cache_end_percent);
}

models::MagCacheRequest MagRequestOf(const SampleRequest& request) {
  return {.threshold = request.cache_threshold,
          .max_skips = request.cache_max_skips,
          .retention_ratio = request.cache_retention_ratio,
          .ratios = request.cache_mag_ratios};
}

}  // namespace

void StepCaches::SetMagCache(models::MagCacheSettings settings, const SampleRequest& request,
                             models::ExpertSplit experts) {
  mag_ = std::move(settings);
  // The whole schedule's steps (a custom one's, or KSampler's), of which the run makes those from
  // start_step to end_step (KSamplerAdvanced): their decisions are the whole run's at those steps.
  const bool custom = !request.sigmas.empty();
  const int steps = custom ? static_cast<int>(request.sigmas.size()) - 1 : request.steps;
  const int begin = custom ? 0 : std::clamp(request.start_step, 0, steps);
  const int end = custom ? steps : std::clamp(request.end_step, begin, steps);
  // Cond and uncond calls exist where the job guides (cfg 1 runs the cond branch alone).
  const std::vector<bool> whole =
      models::MagCacheSchedule(*mag_, steps, /*two_branches=*/request.cfg != 1.0, experts);
  schedule_.assign(whole.begin() + begin, whole.begin() + end);
}

absl::StatusOr<StepCaches> StepCaches::ForFamily(const SampleRequest& request,
                                                 const models::ModelInfo& info, int64_t width,
                                                 int64_t height) {
  StepCaches caches;
  if (request.cache_kind.empty()) return caches;
  if (request.cache_kind == "easycache") {
    RL_ASSIGN_OR_RETURN(caches.easy_, EasyCacheOf(request));
    return caches;
  }
  if (request.cache_kind == "teacache" && info.tea_caches) {
    // The forward measures its own rows' change (flux_model.cc); one state per branch.
    auto settings = models::TeaCacheSettingsOf(
        info, {.threshold = request.cache_threshold,
               .coefficients = request.cache_coefficients,
               .steps = request.sigmas.empty() ? request.steps
                                               : static_cast<int>(request.sigmas.size()) - 1});
    if (!settings.ok()) return settings.status();
    caches.tea_ = *std::move(settings);
    caches.retention_steps_ = false;
    caches.measures_rows_ = true;
    return caches;
  }
  if (request.cache_kind != "magcache" || !info.caches_steps) {
    return absl::InvalidArgumentError(
        absl::StrCat("cache.kind: '", request.cache_kind, "': ", info.family, " models take ",
                     info.caches_steps ? (info.tea_caches ? "teacache or magcache" : "magcache")
                                       : "no step cache"));
  }
  auto settings = models::MagCacheSettingsOf(info, MagRequestOf(request), width, height);
  if (!settings.ok()) return settings.status();
  caches.SetMagCache(*std::move(settings), request);
  return caches;
}

absl::StatusOr<StepCaches> StepCaches::ForJob(const SampleRequest& request,
                                              const models::wan::WanConfig& config, int64_t width,
                                              int64_t height, bool two_experts,
                                              int expert_switch_step) {
  StepCaches caches;
  if (request.cache_kind.empty()) return caches;
  if (request.cache_kind == "easycache") {
    RL_ASSIGN_OR_RETURN(caches.easy_, EasyCacheOf(request));
    return caches;
  }
  if (request.cache_kind == "magcache") {
    auto settings =
        models::wan::WanMagCacheSettings(config, width, height, MagRequestOf(request),
                                         /*start_image=*/!request.image.empty(), two_experts);
    if (!settings.ok()) return settings.status();
    // Both experts follow one schedule with one state per branch (the authors share their
    // counter and residual across the experts), retained as they retain each kind's.
    caches.SetMagCache(
        *std::move(settings), request,
        {.switch_step = two_experts ? expert_switch_step : 0, .image_to_video = config.i2v()});
    return caches;
  }
  if (request.cache_kind != "teacache") {
    return absl::InvalidArgumentError(
        absl::StrCat("cache.kind: '", request.cache_kind,
                     "' is not a step cache (known: teacache, magcache, easycache)"));
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
  caches.tea_ = *std::move(settings);
  caches.retention_steps_ = request.cache_retention_steps;
  return caches;
}

models::wan::WanStepCache* StepCaches::For(const void* model, int branch) {
  if (!tea_.has_value() && !mag_.has_value()) return nullptr;
  // MagCache's state is the branch's over the whole run, both experts of a two-expert job alike.
  auto& cache = caches_[{mag_.has_value() ? nullptr : model, branch}];
  if (cache == nullptr) {
    if (mag_.has_value()) {
      cache = std::make_unique<models::wan::WanStepCache>(
          std::make_unique<models::ScheduledSkips>(schedule_), /*modulation_e0=*/true);
    } else {
      cache = std::make_unique<models::wan::WanStepCache>(
          std::make_unique<models::TeaCachePolicy>(*tea_), retention_steps_);
    }
  }
  return cache.get();
}

absl::Status StepCaches::CheckPlacement(const std::string& placement, int dp,
                                        bool split_cfg) const {
  const bool per_sample = easy_.has_value() || measures_rows_;
  if (per_sample && dp > 1 && placement.rfind("fsdp", 0) == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cache.kind: ", easy_.has_value() ? "easycache" : "teacache",
        " decides each data-parallel sample's steps apart, and the weights were placed ", placement,
        ", whose ranks run every forward together"));
  }
  if (measures_rows_ && split_cfg) {
    return absl::FailedPreconditionError(
        "mesh.cfg: teacache measures the rows of each model call, and CFG parallelism splits the "
        "cond and uncond rows one process measures together: use cfg 1 on the mesh");
  }
  return absl::OkStatus();
}

void StepCaches::ApplyTo(samplers::KSamplerOptions& options) {
  if (!easy_.has_value()) return;
  options.easy_cache = *easy_;
  options.easy_cache_stats = &easy_stats_;
}

int StepCaches::reused() const {
  int reused = easy_stats_.calls_saved;
  for (const auto& [key, cache] : caches_) reused += cache->reused;
  return reused;
}

std::string StepCaches::Describe() const {
  if (easy_.has_value()) {
    return absl::StrCat("EasyCache: threshold ", easy_->reuse_threshold, ", from ",
                        easy_->start_percent, " to ", easy_->end_percent, " of the schedule");
  }
  if (mag_.has_value()) {
    const int skipped = static_cast<int>(std::count(schedule_.begin(), schedule_.end(), false));
    return absl::StrCat("MagCache: threshold ", mag_->threshold, ", at most ", mag_->max_skips,
                        " in a row, retention ratio ", mag_->retention_ratio, "; ", skipped, " of ",
                        schedule_.size(), " steps reuse");
  }
  if (!tea_.has_value()) return "no step cache";
  return absl::StrCat("TeaCache: threshold ", tea_->threshold,
                      retention_steps_ ? ", retention steps" : "",
                      measures_rows_ ? ", measured on the first modulated image rows" : "");
}

}  // namespace raylight::actors
