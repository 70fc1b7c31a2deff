#include "actors/diffusion/step_cache_checks.h"

#include <functional>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "models/wan/wan_mag_cache.h"
#include "models/wan/wan_tea_cache.h"
#include "raylight/v1/diffusion.pb.h"
#include "runtime/common/status_macros.h"
#include "samplers/easy_cache_settings.h"
#include "samplers/sampler_names.h"

namespace raylight::actors {
namespace {

absl::Status Invalid(const std::string& field, const std::string& message) {
  return absl::InvalidArgumentError(absl::StrCat(field, ": ", message));
}

// SampleJob.cache's MagCache numbers as the settings take them.
models::MagCacheRequest MagCacheRequestOf(const v1::StepCache& cache) {
  return {.threshold = cache.threshold(),
          .max_skips = cache.max_skips(),
          .retention_ratio = cache.has_retention_ratio() ? cache.retention_ratio() : -1,
          .ratios = {cache.mag_ratios().begin(), cache.mag_ratios().end()}};
}

bool HasTeaCacheSettings(const v1::StepCache& cache) {
  return cache.coefficients_size() > 0 || cache.has_retention_steps();
}
bool HasMagCacheSettings(const v1::StepCache& cache) {
  return cache.max_skips() != 0 || cache.has_retention_ratio() || cache.mag_ratios_size() > 0;
}

bool HasEasyCacheSettings(const v1::StepCache& cache) {
  return cache.has_start_percent() || cache.has_end_percent();
}

// No cache settings without a kind, and none of EasyCache's with another kind.
absl::Status CheckCacheKindGiven(const v1::StepCache& cache) {
  if (cache.kind().empty() && (cache.threshold() != 0 || HasTeaCacheSettings(cache) ||
                               HasMagCacheSettings(cache) || HasEasyCacheSettings(cache))) {
    return Invalid("cache.kind",
                   "empty, but other cache settings are given (kind: teacache, "
                   "magcache or easycache)");
  }
  if (cache.kind() != "easycache" && HasEasyCacheSettings(cache)) {
    return Invalid(cache.has_start_percent() ? "cache.start_percent" : "cache.end_percent",
                   "EasyCache's; give kind easycache");
  }
  return absl::OkStatus();
}

// SampleJob.cache of kind easycache (any family: it reuses whole evaluations): only its own
// settings, in range, and no data-parallel mesh over FSDP-placed weights (each sample decides its
// own steps, while FSDP's ranks run every forward together).
absl::Status CheckEasyCache(const v1::SampleJob& job) {
  const v1::StepCache& cache = job.cache();
  if (HasTeaCacheSettings(cache) || HasMagCacheSettings(cache)) {
    return Invalid(cache.coefficients_size() > 0 ? "cache.coefficients"
                   : cache.has_retention_steps() ? "cache.retention_steps"
                   : cache.mag_ratios_size() > 0 ? "cache.mag_ratios"
                   : cache.has_retention_ratio() ? "cache.retention_ratio"
                                                 : "cache.max_skips",
                   "not EasyCache's; it takes threshold, start_percent and end_percent");
  }
  auto settings = samplers::MakeEasyCacheSettings(
      cache.threshold(),
      cache.has_start_percent() ? std::optional(cache.start_percent()) : std::nullopt,
      cache.has_end_percent() ? std::optional(cache.end_percent()) : std::nullopt);
  if (!settings.ok()) return settings.status();  // it names the field
  if (job.mesh().dp() > 1 && absl::StartsWith(job.placement(), "fsdp")) {
    return Invalid("cache.kind",
                   "easycache decides each data-parallel sample's steps apart, and FSDP's ranks "
                   "run every forward together: use another placement, or dp 1");
  }
  return absl::OkStatus();
}

// SampleJob.cache of kind magcache: none of TeaCache's settings, numbers in range, ratios the
// authors published for the model or the job's own (`settings_for` makes them), and a sampler
// that calls the model once a step (the schedule counts steps).
absl::Status CheckMagCache(
    const v1::SampleJob& job,
    const std::function<absl::StatusOr<models::MagCacheSettings>(const models::MagCacheRequest&)>&
        settings_for) {
  const v1::StepCache& cache = job.cache();
  if (HasTeaCacheSettings(cache)) {
    return Invalid(cache.coefficients_size() > 0 ? "cache.coefficients" : "cache.retention_steps",
                   "TeaCache's; MagCache takes threshold, max_skips, retention_ratio and "
                   "mag_ratios");
  }
  auto settings = settings_for(MagCacheRequestOf(cache));
  if (!settings.ok()) {
    return absl::InvalidArgumentError(settings.status().message());  // it names the field
  }
  // The authors calibrate one model call per step; a sampler that calls the model more often
  // would run the schedule out early.
  if (!samplers::CallsTheModelOncePerStep(job.sampler())) {
    return Invalid("cache.kind",
                   absl::StrCat("MagCache's schedule counts one model call per step; sampler '",
                                job.sampler(), "' makes more"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckWanStepCache(const v1::SampleJob& job, const models::wan::WanConfig& config,
                               bool two_experts) {
  const v1::StepCache& cache = job.cache();
  RL_RETURN_IF_ERROR(CheckCacheKindGiven(cache));
  if (cache.kind().empty()) return absl::OkStatus();
  if (cache.kind() == "easycache") return CheckEasyCache(job);
  if (cache.kind() == "magcache") {
    return CheckMagCache(job, [&](const models::MagCacheRequest& request) {
      return models::wan::WanMagCacheSettings(config, job.width(), job.height(), request,
                                              /*start_image=*/!job.image().empty(), two_experts);
    });
  }
  if (cache.kind() != "teacache") {
    return Invalid("cache.kind",
                   absl::StrCat("'", cache.kind(), "' (known: teacache, magcache, easycache)"));
  }
  if (HasMagCacheSettings(cache)) {
    return Invalid(cache.mag_ratios_size() > 0 ? "cache.mag_ratios" : "cache.max_skips",
                   "MagCache's; TeaCache takes threshold, coefficients and retention_steps");
  }
  if (two_experts && cache.coefficients_size() == 0) {
    return Invalid("cache.coefficients",
                   "Wan 2.2's experts have no published TeaCache coefficients; give the job's own");
  }
  models::wan::WanTeaCacheRequest request{
      .threshold = cache.threshold(),
      .coefficients = {cache.coefficients().begin(), cache.coefficients().end()},
      .retention_steps = !cache.has_retention_steps() || cache.retention_steps(),
      .steps = job.steps()};
  auto settings = models::wan::WanTeaCacheSettings(config, job.width(), job.height(), request);
  if (!settings.ok()) {
    return absl::InvalidArgumentError(settings.status().message());  // it names the field
  }
  return absl::OkStatus();
}

namespace {

// SampleJob.cache of kind teacache on a family whose forward measures its own change (the Flux
// forward's first modulated image rows): the job's or the published numbers, none of MagCache's
// or Wan's retention steps, and no mesh whose ranks would decide apart: cond and uncond on
// different ranks (one process measures both branches' rows of a call together), or
// data-parallel samples over FSDP-placed weights (whose ranks run every forward together).
absl::Status CheckFamilyTeaCache(const v1::SampleJob& job, const models::ModelInfo& info) {
  const v1::StepCache& cache = job.cache();
  if (HasMagCacheSettings(cache)) {
    return Invalid(cache.mag_ratios_size() > 0 ? "cache.mag_ratios" : "cache.max_skips",
                   "MagCache's; TeaCache takes threshold and coefficients");
  }
  if (cache.has_retention_steps()) {
    return Invalid("cache.retention_steps",
                   absl::StrCat("TeaCache4Wan2.1's; ", info.family,
                                " models compute the first and the last step"));
  }
  if (!samplers::CallsTheModelOncePerStep(job.sampler())) {
    return Invalid("cache.kind",
                   absl::StrCat("TeaCache4FLUX's counter counts one model call per step; sampler '",
                                job.sampler(), "' makes more"));
  }
  const int steps = job.sigmas_size() > 0 ? job.sigmas_size() - 1 : job.steps();
  auto settings = models::TeaCacheSettingsOf(
      info, {.threshold = cache.threshold(),
             .coefficients = {cache.coefficients().begin(), cache.coefficients().end()},
             .steps = steps});
  if (!settings.ok()) return absl::InvalidArgumentError(settings.status().message());
  if (job.mesh().cfg() > 1 && job.cfg() != 1.0) {
    return Invalid("mesh.cfg",
                   "teacache measures the rows of each model call, and CFG parallelism splits the "
                   "cond and uncond rows one process measures together: use cfg 1 on the mesh");
  }
  if (job.mesh().dp() > 1 && absl::StartsWith(job.placement(), "fsdp")) {
    return Invalid("cache.kind",
                   "teacache decides each data-parallel sample's steps apart, and FSDP's ranks "
                   "run every forward together: use another placement, or dp 1");
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckFamilyStepCache(const v1::SampleJob& job, const models::ModelInfo& info,
                                  int64_t width, int64_t height) {
  const v1::StepCache& cache = job.cache();
  RL_RETURN_IF_ERROR(CheckCacheKindGiven(cache));
  if (cache.kind().empty()) return absl::OkStatus();
  if (cache.kind() == "easycache") return CheckEasyCache(job);
  if (cache.kind() == "teacache" && info.tea_caches) return CheckFamilyTeaCache(job, info);
  if (cache.kind() != "magcache" || !info.caches_steps) {
    return Invalid(
        "cache.kind",
        absl::StrCat("'", cache.kind(), "': ", info.family, " models take ",
                     info.caches_steps ? (info.tea_caches ? "teacache, magcache or easycache"
                                                          : "magcache or easycache")
                                       : "easycache"));
  }
  return CheckMagCache(job, [&](const models::MagCacheRequest& request) {
    return models::MagCacheSettingsOf(info, request, width, height);
  });
}

}  // namespace raylight::actors
